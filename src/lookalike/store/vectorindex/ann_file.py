"""Saved HNSW indexes of a local collection: a rebuildable cache, never the truth.

Each save writes two immutable files, first under temporary names, fsynced, then
renamed into place::

    ann-<seq>-<token>.usearch   the usearch HNSW graph and its codes (one sign bit per
                                dimension, ``b1``, for 384 dimensions and more)
    ann-<seq>-<token>.json      the stamp: the change-log seq the index reflects, the
                                database it belongs to, the storage kind, size and CRC-32

There is no copy of the vectors beside it (format 4; format 3 kept a float32
rescoring file): candidates are rescored from the database, the one place vectors
are stored. A save of another format is ignored, rebuilt once and then removed.

The stamp is renamed last, so a stamp never names a half-written file; files
without a stamp are debris from a crash, removed by the next save. A save is
used only when its stamp parses, names this database and storage kind, is not
ahead of the change log, the index file matches its CRC (usearch trusts the graph
it maps, so a damaged file must never reach it) and sampled codes equal those of
the database's vectors. Saves are serialised across processes with ``flock`` on
``ann.lock``; a process finding it taken skips its save (another is writing).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # usearch loads only when an HNSW index is built or opened
    from usearch.index import Index

__all__ = ["FORMAT", "AnnFiles", "AnnStamp", "Base", "OldFormatError", "graph_ndim"]

log = logging.getLogger(__name__)

_STAMP_RE = re.compile(r"^ann-(\d+)-([0-9a-f]{16})\.json$")
_FILE_RE = re.compile(r"^ann-(\d+)-([0-9a-f]{16})\.")
FORMAT = 4
_CHUNK = 16 << 20


@dataclass(frozen=True)
class AnnStamp:
    seq: int
    db_uuid: str
    dim: int
    dtype: str
    connectivity: int
    count: int
    deleted: int
    size: int
    crc32: int
    name: str
    #: 0 for a complete index; else a checkpoint of a full build holding every key up to
    #: this one (as of ``seq``), from which a killed build continues
    partial_upto: int = 0
    format: int = FORMAT

    @property
    def file(self) -> str:
        return f"{self.name}.usearch"

    @classmethod
    def from_json(cls, text: str) -> AnnStamp:
        data: dict[str, Any] = json.loads(text)
        if data.get("format") != FORMAT:
            raise OldFormatError(f"format {data.get('format')!r}, this lookalike writes {FORMAT}")
        stamp = cls(**{k: data[k] for k in cls.__dataclass_fields__})
        ints = ("seq", "dim", "connectivity", "count", "deleted", "size", "crc32", "partial_upto")
        if not _FILE_RE.match(stamp.name + ".") or not all(
            isinstance(getattr(stamp, f), int) for f in ints
        ):
            raise ValueError("unknown stamp format")
        return stamp


class OldFormatError(ValueError):
    """A stamp written by another version of lookalike (e.g. format 3 with its .f32 file)."""


@dataclass
class Base:
    """An HNSW index (``stamp`` None while it lives only in memory, not saved yet).

    It holds codes, not vectors: its candidates are rescored from the database."""

    index: Index
    seq: int
    stamp: AnnStamp | None = None
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: int) -> bool:
        return bool(self.index.contains(key))

    def codes(self, keys: np.ndarray, dtype: Any = None) -> np.ndarray:
        """The stored codes of ``keys`` (which must be in the index), one row each
        (``dtype`` float32: the int8/float kinds dequantised)."""
        if dtype is None and len(keys):
            packed = self._packed_codes(np.asarray(keys, dtype=np.uint64))
            if packed is not None:
                return packed
        got = self.index.get(np.asarray(keys, dtype=np.uint64), dtype=dtype)
        if isinstance(got, tuple):
            return np.stack([np.asarray(g).reshape(-1) for g in got])
        return np.asarray(got).reshape(len(keys), -1)

    def _packed_codes(self, keys: np.ndarray) -> np.ndarray | None:
        """b1 codes joined in one buffer: ``Index.get`` wraps every row in its own array
        and a tuple (0.3 ms for the 400 codes a query re-ranks, against 0.05 ms here).
        None where usearch lacks the compiled call (another version): use ``get``."""
        compiled = getattr(self.index, "_compiled", None)
        kind = getattr(self.index, "dtype", None)
        if compiled is None or str(kind) != "ScalarKind.B1" or not hasattr(compiled, "get_many"):
            return None
        try:
            rows = compiled.get_many(keys, kind)
            joined = b"".join(rows)
        except (TypeError, ValueError, RuntimeError):
            return None
        width = len(joined) // len(keys)
        if width * len(keys) != len(joined):
            return None
        return np.frombuffer(joined, dtype=np.uint8).reshape(len(keys), width)

    def release(self) -> None:
        self.index.reset()


def _crc_of(fd: int) -> tuple[int, int]:
    crc, size = 0, 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return crc, size
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)


def _crc_file(path: Path) -> tuple[int, int, int]:
    """(crc, size, inode) of a file read through one descriptor."""
    fd = os.open(path, os.O_RDONLY)
    try:
        inode = os.fstat(fd).st_ino
        crc, size = _crc_of(fd)
    finally:
        os.close(fd)
    return crc, size, inode


def graph_ndim(dim: int, dtype: str) -> int:
    """usearch's ``ndim`` for ``dim``-dimensional vectors: bits rounded up to bytes for b1."""
    return -(-dim // 8) * 8 if dtype == "b1" else dim


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AnnFiles:
    """The saved HNSW files in one collection folder."""

    def __init__(self, folder: Path, *, ef_for: Callable[[int], int]) -> None:
        self.folder = folder
        self.lock_path = folder / "ann.lock"
        self.ef_for = ef_for  # HNSW search breadth for an index of that many vectors

    def stamps(self) -> list[tuple[int, Path]]:
        """(seq, stamp path) of every stamp file, newest first."""
        found: list[tuple[int, float, Path]] = []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []
        for entry in entries:
            m = _STAMP_RE.match(entry.name)
            if m:
                with contextlib.suppress(OSError):
                    found.append((int(m.group(1)), entry.stat().st_mtime, Path(entry.path)))
        found.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [(seq, path) for seq, _, path in found]

    def newest_seq(self) -> int | None:
        stamps = self.stamps()
        return stamps[0][0] if stamps else None

    # -- loading -----------------------------------------------------------------------

    def load_newest(
        self,
        *,
        db_uuid: str,
        dim: int,
        dtype: str,
        max_seq: int,
        verify: Callable[[Base], bool],
        partial: bool = False,
    ) -> Base | None:
        """Map the newest valid complete save (``partial``: build checkpoint), or None when
        there is none usable.

        ``verify`` gets the mapped Base and says whether its codes match the database.
        """
        for _attempt in range(3):  # a concurrent save may delete files we just listed
            vanished = False
            for _seq, stamp_path in self.stamps():
                try:
                    base = self._load(stamp_path, db_uuid, dim, dtype, max_seq)
                except FileNotFoundError:
                    vanished = True
                    break
                if base is None:
                    continue
                if base.stamp is not None and bool(base.stamp.partial_upto) != partial:
                    base.release()
                    continue
                if verify(base):
                    return base
                log.warning("ignoring saved index %s: its codes differ from the database",
                            stamp_path)  # fmt: skip
                base.release()
            if not vanished:
                return None
        return None

    def load(
        self, stamp_path: Path, *, db_uuid: str, dim: int, dtype: str, max_seq: int
    ) -> Base | None:
        """The save named by ``stamp_path`` when its files pass their checks, else None."""
        return self._load(stamp_path, db_uuid, dim, dtype, max_seq)

    def _load(
        self, stamp_path: Path, db_uuid: str, dim: int, dtype: str, max_seq: int
    ) -> Base | None:
        try:
            stamp = AnnStamp.from_json(stamp_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except OldFormatError as exc:
            log.info("saved index %s was made by another lookalike (%s); building a new one "
                     "from the database, which replaces it", stamp_path, exc)  # fmt: skip
            return None
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable index stamp %s: %s", stamp_path, exc)
            return None
        reason = None
        if stamp.db_uuid != db_uuid:
            reason = "it belongs to another database"
        elif stamp.dim != dim:
            reason = f"it holds {stamp.dim}-d vectors, the collection {dim}-d"
        elif stamp.dtype != dtype:
            reason = f"it stores {stamp.dtype} codes, the collection is set to {dtype}"
        elif stamp.seq > max_seq:
            reason = f"it is ahead of the change log ({stamp.seq} > {max_seq})"
        if reason:
            log.warning("ignoring saved index %s: %s", stamp_path, reason)
            return None
        index_path = self._path(stamp.name)
        crc, size, inode = _crc_file(index_path)  # FileNotFoundError: retry the listing
        if (size, crc) != (stamp.size, stamp.crc32):
            log.warning("ignoring damaged index file %s (size or CRC mismatch)", index_path)
            return None
        base = self._open(stamp)
        if base is None or os.stat(index_path).st_ino != inode:
            raise FileNotFoundError(index_path)
        if len(base) != stamp.count:
            log.warning("ignoring index file %s: it does not match its stamp", index_path)
            return None
        return base

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.usearch"

    def _open(self, stamp: AnnStamp) -> Base | None:
        index_path = self._path(stamp.name)
        try:
            ef = self.ef_for(stamp.count)
            from lookalike.native_libs import Index

            index = Index.restore(index_path, view=True, expansion_search=ef)
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("ignoring index file %s that usearch cannot map: %s", index_path, exc)
            return None
        if index is None or index.ndim != graph_ndim(stamp.dim, stamp.dtype):
            return None
        return Base(index=index, seq=stamp.seq, stamp=stamp, folder=self.folder)

    # -- saving ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _save_lock(self) -> Iterator[bool]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def save(self, base: Base, *, db_uuid: str, dim: int, partial_upto: int = 0) -> Base | None:
        """Write ``base.index`` as the cache for change-log position ``base.seq``; return
        it memory-mapped from the new file.

        Returns None when another process is saving right now. Raises OSError or
        RuntimeError (disk full, read-only folder) for the caller to log: the cache
        is optional.
        """
        index = base.index
        with self._save_lock() as locked:
            if not locked:
                log.info("another process is saving the index of %s; skipping", self.folder)
                return None
            name = f"ann-{base.seq}-{secrets.token_hex(8)}"
            final = self._path(name)
            tmp = self.folder / f".{final.name}.tmp"
            tmp_stamp = self.folder / f".{name}.json.tmp"
            try:
                index.save(os.fspath(tmp))
                _fsync_path(tmp)
                crc, size, _ = _crc_file(tmp)
                from lookalike.native_libs import Index

                meta = Index.metadata(tmp) or {}
                stamp = AnnStamp(
                    seq=base.seq,
                    db_uuid=db_uuid,
                    dim=dim,
                    dtype=str(index.dtype.name).lower(),
                    connectivity=index.connectivity,
                    count=len(index),
                    deleted=int(meta.get("count_deleted", 0)),
                    size=size,
                    crc32=crc,
                    name=name,
                    partial_upto=partial_upto,
                )
                os.replace(tmp, final)
                with open(tmp_stamp, "w", encoding="utf-8") as sh:
                    json.dump(asdict(stamp), sh)
                    sh.flush()
                    os.fsync(sh.fileno())
                os.replace(tmp_stamp, self.folder / f"{name}.json")
                _fsync_path(self.folder)
            finally:
                for leftover in (tmp, tmp_stamp):
                    with contextlib.suppress(FileNotFoundError):
                        leftover.unlink()
            self._remove_older(keep=name, seq=base.seq)
        return self._open(stamp)

    def _remove_older(self, keep: str, seq: int) -> None:
        """Delete older saves and crash debris (only under the save lock). Newer saves of
        another process stay: they are the better cache."""
        for entry in list(os.scandir(self.folder)):
            n = entry.name
            m = _FILE_RE.match(n)
            older = m is not None and int(m.group(1)) <= seq
            debris = n.startswith(".ann-") and n.endswith(".tmp")
            if (older or debris) and not n.startswith(keep + "."):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def clear_debris(self) -> None:
        """Remove what crashed saves left behind: temporary files and unstamped files."""
        with self._save_lock() as locked:
            if not locked:  # someone is saving: their temporary files are not debris
                return
            try:
                names = {e.name for e in os.scandir(self.folder)}
            except OSError:
                return
            stamped = {n[: -len(".json")] for n in names if _STAMP_RE.match(n)}
            for n in names:
                m = _FILE_RE.match(n)
                unstamped = m is not None and n.split(".")[0] not in stamped
                if unstamped or (n.startswith(".ann-") and n.endswith(".tmp")):
                    with contextlib.suppress(OSError):
                        os.unlink(self.folder / n)

    def total_bytes(self) -> int:
        total = 0
        for entry in list(os.scandir(self.folder)):
            if entry.name.startswith(("ann-", ".ann-")):
                with contextlib.suppress(OSError):
                    total += entry.stat().st_size
        return total
