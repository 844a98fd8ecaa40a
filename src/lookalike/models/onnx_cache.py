"""A keyed folder of derived files (model exports) that no crash or race can leave half-made.

``ExportCache(root, name, key)`` is the folder ``root/<name>-<16 hex digits of the key>``:
everything a derived file depends on goes into ``key`` (the source weights'
fingerprint, our export version, the tools' versions), so a change anywhere
means a new folder and a fresh export, never a stale file.

Writing is crash-safe and race-safe:

* files are made in a private temporary folder inside the cache folder
  (``.tmp-<pid>-<random>``), flushed to disk, then renamed into place with
  ``os.replace``: a kill at any moment leaves either no file or a whole one;
* makers take an exclusive ``flock`` on ``.lock`` (released by the kernel when a
  process dies), so two processes asking at once make the file once, the second
  waits and then finds it; where locking is impossible the renames still keep
  every file whole, and both processes end up with a working file;
* temporary folders left by killed processes are removed by the next maker.

A file that exists but will not load is the caller's to ``discard`` and make again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from lookalike.processes import process_alive

__all__ = ["ExportCache", "folder_fingerprint"]

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"
_KEY_NAME = "key.json"
_STALE_SECONDS = 24 * 3600  # a temporary folder this old is a leftover, whoever made it
_LOCK_WAIT_SECONDS = 300.0  # then go on unlocked: the renames keep files whole anyway
_LOCK_POLL_SECONDS = 0.05
_MAX_FILES = 5_000  # more than this is not a model folder; don't walk a whole disk

#: makes files in the temporary folder it is given; returns {final name: path made}
Maker = Callable[[Path], Mapping[str, Path]]


def folder_fingerprint(folder: Path) -> str:
    """A cheap identity of a folder's files: names, sizes and modification times.

    Reading no file contents keeps it fast for gigabytes of weights; rewriting,
    replacing or touching any file changes it (copying the folder without keeping
    times does too, which costs one extra export, never a stale one).
    """
    digest = hashlib.sha256()
    count = 0
    for base, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            count += 1
            if count > _MAX_FILES:
                raise ValueError(f"{folder} holds more than {_MAX_FILES} files: not a model folder")
            path = Path(base) / name
            stat = path.stat()  # follows links: Hugging Face snapshots link to blobs
            rel = path.relative_to(folder).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "model"


class ExportCache:
    """One keyed cache folder (see the module docstring)."""

    def __init__(self, root: Path, name: str, key: Mapping[str, Any]) -> None:
        self.root, self.name, self.key = Path(root), name, dict(key)
        encoded = json.dumps(self.key, sort_keys=True, default=str).encode()
        self.folder = Path(root) / f"{_slug(name)}-{hashlib.sha256(encoded).hexdigest()[:16]}"
        self.builds = 0  # times this object made files (tests and diagnostics)

    def path(self, name: str) -> Path:
        return self.folder / name

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    # -- making ------------------------------------------------------------------------------

    def ensure(self, name: str, make: Maker) -> tuple[Path, bool]:
        """The file ``name``, made by ``make`` when missing; ``(path, was already there)``.

        ``make`` may return more files than ``name`` (e.g. an intermediate worth
        keeping); each is renamed into place. It runs under the folder's lock and
        may read or delete published files directly (never through this object).
        """
        target = self.path(name)
        if target.is_file():
            return target, True
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if target.is_file():  # another process made it while we waited
                return target, True
            self._sweep()
            tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=f"{_TMP_PREFIX}{os.getpid()}-"))
            try:
                made = dict(make(tmp))
                for final, path in made.items():
                    _flush(path)
                    if self.path(final).is_dir():  # not ours: a file is expected there
                        _remove(self.path(final))
                    os.replace(path, self.path(final))
                self._write_key()
                _flush_folder(self.folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self.builds += 1
        if not target.is_file():
            raise RuntimeError(f"making {name} in {self.folder} produced no such file")
        return target, False

    def discard(self, name: str) -> None:
        """Delete a published file (one that failed to load or check), if it is there."""
        with self._locked():
            _remove(self.path(name))

    # -- small notes (e.g. why a variant was rejected) ------------------------------------------

    def note(self, name: str) -> str | None:
        """A note's text (at most 1 KiB of it), or None when there is no readable note."""
        try:
            with open(self.path(name), "rb") as fh:
                text = fh.read(1024).decode("utf-8", errors="replace")
        except OSError:
            return None
        return " ".join(text.split()) or None

    def write_text(self, name: str, text: str) -> None:
        """Publish a small text file whole (write-temp-then-rename); raises OSError."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path(name), text)

    def write_note(self, name: str, text: str) -> None:
        """Best effort: a note only saves later work (a read-only cache keeps working)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.path(name), text)
        except OSError as exc:
            log.info("cannot write %s: %s", self.path(name), exc)

    # -- internals ---------------------------------------------------------------------------

    def _write_key(self) -> None:
        """Record what the folder was made from, for people reading the cache."""
        if not self.path(_KEY_NAME).is_file():
            _write_atomic(self.path(_KEY_NAME), json.dumps(self.key, indent=2, default=str))

    def _sweep(self) -> None:
        """Remove temporary folders whose process is gone (or that are very old)."""
        now = time.time()
        for entry in self.folder.iterdir():
            if not entry.name.startswith(_TMP_PREFIX):
                continue
            pid_text = entry.name[len(_TMP_PREFIX) :].split("-", 1)[0]
            try:
                old = now - entry.lstat().st_mtime > _STALE_SECONDS
            except OSError:
                continue
            if old or not (pid_text.isdigit() and process_alive(int(pid_text))):
                log.info("removing %s, left by an interrupted export", entry)
                _remove(entry)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: the renames still keep files whole
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(_LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + _LOCK_WAIT_SECONDS
            locked = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        log.warning("%s stayed locked; going on without the lock", self.folder)
                        break
                    time.sleep(_LOCK_POLL_SECONDS)
                except OSError as exc:  # a file system without locks (some network mounts)
                    log.info("cannot lock %s (%s); going on without the lock", self.folder, exc)
                    break
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _flush(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _flush_folder(folder: Path) -> None:
    """Make the renames durable where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP_PREFIX}{os.getpid()}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
