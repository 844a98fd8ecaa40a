"""The derived vector index of a local collection, rebuilt from SQLite whenever in doubt.

Shape (the same code serves small and large collections)::

    base    an HNSW graph (usearch) of compact codes: one sign bit per dimension (b1)
            from 384 dimensions, int8 below; memory-mapped from a saved file
            (``ann_file``); None when small
    delta   the vectors added since the base was made, in one float32 matrix
            searched exactly (for a small collection: every vector)
    removed keys deleted since the base was made, filtered out of its results

The graph holds codes, not vectors: its candidates (several per wanted hit) are
rescored exactly from the float32 vectors in the database, the one place they are
stored, so every score is exact and only recall is approximate. Before each search
the index compares its change-log position with SQLite's head and applies just the
changes since (``sync``). When the delta grows past a limit, base and delta are
merged into a new save. A missing, damaged or inconsistent save is rebuilt from
SQLite; another process's newer save is adopted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.errors import StoreDamagedError
from lookalike.store.vectorindex.ann_file import AnnFiles, Base, graph_ndim
from lookalike.store.vectorindex.build import GraphBuilder, add_codes
from lookalike.store.vectorindex.exact_matrix import ExactMatrix, dot_rows
from lookalike.store.vectorindex.types import (
    Candidates,
    IndexParams,
    IndexStatus,
    VectorSource,
    encode,
)

if TYPE_CHECKING:  # usearch loads only when an HNSW index is built or opened
    from usearch.index import Index

__all__ = ["DerivedIndex", "codes_match"]

log = logging.getLogger(__name__)

_FILE_CHECK_INTERVAL_S = 5.0
_BATCH = 10_000


@dataclass
class _State:
    dim: int
    seq: int = 0
    base: Base | None = None
    delta: ExactMatrix = field(init=False)
    removed: set[int] = field(default_factory=set)
    _removed_arr: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.delta = ExactMatrix(self.dim)

    @property
    def base_size(self) -> int:
        return 0 if self.base is None else len(self.base)

    def live(self) -> int:
        return self.base_size - len(self.removed) + len(self.delta)

    def removed_array(self) -> np.ndarray:
        if self._removed_arr is None or len(self._removed_arr) != len(self.removed):
            self._removed_arr = np.fromiter(self.removed, dtype=np.int64, count=len(self.removed))
        return self._removed_arr

    def apply(self, source: VectorSource, after: int, head: int) -> int:
        """Apply the change log (after, head] from ``source`` (inside its snapshot)."""
        rows = source.changes(after)
        added: dict[int, None] = {}
        for _seq, key, op in rows:
            if op == "U":
                added[key] = None
            elif key in added:
                del added[key]
            elif not self.delta.remove(key) and self.base is not None and key in self.base:
                self.removed.add(key)
        keys = list(added)
        for start in range(0, len(keys), 5000):
            ks, vs = source.vectors(keys[start : start + 5000])
            self.delta.add(ks, vs)
        self.seq = head
        return len(rows)


def codes_match(base: Base, keys: np.ndarray, vecs: np.ndarray, dtype: str) -> bool:
    """Whether the graph's codes of ``keys`` are those of ``vecs`` (the database's): equal
    sign bits for b1, cosine >= 0.99 for the quantised kinds."""
    if len(keys) == 0:
        return True
    if dtype == "b1":
        return bool(np.array_equal(base.codes(keys), encode(vecs, "b1")))
    got = base.codes(keys, dtype=np.float32)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(vecs, axis=1)
    cos = np.einsum("ij,ij->i", got, vecs) / np.maximum(norms, 1e-12)
    return bool((cos >= 0.99).all())


def _rerank_by_signs(base: Base, keys: np.ndarray, q: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` of ``keys`` whose sign codes score best against the float query
    (q . sign(x), the asymmetric estimate of q . x), best first."""
    bits = np.unpackbits(base.codes(keys), axis=1)[:, : q.shape[0]]
    estimate = bits.astype(np.float32) @ (2 * q) - np.float32(q.sum())  # (2b - 1) . q
    best = np.argpartition(-estimate, keep - 1)[:keep]
    return keys[best[np.argsort(-estimate[best], kind="stable")]]


class DerivedIndex:
    """Base + delta + removed, kept in step with SQLite through the change log. Thread-safe."""

    def __init__(
        self,
        folder: Path,
        source: VectorSource,
        *,
        dim: int,
        db_uuid: str,
        params: IndexParams,
        saves: bool = True,
    ) -> None:
        params = params.resolved(dim)
        self.files = AnnFiles(folder, ef_for=params.ef_for)
        #: False on a read-only folder: saved files are read, never written or removed
        self.saves = saves
        self._source = source
        self._dim = dim
        self._uuid = db_uuid
        self.params = params
        self._lock = threading.RLock()
        self._state: _State | None = None
        self._origin = "none"
        self._full_builds = self._merges = self._applied = self._loaded_files = 0
        self._last_file_check = 0.0
        self._failed_seq: int | None = None

    # -- keeping in step ---------------------------------------------------------------

    def sync(self, *, strict: bool = False, load: bool = True) -> None:
        """Apply changes committed since the last call; merge when the delta is large.

        ``strict`` merges at the flush limit rather than the (larger) query limit,
        and saves a base that exists only in memory.
        """
        with self._lock:
            if self._state is None:
                if not load:
                    return
                self._state = self._initial_load()
            else:
                head = self._source.head()
                if head != self._state.seq:
                    self._catch_up()
                elif time.monotonic() - self._last_file_check > _FILE_CHECK_INTERVAL_S:
                    self._adopt_newer_file()
            if self._should_merge(strict=strict):
                self._merge()
            elif strict:
                self._save(self._state)

    def _initial_load(self) -> _State:
        src = self._source
        if self.saves:
            with contextlib.suppress(OSError):
                self.files.clear_debris()
        with src.snapshot():
            head, live = src.head(), src.count()
            if live == 0 or live < self.params.exact_threshold:
                state = _State(self._dim, seq=head)
                for keys, vecs in src.iter_vectors(_BATCH):
                    state.delta.add(keys, vecs)
                self._check_count(len(state.delta), live)
                self._origin = "exact"
                return state
            adopted = self._state_from_file(max_seq=head, expected_live=live)
            if adopted is not None:
                self._origin = "file"
                return adopted
            state = self._rebuild_in_snapshot(head)
        self._save(state)
        return state

    def _check_count(self, vectors: int, documents: int) -> None:
        """The vectors read must be one per document: fewer means rows SQLite could not see
        (a damaged page), which would otherwise silently drop images from every search."""
        if vectors != documents:
            name = self.files.folder.name
            raise StoreDamagedError(
                f"collection {name!r}: the database holds {documents} documents but "
                f"{vectors} readable vectors (the file was damaged on disk); run "
                f"`lookalike check --repair -c {name}` to find and re-embed what is missing"
            )

    def _verify(self, base: Base) -> bool:
        """Sampled codes of the saved graph equal those of the database's vectors (keys that
        still exist): a file consistent with its stamp but made from other vectors fails."""
        if len(base) == 0:
            return True
        all_keys = np.sort(np.asarray(base.index.keys, dtype=np.int64))
        picks = np.unique(np.linspace(0, len(all_keys) - 1, 16).astype(np.int64))
        keys, vecs = self._source.vectors(all_keys[picks].tolist())
        return codes_match(base, keys, vecs, self.params.dtype)

    def _state_from_file(self, *, max_seq: int, expected_live: int) -> _State | None:
        """A state from the newest valid saved file caught up to ``max_seq`` (in a snapshot)."""
        base = self.files.load_newest(
            db_uuid=self._uuid,
            dim=self._dim,
            dtype=self.params.dtype,
            max_seq=max_seq,
            verify=self._verify,
        )
        if base is None:
            return None
        st = _State(self._dim, base=base)
        self._applied += st.apply(self._source, base.seq, max_seq)
        if st.live() != expected_live:
            log.warning(
                "saved index %s disagrees with the database (%d vs %d documents); ignoring it",
                base.stamp.name if base.stamp else "?", st.live(), expected_live,
            )  # fmt: skip
            base.release()
            return None
        self._loaded_files += 1
        return st

    def _rebuild_in_snapshot(self, head: int) -> _State:
        """Build the graph from every vector (inside a snapshot at ``head``), continuing a
        killed build from its last checkpoint (``build``)."""
        live = self._source.count()
        builder = GraphBuilder(
            self.files, self._source, self.params, dim=self._dim, db_uuid=self._uuid,
            saves=self.saves, verify=self._verify, new_index=self._new_index,
        )  # fmt: skip
        index, resumed = builder.build(head, live)
        self._check_count(len(index), live)
        self._full_builds += 1
        self._origin = "resumed" if resumed else "rebuilt"
        return _State(self._dim, seq=head, base=Base(index=index, seq=head))

    def _catch_up(self) -> None:
        assert self._state is not None
        st = self._state
        src = self._source
        with src.snapshot():
            head = src.head()
            pending = src.count_changes(st.seq)
            if pending > self._query_limit(st) and self._adopt_newer_file():
                return
            self._applied += st.apply(src, st.seq, head)
        self._adopt_newer_file()

    def _adopt_newer_file(self) -> bool:
        """Switch to a newer save made by another process; True if switched."""
        self._last_file_check = time.monotonic()
        st = self._state
        assert st is not None
        if st.base is None and len(st.delta) < self.params.exact_threshold:
            return False
        newest = self.files.newest_seq()
        base_seq = st.base.seq if st.base is not None else -1
        if newest is None or newest <= base_seq or newest == self._failed_seq:
            return False
        src = self._source
        with src.snapshot():
            new = self._state_from_file(max_seq=src.head(), expected_live=src.count())
        if new is None or new.base is None or new.base.seq <= base_seq:
            self._failed_seq = newest  # do not re-read a rejected file on every search
            return False
        self._state = new
        self._origin = "adopted"
        if st.base is not None:
            st.base.release()
        return True

    # -- merging and saving ------------------------------------------------------------

    def _limit(self, st: _State) -> float:
        return max(self.params.merge_min, self.params.merge_fraction * st.base_size)

    def _query_limit(self, st: _State) -> float:
        return self.params.query_merge_factor * self._limit(st)

    def _should_merge(self, *, strict: bool) -> bool:
        st = self._state
        if st is None:
            return False
        if st.base is None:
            return len(st.delta) > 0 and len(st.delta) >= self.params.exact_threshold
        pending = len(st.delta) + len(st.removed)
        if pending == 0:
            return False
        return pending >= self._limit(st) if strict else pending > self._query_limit(st)

    def _new_index(self, size: int) -> Index:
        from lookalike.native_libs import Index  # usearch only when an HNSW index is built

        p = self.params
        metric = "hamming" if p.dtype == "b1" else "cos"
        return Index(
            ndim=graph_ndim(self._dim, p.dtype), metric=metric, dtype=p.dtype,
            connectivity=p.connectivity, expansion_add=p.expansion_add,
            expansion_search=p.ef_for(size),
        )  # fmt: skip

    def _merge(self) -> None:
        st = self._state
        assert st is not None
        old = st.base
        tombstones = len(st.removed) + (old.stamp.deleted if old and old.stamp else 0)
        if old is not None and tombstones > 0.25 * max(1, len(old)):
            with self._source.snapshot():
                new = self._rebuild_in_snapshot(self._source.head())
        else:
            if old is None:
                index = self._new_index(len(st.delta))
            elif old.stamp is not None:  # a read-only view: merge into a private copy
                index = old.index.copy()
            else:
                index = old.index
            if st.removed:
                index.remove(st.removed_array().astype(np.uint64))
            order = np.argsort(st.delta.keys)
            dkeys, dvecs = st.delta.keys[order], st.delta.vectors[order]
            if len(dkeys):
                add_codes(index, dkeys, dvecs, self.params.dtype)
            new = _State(self._dim, seq=st.seq, base=Base(index=index, seq=st.seq))
            self._origin = "built" if old is None else "merged"
        self._merges += 1
        self._state = new
        self._save(new)
        if old is not None and (new.base is None or old.index is not new.base.index):
            old.release()

    def _save(self, st: _State | None) -> None:
        """Save a base that lives only in memory; on failure it stays there."""
        if st is None or st.base is None or st.base.stamp is not None or not self.saves:
            return
        try:
            saved = self.files.save(st.base, db_uuid=self._uuid, dim=self._dim)
        except (OSError, RuntimeError) as exc:
            log.warning("cannot save the vector index in %s (%s); it stays in memory",
                        self.files.folder, exc)  # fmt: skip
            return
        if saved is not None and len(saved) == len(st.base):
            st.base = saved

    # -- searching ---------------------------------------------------------------------

    def candidates(self, q: np.ndarray, m: int) -> Candidates:
        """The ``m`` best live vectors by exact cosine (approximate recall on the HNSW part)."""
        with self._lock:
            st = self._state
            assert st is not None, "sync() first"
            parts_k: list[np.ndarray] = []
            parts_s: list[np.ndarray] = []
            complete = True
            if st.base is not None and len(st.base):
                size = len(st.base)
                live_base = max(1, size - len(st.removed))
                want = self.params.fetch_for(m)
                pool = self.params.pool_for(want)
                mb = min(size, pool + math.ceil(pool * len(st.removed) / live_base))
                # asked for a large share of the graph: scan its codes instead, which also
                # reaches every node (a graph walk need not)
                exact = mb * 4 >= size
                code = encode(q, self.params.dtype)
                found = st.base.index.search(code, mb, threads=1, exact=exact)
                keys = np.asarray(found.keys, dtype=np.int64)
                if st.removed:
                    keys = keys[~np.isin(keys, st.removed_array())]
                cut = len(keys) > want and pool > want
                if cut:
                    keys = _rerank_by_signs(st.base, keys, q, want)
                # exact scores from the database (a key deleted meanwhile is not found)
                ks, vs = self._source.vectors(keys.tolist())
                parts_k.append(ks)
                parts_s.append(dot_rows(vs, q))
                complete = mb >= size and not cut
            if len(st.delta):
                dk, ds = st.delta.top(q, m)
                parts_k.append(dk)
                parts_s.append(ds)
                complete = complete and m >= len(st.delta)
        if not parts_k:
            return Candidates(np.empty(0, np.int64), np.empty(0, np.float32), True)
        keys_all = np.concatenate(parts_k)
        scores = np.concatenate(parts_s).astype(np.float32, copy=False)
        order = np.argsort(-scores, kind="stable")[:m]
        # complete: nothing is left beyond these (every live vector scored and returned);
        # scoring all but returning the best m leaves the rest for a filter to reach
        complete = complete and len(order) == len(keys_all)
        return Candidates(keys_all[order], scores[order], complete)

    def vectors_for(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(keys, float32 vectors) for those of ``keys`` held in memory (the delta: every
        vector of a small collection); the caller reads the others from the database."""
        with self._lock:
            st = self._state
            if st is None:
                return np.empty(0, np.int64), np.empty((0, self._dim), np.float32)
            return st.delta.lookup(keys)

    @property
    def live(self) -> int:
        with self._lock:
            return 0 if self._state is None else self._state.live()

    def status(self) -> IndexStatus:
        with self._lock:
            st = self._state
            base = st.base if st else None
            return IndexStatus(
                kind="none" if st is None else "exact" if base is None else "hnsw",
                origin=self._origin,
                seq=st.seq if st else 0,
                base_seq=base.seq if base else None,
                base_size=len(base) if base else 0,
                base_file=base.stamp.file if base and base.stamp else None,
                delta_size=len(st.delta) if st else 0,
                removed=len(st.removed) if st else 0,
                full_builds=self._full_builds,
                merges=self._merges,
                applied_changes=self._applied,
                loaded_files=self._loaded_files,
            )

    def close(self) -> None:
        with self._lock:
            st, self._state = self._state, None
        if st is not None and st.base is not None:
            st.base.release()
