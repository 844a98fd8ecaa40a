"""The vocabulary of the derived vector index: its source, parameters and status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

__all__ = ["B1_MIN_DIM", "Candidates", "IndexParams", "IndexStatus", "VectorSource", "encode"]


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

    def iter_vectors(
        self, batch_size: int, after: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (keys, vectors) with key > ``after``, in key order, in batches."""
        ...


#: dimensions from which the graph holds one sign bit per dimension (``b1``; Elasticsearch
#: makes bbq its default from 384 too); below it the
#: codes are too coarse to rank (24 bits take a few dozen values) and int8 is used
B1_MIN_DIM = 384


def encode(vectors: np.ndarray, dtype: str) -> np.ndarray:
    """What the HNSW graph stores (and is queried with) for these float32 rows: the
    packed sign bits for ``b1``, the vectors themselves for the float and int8 kinds."""
    if dtype == "b1":
        return np.packbits(np.asarray(vectors) > 0, axis=-1)
    return np.asarray(vectors, dtype=np.float32)


@dataclass(frozen=True)
class IndexParams:
    #: below this many documents the whole collection is searched exactly
    exact_threshold: int = 20_000
    #: a base is merged with its delta when delta + removed >= max(merge_min, merge_fraction * base)
    merge_min: int = 2_000
    merge_fraction: float = 0.05
    #: searches merge only when the delta is this many times past the limit (flush() merges at 1x)
    query_merge_factor: float = 4.0
    #: what the graph stores per vector: "auto" (``b1`` sign bits from B1_MIN_DIM
    #: dimensions, else ``i8``), or a usearch kind ("b1", "i8", "f16", "bf16", "f32").
    #: Candidates are always rescored exactly from the stored float32 vectors
    dtype: str = "auto"
    #: HNSW links per node (twice that on the base layer). With b1 codes 10 keeps the
    #: graph near 0.32 bytes per dimension (8: 0.29, 12: 0.35; bench/search.py)
    connectivity: int = 10
    expansion_add: int = 128
    #: HNSW search breadth; None: grows with the index (see ``ef_for``)
    expansion_search: int | None = None
    #: candidates rescored exactly per wanted hit (None: 10 for b1 codes, 3 for int8 and
    #: wider kinds) ...
    overfetch: int | None = None
    #: ... for the first this many wanted hits; past them one candidate each (a filtered
    #: search widening to thousands needs breadth, not a margin on every one of them)
    overfetch_cap: int = 100
    #: b1 only: the graph returns this many codes per candidate to rescore (for up to
    #: ``rerank_cap`` candidates), ranked by the float query against each code's signs
    #: (an asymmetric estimate, as RaBitQ and Elasticsearch's bbq do) and cut to the
    #: candidates. Hamming distance between two sign codes ties often and ranks poorly:
    #: at 200k (bench/search.py, manifold data) 300 codes re-ranked to 100 found more of
    #: the true top 10 (0.9967) than 200 by Hamming (0.995) in the same time, reading half
    #: as many vectors from the database (what costs most once they outgrow the RAM).
    rerank: int = 3
    rerank_cap: int = 100
    #: a full build from the database saves a checkpoint every this many vectors, from
    #: which a killed build continues (at 10M: a dozen minutes of work per 1M here)
    checkpoint_every: int = 1_000_000

    def kind_for(self, dim: int) -> str:
        """The graph's storage kind for ``dim``-dimensional vectors."""
        if self.dtype != "auto":
            return self.dtype
        return "b1" if dim >= B1_MIN_DIM else "i8"

    def resolved(self, dim: int) -> IndexParams:
        """These parameters with ``dtype`` and ``overfetch`` made concrete for ``dim``."""
        kind = self.kind_for(dim)
        over = self.overfetch if self.overfetch is not None else 10 if kind == "b1" else 3
        return replace(self, dtype=kind, overfetch=over)

    def fetch_for(self, m: int) -> int:
        """How many HNSW candidates to rescore exactly for the ``m`` best."""
        over = self.overfetch if self.overfetch is not None else 3
        return m + max(8, (over - 1) * min(m, self.overfetch_cap))

    def pool_for(self, fetch: int) -> int:
        """How many codes the graph returns for ``fetch`` candidates (b1: re-ranked first)."""
        if self.dtype != "b1" or self.rerank <= 1:
            return fetch
        return fetch + (self.rerank - 1) * min(fetch, self.rerank_cap)

    def ef_for(self, size: int) -> int:
        """Search breadth for an HNSW index of ``size`` vectors. Measured with
        ``bench/search.py`` (embedding-like 512-d data, 10 candidates rescored per hit,
        b1, M=10): ef 128 gives recall@10 0.999 at 200k; int8 (3 per hit): ef 96 gives
        0.995 at 1M and 128 0.999. So 128 (b1) or 96 up to 750k, then in proportion."""
        if self.expansion_search is not None:
            return self.expansion_search
        low = 128 if self.dtype == "b1" else 96
        return min(512, max(low, 128 * size // 1_000_000))


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
    complete: bool  # every live vector is among these: there is nothing further
