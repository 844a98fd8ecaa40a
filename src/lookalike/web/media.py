"""Serving indexed images and their thumbnails, by id only.

A path never comes from the request: the id is looked up in the store and only
the path recorded at index time is opened. What is served is what was indexed,
proven on the opened descriptor: its size must be the recorded one and its
content must hash to the recorded sha256. Size and mtime alone prove nothing
(a file can be padded to a size and ``touch``ed to a time, or swapped for a
symlink to another file), so each file identity seen through ``fstat`` is hashed
once and remembered (``verified.py``); a swapped, edited or re-linked file has a
new identity and is hashed again. The indexer
follows symlinks that leave the indexed folder on purpose, so where the path
leads is not the test: the content is. Anything else is a clear 410, never the
wrong bytes or a 500.

Thumbnails are generated once and cached under ``<collection>/thumbs``, named by
a hash of (id, content hash, size): an edited and re-indexed file gets a new
name, and the name doubles as a strong ETag. Files are written to a temporary
name and renamed, so a crash never leaves a half-written thumbnail.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lookalike.errors import FileGoneError, NotFoundError, QueryError
from lookalike.processes import process_alive
from lookalike.records import Record
from lookalike.store.base import Store
from lookalike.web.verified import VerifiedFiles

__all__ = ["MIME_TYPES", "THUMB_SIZES", "Media", "OpenedImage", "Thumbnail", "mime_type"]

log = logging.getLogger("lookalike.web")

THUMB_SIZES = (256, 1024)
_MIME = {
    "jpeg": "image/jpeg",
    "mpo": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "avif": "image/avif",
    "ico": "image/x-icon",
}
#: every Content-Type the file route can answer with
MIME_TYPES = (*sorted(set(_MIME.values())), "application/octet-stream")
_MAX_ID = 256
_STALE_TMP_SECONDS = 3600


def mime_type(fmt: str) -> str:
    return _MIME.get(fmt.lower(), "application/octet-stream")


@dataclass
class OpenedImage:
    """An indexed file, opened and checked; stream ``file`` and close it."""

    record: Record
    file: IO[bytes]
    size: int

    def chunks(self, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        try:
            while chunk := self.file.read(chunk_size):
                yield chunk
        finally:
            self.file.close()


@dataclass
class Thumbnail:
    """A thumbnail's bytes, or ``data=None`` when the client's copy (If-None-Match) is current."""

    data: bytes | None
    etag: str
    record: Record


class Media:
    """Looks up indexed files and keeps their thumbnail cache."""

    def __init__(self, store: Store, thumbs_dir: Path, *, max_pixels: int, work_slots: int) -> None:
        self.store = store
        self.thumbs_dir = thumbs_dir
        self.max_pixels = max_pixels
        # Decoding is CPU and memory heavy: never run more at once than the machine can take.
        self._slots = threading.BoundedSemaphore(max(1, work_slots))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._verified = VerifiedFiles(thumbs_dir / "verified")

    # -- lookups -----------------------------------------------------------------------

    def record(self, doc_id: str) -> Record:
        if not doc_id or len(doc_id) > _MAX_ID or not doc_id.isprintable():
            raise NotFoundError(f"no indexed image with id {doc_id[:40]!r}", field="id")
        found = self.store.get([doc_id], with_vectors=False)
        if not found:
            raise NotFoundError(
                f"no indexed image with id {doc_id!r}; ids come from search results", field="id"
            )
        return found[0]

    def open(self, doc_id: str) -> OpenedImage:
        """The indexed file, opened, after checking it is still what was indexed."""
        rec = self.record(doc_id)
        fh = self._open_checked(rec)
        return OpenedImage(record=rec, file=fh, size=os.fstat(fh.fileno()).st_size)

    def _open_checked(self, rec: Record) -> IO[bytes]:
        # O_NONBLOCK: a FIFO put where the image was must not hang the thread on open().
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(rec.path, flags)
        except (FileNotFoundError, NotADirectoryError):
            raise self._gone(rec, "was moved or deleted since it was indexed") from None
        except OSError as exc:
            raise self._gone(rec, f"cannot be read ({exc.strerror or exc})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._gone(rec, "is no longer a regular file")
            fh = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        try:
            if not self._matches(rec, fh, st):
                raise self._gone(rec, "is not the file that was indexed (its content changed)")
        except BaseException:
            fh.close()
            raise
        return fh

    def _gone(self, rec: Record, what: str) -> FileGoneError:
        return FileGoneError(
            f"{rec.path} {what}; run `lookalike index {rec.root}` to bring the collection "
            "up to date",
            field="id",
        )

    def check(self, doc_id: str) -> Record:
        """The record of ``doc_id`` once its file is proven to be the indexed one (else 410)."""
        rec = self.record(doc_id)
        self._open_checked(rec).close()
        return rec

    def _matches(self, rec: Record, fh: IO[bytes], st: os.stat_result) -> bool:
        if st.st_size != rec.size or not rec.sha256:
            return False
        return self._verified.matches(rec.sha256, fh, st)

    # -- thumbnails --------------------------------------------------------------------

    @staticmethod
    def thumb_key(rec: Record, size: int) -> str:
        raw = f"{rec.id}\x00{rec.sha256}\x00{size}".encode("utf-8", "surrogateescape")
        return hashlib.sha256(raw).hexdigest()[:32]

    def thumbnail(self, doc_id: str, size: int, *, if_none_match: str | None = None) -> Thumbnail:
        """The cached thumbnail, generated when missing."""
        if size not in THUMB_SIZES:
            sizes = " or ".join(str(s) for s in THUMB_SIZES)
            raise QueryError(f"size must be {sizes}", field="size")
        rec = self.record(doc_id)
        key = self.thumb_key(rec, size)
        etag = f'"{key}"'
        path = self.thumbs_dir / key[:2] / f"{key}.webp"
        with self._open_checked(rec) as fh:
            if if_none_match is not None and etag_matches(if_none_match, etag):
                return Thumbnail(data=None, etag=etag, record=rec)
            try:
                data = path.read_bytes()
            except OSError:  # not made yet (or the cache was cleared under us)
                data = self._generate(fh, path, key, size)
        return Thumbnail(data=data, etag=etag, record=rec)

    def _generate(self, fh: IO[bytes], path: Path, key: str, size: int) -> bytes:
        from lookalike.images import make_thumbnail

        with self._key_lock(key):
            with contextlib.suppress(OSError):
                return path.read_bytes()  # another request made it while we waited
            with self._slots:
                data = make_thumbnail(fh, max_pixels=self.max_pixels, size=size, fmt="webp")
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except OSError as exc:  # a read-only or full disk costs the cache, not the answer
                log.warning("cannot cache thumbnail %s: %s", path, exc)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            return data

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        try:
            with lock:
                yield
        finally:
            with self._locks_guard:
                if not lock.locked():
                    self._locks.pop(key, None)

    def work_slot(self) -> threading.BoundedSemaphore:
        """The semaphore that bounds concurrent decoding (uploads use it too)."""
        return self._slots

    def remove_stale_temp_files(self) -> int:
        """Delete temporary thumbnail files that a killed process left behind: those of a
        process that no longer runs, and any older than an hour."""
        removed = 0
        if not self.thumbs_dir.is_dir():
            return 0
        cutoff = time.time() - _STALE_TMP_SECONDS
        for tmp in self.thumbs_dir.glob("*/*.tmp"):
            with contextlib.suppress(OSError):
                if not _writer_alive(tmp.name) or tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed


def _writer_alive(name: str) -> bool:
    """Whether the process that named this temporary file (``<key>.webp.<pid>.<tid>.tmp``) runs."""
    parts = name.split(".")
    try:
        pid = int(parts[-3])
    except (IndexError, ValueError):
        return False
    return process_alive(pid)


def etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 weak comparison for If-None-Match (``*``, lists, ``W/`` prefixes)."""
    bare = etag.removeprefix("W/")
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == bare:
            return True
    return False
