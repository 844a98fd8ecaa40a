"""Find groups of duplicates in a collection, of three kinds, each with its own threshold.

- ``exact``: the same bytes (the content hash every document carries; free).
- ``near``: the same picture re-encoded, resized, cropped a little, recoloured or marked:
  cosine >= the near threshold, confirmed by the pixels' perceptual hash (at most
  ``HASH_MAX_BITS`` of 64 bits apart). Where a file cannot be read now, the vectors'
  word stands alone.
- ``similar``: similar shots (bursts): cosine >= the similar threshold and taken within
  ``burst_seconds`` of each other (EXIF DateTimeOriginal when both have it, else mtime).

The kinds nest: a near group holds at least two different files, a similar group at
least two pictures that are not near-duplicates of each other, so each family of
copies is reported once per kind. The defaults come from ``bench/duplicate_thresholds.py``
(see docs/duplicates.md); with real CLIP weights re-measure them with ``--model``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.duplicates.grouping import UnionFind, components, pairs
from lookalike.duplicates.pixels import hash_distance, phash, taken_at
from lookalike.errors import QueryError
from lookalike.records import Filters, Record
from lookalike.store.base import Store

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_THRESHOLDS",
    "HASH_MAX_BITS",
    "KINDS",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicateReport",
    "find_duplicates",
]

KINDS = ("exact", "near", "similar")
#: measured by bench/duplicate_thresholds.py (random-weight ViT-B/32; docs/duplicates.md)
DEFAULT_THRESHOLDS: dict[str, float] = {"exact": 1.0, "near": 0.9976, "similar": 0.9889}
HASH_MAX_BITS = 20
DEFAULT_BURST_SECONDS = 10.0


@dataclass
class DuplicateMember:
    id: str
    path: str
    size: int
    width: int
    height: int
    format: str
    mtime: float
    taken: float | None  # EXIF capture time when read (similar shots), else None
    sha256: str
    score: float  # cosine to the group's best copy (1.0 for the best copy itself)
    best: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "mtime": self.mtime,
            "taken": self.taken,
            "sha256": self.sha256,
            "score": round(self.score, 6),
            "best": self.best,
        }


@dataclass
class DuplicateGroup:
    """One group; ``members[0]`` is the best copy (most pixels, then biggest, then oldest)."""

    kind: str
    members: list[DuplicateMember]

    @property
    def best(self) -> DuplicateMember:
        return self.members[0]

    @property
    def others(self) -> list[DuplicateMember]:
        return self.members[1:]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "best": self.best.id,
            "count": len(self.members),
            "bytes": sum(m.size for m in self.members),
            "members": [m.to_dict() for m in self.members],
        }


@dataclass
class DuplicateReport:
    kind: str
    threshold: float
    burst_seconds: float
    documents: int  # documents looked at (after the folder filter)
    groups: list[DuplicateGroup] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        end = None if limit is None else offset + limit
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "burst_seconds": self.burst_seconds,
            "documents": self.documents,
            "total": len(self.groups),
            "offset": offset,
            "groups": [g.to_dict() for g in self.groups[offset:end]],
            "seconds": round(self.seconds, 3),
        }


def find_duplicates(
    store: Store,
    *,
    kind: str = "near",
    threshold: float | None = None,
    folder: str | None = None,
    burst_seconds: float = DEFAULT_BURST_SECONDS,
    max_pixels: int = 100_000_000,
    method: str = "auto",
    confirm: bool = True,
) -> DuplicateReport:
    """Groups of ``kind`` among the collection's documents (under ``folder`` if given).

    ``threshold`` is a cosine (defaults: ``DEFAULT_THRESHOLDS``); ``method`` picks how
    candidate pairs are found (``auto``, ``ann`` or ``exact``, see ``grouping``);
    ``confirm=False`` skips the difference-hash check of near-duplicates.
    """
    if kind not in KINDS:
        raise QueryError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}", field="kind")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[kind]
    if not -1.0 <= threshold <= 1.0:
        raise QueryError(
            f"threshold must be a cosine from -1 to 1, got {threshold}", field="threshold"
        )
    if burst_seconds < 0:
        raise QueryError("burst seconds must be 0 or more", field="burst_seconds")
    started = time.perf_counter()
    records = _load(store, Filters(folder=folder) if folder else None)
    report = DuplicateReport(kind, threshold, burst_seconds, len(records))
    if len(records) < 2:
        report.seconds = time.perf_counter() - started
        return report
    vectors = np.stack([r.vector for r in records if r.vector is not None])
    exact = _exact_edges(records)
    groups: list[list[int]]
    taken: dict[int, float | None] = {}
    if kind == "exact":
        groups = components(len(records), exact)
    else:
        near_t = threshold if kind == "near" else max(threshold, DEFAULT_THRESHOLDS["near"])
        hashes: dict[int, int | None] = {}

        def look(i: int) -> int | None:
            if i not in hashes:
                hashes[i] = phash(records[i].path, max_pixels=max_pixels) if confirm else None
            return hashes[i]

        # one candidate search at the lower of the two thresholds serves both kinds
        candidates = pairs(vectors, min(threshold, near_t), method=method)
        sims = np.einsum("ij,ij->i", vectors[candidates[:, 0]], vectors[candidates[:, 1]])
        near = _confirmed(candidates[sims >= near_t], look)
        near_edges = _concat(exact, near)
        if kind == "near":
            groups = [g for g in components(len(records), near_edges) if _distinct(records, g)]
        else:
            close = _within(candidates[sims >= threshold], records, burst_seconds, taken)
            groups = _similar_groups(len(records), near_edges, _concat(near_edges, close))
    report.groups = _ordered([_group(kind, g, records, vectors, taken) for g in groups])
    report.seconds = time.perf_counter() - started
    return report


def _load(store: Store, filters: Filters | None) -> list[Record]:
    out: list[Record] = []
    for batch in store.iter_records(1000):
        out.extend(r for r in batch if r.vector is not None and (not filters or filters.matches(r)))
    return out


def _exact_edges(records: list[Record]) -> np.ndarray:
    first: dict[str, int] = {}
    edges = []
    for i, r in enumerate(records):
        j = first.setdefault(r.sha256, i)
        if j != i:
            edges.append((j, i))
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _confirmed(candidates: np.ndarray, look: Callable[[int], int | None]) -> np.ndarray:
    keep = []
    for a, b in candidates.tolist():
        ha, hb = look(a), look(b)
        if ha is None or hb is None or hash_distance(ha, hb) <= HASH_MAX_BITS:
            keep.append((a, b))
    return np.array(keep, dtype=np.int64).reshape(-1, 2)


def _within(
    candidates: np.ndarray,
    records: list[Record],
    seconds: float,
    taken: dict[int, float | None],
) -> np.ndarray:
    """Candidate pairs taken within ``seconds``: EXIF times when both have one, else mtimes."""

    def when(i: int) -> float | None:
        if i not in taken:
            taken[i] = taken_at(records[i].path)
        return taken[i]

    keep = []
    for a, b in candidates.tolist():
        ta, tb = when(a), when(b)
        if ta is None or tb is None:
            ta, tb = records[a].mtime, records[b].mtime
        if abs(ta - tb) <= seconds:
            keep.append((a, b))
    return np.array(keep, dtype=np.int64).reshape(-1, 2)


def _similar_groups(n: int, near_edges: np.ndarray, all_edges: np.ndarray) -> list[list[int]]:
    """Components over all edges that hold at least two pictures not near-duplicates."""
    near_uf = UnionFind(n)
    for a, b in near_edges.tolist():
        near_uf.union(a, b)
    return [g for g in components(n, all_edges) if len({near_uf.find(i) for i in g}) > 1]


def _distinct(records: list[Record], group: list[int]) -> bool:
    return len({records[i].sha256 for i in group}) > 1


def _concat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([p.reshape(-1, 2) for p in parts]).astype(np.int64)


def _group(
    kind: str,
    idx: list[int],
    records: list[Record],
    vectors: np.ndarray,
    taken: dict[int, float | None],
) -> DuplicateGroup:
    def when(i: int) -> float:
        t = taken.get(i)
        return t if t is not None else records[i].mtime

    def rank(i: int) -> tuple[int, int, float, str]:
        r = records[i]
        return (-(r.width * r.height), -r.size, when(i), r.path)

    order = sorted(idx, key=rank)
    scores = vectors[order] @ vectors[order[0]]
    members = []
    for pos, (i, score) in enumerate(zip(order, scores.tolist(), strict=True)):
        r = records[i]
        members.append(
            DuplicateMember(
                r.id, r.path, r.size, r.width, r.height, r.format, r.mtime,
                taken.get(i), r.sha256, min(1.0, float(score)), best=pos == 0,
            )
        )  # fmt: skip
    return DuplicateGroup(kind, members)


def _ordered(groups: list[DuplicateGroup]) -> list[DuplicateGroup]:
    """Biggest groups first, then the most bytes to reclaim, then by path (stable pages)."""
    return sorted(
        groups, key=lambda g: (-len(g.members), -sum(m.size for m in g.others), g.best.path)
    )
