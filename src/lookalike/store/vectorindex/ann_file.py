"""Saved HNSW indexes of a local collection: a rebuildable cache, never the truth.

Each save writes four immutable files, all first under temporary names, fsynced,
then renamed into place::

    ann-<seq>-<token>.usearch   the usearch HNSW index (int8 by default)
    ann-<seq>-<token>.keys      its keys, sorted, little-endian int64
    ann-<seq>-<token>.f32       their float32 vectors, row i for key i: exact
                                rescoring reads candidates from here (memory-mapped)
    ann-<seq>-<token>.crc       a CRC-32 per vector row (uint32), checked on every
                                row read from the .f32 file
    ann-<seq>-<token>.json      the stamp: the change-log seq the index reflects,
                                the database it belongs to, sizes and CRC-32s

The stamp is renamed last, so a stamp never names a half-written file; files
without a stamp are debris from a crash, removed by the next save. A save is
used only when its stamp parses, names this database, is not ahead of the
change log, the index and key files match their CRCs (usearch trusts the graph
it maps, so a damaged file must never reach it) and sampled vector rows equal
the database's. Saves are serialised across processes with ``flock`` on
``ann.lock``; a process finding it taken skips its save (another is writing).

A key's vector never changes (a re-upserted document gets a new key), so the
vector file may be written from the database at any time after the index.
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

from lookalike.errors import StoreDamagedError

if TYPE_CHECKING:  # usearch loads only when an HNSW index is built or opened
    from usearch.index import Index

__all__ = ["AnnFiles", "AnnStamp", "Base", "RowSource"]

log = logging.getLogger(__name__)

_STAMP_RE = re.compile(r"^ann-(\d+)-([0-9a-f]{16})\.json$")
_FILE_RE = re.compile(r"^ann-(\d+)-([0-9a-f]{16})\.")
_FORMAT = 3
_CHUNK = 16 << 20

#: given sorted keys, yields (keys, float32 vectors) for those that still exist, in key order
RowSource = Callable[[np.ndarray], Iterator[tuple[np.ndarray, np.ndarray]]]


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
    rows: int
    keys_crc32: int
    crcs_crc32: int
    name: str
    format: int = _FORMAT

    @property
    def file(self) -> str:
        return f"{self.name}.usearch"

    @classmethod
    def from_json(cls, text: str) -> AnnStamp:
        data: dict[str, Any] = json.loads(text)
        stamp = cls(**{k: data[k] for k in cls.__dataclass_fields__})
        ints = ("seq", "dim", "connectivity", "count", "deleted", "size", "crc32", "rows")
        if (
            stamp.format != _FORMAT
            or not _FILE_RE.match(stamp.name + ".")
            or not all(
                isinstance(getattr(stamp, f), int) for f in (*ints, "keys_crc32", "crcs_crc32")
            )
        ):
            raise ValueError("unknown stamp format")
        return stamp


@dataclass
class Base:
    """An HNSW index and the float32 vectors of its keys, for exact rescoring.

    ``stamp`` is None while the index lives only in memory (not saved yet); then
    ``keys``/``vectors``/``crcs`` are None too and rescoring reads the database instead.
    Every row read through ``rows`` is checked against its CRC-32.
    """

    index: Index
    seq: int
    stamp: AnnStamp | None = None
    keys: np.ndarray | None = None
    vectors: np.ndarray | None = None
    crcs: np.ndarray | None = None
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: int) -> bool:
        return bool(self.index.contains(key))

    def rows(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(keys found, their float32 vectors) from the vector file; None without one."""
        if self.keys is None or self.vectors is None:
            return None
        if len(self.keys) == 0:
            return keys[:0], np.empty((0, self.index.ndim), dtype=np.float32)
        pos = np.searchsorted(self.keys, keys)
        pos[pos >= len(self.keys)] = 0
        ok = self.keys[pos] == keys
        found = pos[ok]
        self.check_rows(found)
        return keys[ok], np.asarray(self.vectors[found], dtype=np.float32)

    def check_rows(self, positions: np.ndarray) -> None:
        """StoreDamagedError when a row of the vector file fails its CRC-32 (bit-rot)."""
        if self.vectors is None or self.crcs is None:
            return
        vectors, crcs, crc32 = self.vectors, self.crcs, zlib.crc32
        for p in positions.tolist():
            if crc32(vectors[p]) != int(crcs[p]):
                name = self.stamp.name if self.stamp else "?"
                folder = self.folder or Path("?")
                raise StoreDamagedError(
                    f"collection {folder.name!r}: row {p} of the saved vector file "
                    f"{folder / name}.f32 fails its checksum (damaged on disk); run "
                    f"`lookalike check --repair -c {folder.name}` to rebuild the saved index"
                )

    def release(self) -> None:
        self.keys = self.vectors = self.crcs = None
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
        self, *, db_uuid: str, dim: int, max_seq: int, verify: Callable[[Base], bool]
    ) -> Base | None:
        """Map the newest valid save, or None when there is none usable.

        ``verify`` gets the mapped Base and says whether its vectors match the database.
        """
        for _attempt in range(3):  # a concurrent save may delete files we just listed
            vanished = False
            for _seq, stamp_path in self.stamps():
                try:
                    base = self._load(stamp_path, db_uuid, dim, max_seq)
                except FileNotFoundError:
                    vanished = True
                    break
                if base is None:
                    continue
                if verify(base):
                    return base
                log.warning("ignoring saved index %s: its vectors differ from the database",
                            stamp_path)  # fmt: skip
                base.release()
            if not vanished:
                return None
        return None

    def load(self, stamp_path: Path, *, db_uuid: str, dim: int, max_seq: int) -> Base | None:
        """The save named by ``stamp_path`` when its files pass their checks, else None."""
        return self._load(stamp_path, db_uuid, dim, max_seq)

    def _load(self, stamp_path: Path, db_uuid: str, dim: int, max_seq: int) -> Base | None:
        try:
            stamp = AnnStamp.from_json(stamp_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable index stamp %s: %s", stamp_path, exc)
            return None
        reason = None
        if stamp.db_uuid != db_uuid:
            reason = "it belongs to another database"
        elif stamp.dim != dim:
            reason = f"it holds {stamp.dim}-d vectors, the collection {dim}-d"
        elif stamp.seq > max_seq:
            reason = f"it is ahead of the change log ({stamp.seq} > {max_seq})"
        if reason:
            log.warning("ignoring saved index %s: %s", stamp_path, reason)
            return None
        index_path, keys_path, vec_path, crc_path = self._paths(stamp.name)
        crc, size, inode = _crc_file(index_path)  # FileNotFoundError: retry the listing
        kcrc, ksize, _ = _crc_file(keys_path)
        ccrc, csize, _ = _crc_file(crc_path)
        vsize = os.stat(vec_path).st_size
        if (
            (size, crc) != (stamp.size, stamp.crc32)
            or (ksize, kcrc) != (stamp.rows * 8, stamp.keys_crc32)
            or (csize, ccrc) != (stamp.rows * 4, stamp.crcs_crc32)
        ):
            log.warning("ignoring damaged index files %s.* (size or CRC mismatch)", stamp.name)
            return None
        if vsize != stamp.rows * dim * 4:
            log.warning("ignoring index files %s.*: the vector file has the wrong size", stamp.name)
            return None
        base = self._open(stamp)
        if base is None or os.stat(index_path).st_ino != inode:
            raise FileNotFoundError(index_path)
        if len(base) != stamp.count:
            log.warning("ignoring index file %s: it does not match its stamp", index_path)
            return None
        return base

    def _paths(self, name: str) -> tuple[Path, Path, Path, Path]:
        return (
            self.folder / f"{name}.usearch",
            self.folder / f"{name}.keys",
            self.folder / f"{name}.f32",
            self.folder / f"{name}.crc",
        )

    def _open(self, stamp: AnnStamp) -> Base | None:
        index_path, keys_path, vec_path, crc_path = self._paths(stamp.name)
        try:
            ef = self.ef_for(stamp.count)
            from lookalike.native_libs import Index

            index = Index.restore(index_path, view=True, expansion_search=ef)
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("ignoring index file %s that usearch cannot map: %s", index_path, exc)
            return None
        if index is None or index.ndim != stamp.dim:
            return None
        keys: np.ndarray
        vecs: np.ndarray
        crcs: np.ndarray
        if stamp.rows:
            crcs = np.fromfile(crc_path, dtype="<u4", count=stamp.rows)
            # plain ndarray views of the mappings: fancy indexing is cheaper than on np.memmap
            keys = np.asarray(np.memmap(keys_path, dtype="<i8", mode="r", shape=(stamp.rows,)))
            vecs = np.asarray(
                np.memmap(vec_path, dtype="<f4", mode="r", shape=(stamp.rows, stamp.dim))
            )
        else:
            keys = np.empty(0, dtype=np.int64)
            vecs = np.empty((0, stamp.dim), dtype=np.float32)
            crcs = np.empty(0, dtype="<u4")
        return Base(
            index=index, seq=stamp.seq, stamp=stamp, keys=keys, vectors=vecs, crcs=crcs,
            folder=self.folder,
        )  # fmt: skip

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

    def save(self, base: Base, *, db_uuid: str, rows_for: RowSource) -> Base | None:
        """Write ``base.index`` (and the vectors of its keys, from ``rows_for``) as the cache
        for change-log position ``base.seq``; return it memory-mapped from the new files.

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
            finals = self._paths(name)
            tmps = [self.folder / f".{p.name}.tmp" for p in finals]
            tmp_stamp = self.folder / f".{name}.json.tmp"
            try:
                index.save(os.fspath(tmps[0]))
                _fsync_path(tmps[0])
                crc, size, _ = _crc_file(tmps[0])
                wanted = np.sort(np.asarray(index.keys, dtype=np.int64))
                rows, kcrc, ccrc = 0, 0, 0
                with (
                    open(tmps[1], "wb") as fk,
                    open(tmps[2], "wb") as fv,
                    open(tmps[3], "wb") as fc,
                ):
                    for keys, vecs in rows_for(wanted):
                        kbytes = np.ascontiguousarray(keys, dtype="<i8").tobytes()
                        fk.write(kbytes)
                        kcrc = zlib.crc32(kbytes, kcrc)
                        data = np.ascontiguousarray(vecs, dtype="<f4")
                        fv.write(data.tobytes())
                        cbytes = np.array([zlib.crc32(r) for r in data], dtype="<u4").tobytes()
                        fc.write(cbytes)
                        ccrc = zlib.crc32(cbytes, ccrc)
                        rows += len(keys)
                    for fh in (fk, fv, fc):
                        fh.flush()
                        os.fsync(fh.fileno())
                from lookalike.native_libs import Index

                meta = Index.metadata(tmps[0]) or {}
                stamp = AnnStamp(
                    seq=base.seq,
                    db_uuid=db_uuid,
                    dim=index.ndim,
                    dtype=str(index.dtype.name).lower(),
                    connectivity=index.connectivity,
                    count=len(index),
                    deleted=int(meta.get("count_deleted", 0)),
                    size=size,
                    crc32=crc,
                    rows=rows,
                    keys_crc32=kcrc,
                    crcs_crc32=ccrc,
                    name=name,
                )
                for tmp, final in zip(tmps, finals, strict=True):
                    os.replace(tmp, final)
                with open(tmp_stamp, "w", encoding="utf-8") as sh:
                    json.dump(asdict(stamp), sh)
                    sh.flush()
                    os.fsync(sh.fileno())
                os.replace(tmp_stamp, self.folder / f"{name}.json")
                _fsync_path(self.folder)
            finally:
                for tmp in (*tmps, tmp_stamp):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
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
