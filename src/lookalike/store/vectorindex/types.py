"""The vocabulary of the derived vector index: its source, parameters and status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Candidates", "IndexParams", "IndexStatus", "VectorSource"]


class VectorSource(Protocol):
    """What the index needs from the truth (SQLite)."""

    def snapshot(self) -> contextlib.AbstractContextManager[Any]:
        """A block in which every call below sees one consistent state."""
        ...

    def head(self) -> int: ...

    def count(self) -> int: ...

    def count_changes(self, after: int) -> int: ...

    def changes(self, after: int) -> list[tuple[int, int, str]]:
        """(seq, key, op) with seq > after, in order; op is 'U' (added) or 'D' (removed)."""
        ...

    def vectors(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(keys found, float32 matrix) for the keys that exist."""
        ...

    def iter_vectors(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (keys, vectors) in key order, in batches."""
        ...


@dataclass(frozen=True)
class IndexParams:
    #: below this many documents the whole collection is searched exactly
    exact_threshold: int = 20_000
    #: a base is merged with its delta when delta + removed >= max(merge_min, merge_fraction * base)
    merge_min: int = 2_000
    merge_fraction: float = 0.05
    #: searches merge only when the delta is this many times past the limit (flush() merges at 1x)
    query_merge_factor: float = 4.0
    dtype: str = "i8"
    #: HNSW links per node (twice that on the base layer). 10 keeps the index at 1.2
    #: bytes per dimension with int8 vectors (16 takes 1.29) at no measured recall cost
    #: on embedding-like data (bench/search.py)
    connectivity: int = 10
    expansion_add: int = 128
    #: HNSW search breadth; None: grows with the index (see ``ef_for``)
    expansion_search: int | None = None
    #: candidates taken from the HNSW per wanted hit, rescored exactly ...
    overfetch: int = 3
    #: ... for the first this many wanted hits; past them one candidate each (a filtered
    #: search widening to thousands needs breadth, not a margin on every one of them)
    overfetch_cap: int = 100

    def fetch_for(self, m: int) -> int:
        """How many HNSW candidates to rescore exactly for the ``m`` best."""
        return m + max(8, (self.overfetch - 1) * min(m, self.overfetch_cap))

    def ef_for(self, size: int) -> int:
        """Search breadth for an HNSW index of ``size`` vectors. Measured with
        ``bench/search.py`` (embedding-like 512-d data, int8, M=10, 3x over-fetch with
        exact rescoring): at 1M, ef 96 gives recall@10 0.995 and ef 128 0.999; at 200k,
        ef 96 gives 0.996. So 96 up to 750k, then in proportion (256 at 2M)."""
        if self.expansion_search is not None:
            return self.expansion_search
        return min(512, max(96, 128 * size // 1_000_000))


@dataclass(frozen=True)
class IndexStatus:
    """How the in-memory index of this process was obtained, for tests, stats and logs."""

    kind: str  # "none" (not loaded), "exact" or "hnsw"
    origin: str  # "none", "exact", "file", "built", "rebuilt", "merged", "adopted"
    seq: int
    base_seq: int | None
    base_size: int
    base_file: str | None
    delta_size: int
    removed: int
    full_builds: int  # HNSW built from every vector in SQLite (no usable file)
    merges: int
    applied_changes: int  # change-log entries applied incrementally
    loaded_files: int


@dataclass
class Candidates:
    keys: np.ndarray  # int64, best first
    scores: np.ndarray  # float32 exact cosine
    complete: bool  # every live vector was considered
