"""Candidate pairs above a cosine threshold, and groups from pairs, without O(n²) work.

``ann_pairs`` puts the vectors in an HNSW index (usearch, int8, the library the
store's own index uses) and asks it for each vector's ``k`` nearest neighbours in one
multithreaded batch; a pair counts when its exact float32 cosine (recomputed, a
second look at the vectors) reaches the threshold. Groups larger than ``k`` still
come out whole, because union-find joins them through chains of neighbours.
``exact_pairs`` compares every pair, block by block: the reference the tests hold
``ann_pairs`` to, and the cheaper choice below a few thousand vectors.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

import numpy as np

from lookalike.errors import QueryError

if TYPE_CHECKING:
    from usearch.index import BatchMatches

__all__ = ["UnionFind", "ann_pairs", "components", "exact_pairs", "pairs"]

#: below this many vectors comparing every pair is cheaper than building a graph
EXACT_LIMIT = 4_000
_BLOCK = 2_048
_QUERIES = 4_096  # per search batch: bounds the rescoring's memory (2 x 4,096 x 17 rows)


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def components(n: int, pairs: np.ndarray) -> list[list[int]]:
    """Connected components with at least two members, each sorted, in order of first member."""
    uf = UnionFind(n)
    for a, b in pairs.tolist():
        uf.union(a, b)
    groups: dict[int, list[int]] = {}
    for i in np.unique(pairs).tolist() if len(pairs) else []:
        groups.setdefault(uf.find(i), []).append(i)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _check(vectors: np.ndarray, threshold: float) -> np.ndarray:
    if not -1.0 <= threshold <= 1.0:
        raise QueryError(
            f"threshold must be a cosine from -1 to 1, got {threshold}", field="threshold"
        )
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise QueryError("vectors must be a 2-d array (one row per document)", field="vectors")
    return v


def exact_pairs(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Every pair (i < j) with cosine >= threshold, by comparing all pairs (rows L2-normalised)."""
    v = _check(vectors, threshold)
    out: list[np.ndarray] = []
    for start in range(0, len(v), _BLOCK):
        block = v[start : start + _BLOCK] @ v.T
        rows, cols = np.nonzero(block >= threshold)
        rows = rows + start
        keep = rows < cols
        out.append(np.stack([rows[keep], cols[keep]], axis=1))
    return _unique(out)


def ann_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    k: int = 16,
    threads: int | None = None,
    ef: int | None = None,
) -> np.ndarray:
    """Pairs (i < j) with cosine >= threshold among each vector's ``k`` approximate neighbours."""
    from lookalike.native_libs import Index

    v = _check(vectors, threshold)
    n = len(v)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    count = min(k + 1, n)  # the vector itself comes back too
    # int8 storage: 5-8x faster to build and search than f16 here (VNNI), and every pair
    # it proposes is rescored in float32 below, so only recall could suffer (tests hold it)
    index = Index(
        ndim=v.shape[1], metric="cos", dtype="i8", connectivity=16,
        expansion_add=32, expansion_search=ef or max(128, 2 * count),
    )  # fmt: skip
    workers = threads or os.cpu_count() or 1
    keys = np.arange(n, dtype=np.int64)
    index.add(keys, v, threads=workers)
    out: list[np.ndarray] = []
    for start in range(0, n, _QUERIES):
        chunk = v[start : start + _QUERIES]
        found = index.search(chunk, count, threads=workers)
        nbr = np.asarray(found.keys, dtype=np.int64).reshape(len(chunk), -1)
        counts = np.asarray(cast("BatchMatches", found).counts).reshape(-1)
        rows = np.repeat(np.arange(start, start + len(chunk)), nbr.shape[1])
        cols = nbr.reshape(-1)
        valid = (np.arange(nbr.shape[1])[None, :] < counts[:, None]).reshape(-1)
        rows, cols = rows[valid], cols[valid]
        keep = (rows != cols) & (cols >= 0) & (cols < n)
        rows, cols = rows[keep], cols[keep]
        # the second look: exact float32 cosines, not the index's half-precision ones
        sims = np.einsum("ij,ij->i", v[rows], v[cols])
        hit = sims >= threshold
        a, b = rows[hit], cols[hit]
        out.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    return _unique(out)


def pairs(
    vectors: np.ndarray, threshold: float, *, method: str = "auto", k: int = 16
) -> np.ndarray:
    """``exact_pairs`` below EXACT_LIMIT vectors (or when asked), ``ann_pairs`` above."""
    if method not in ("auto", "ann", "exact"):
        raise QueryError(f"method must be auto, ann or exact, not {method!r}", field="method")
    if method == "exact" or (method == "auto" and len(vectors) <= EXACT_LIMIT):
        return exact_pairs(vectors, threshold)
    return ann_pairs(vectors, threshold, k=k)


def _unique(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    allp = np.concatenate(parts).astype(np.int64, copy=False)
    if not len(allp):
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(allp, axis=0)
