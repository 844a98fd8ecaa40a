"""Search quality on the user's own labelled queries: recall, precision, MRR and nDCG.

Each labelled query (``lookalike.labels``) is searched once to ``depth`` hits
through the same ``Searcher`` every interface uses. A hit is right when its path
is a listed file or lies under a listed folder. The number of right answers is
counted in the store (a folder filter per listed folder, one per listed file), so
recall also counts the right answers that never reached the list. An image query
is not its own answer: the Searcher leaves the query file out of its results.

Cut-offs: besides the fixed ``k``, each query's list is cut by fixed score
thresholds and by ``cutoff.largest_gap``; precision, recall and F1 of the kept
hits show which cut suits the collection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lookalike.cutoff import largest_gap
from lookalike.errors import QueryError
from lookalike.labels import LabelledQuery
from lookalike.records import Filters, Hit
from lookalike.search import Query, Searcher
from lookalike.store.base import Store
from lookalike.store.checks import MAX_K

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CutScore",
    "EvalReport",
    "QueryResult",
    "dcg",
    "evaluate",
    "ndcg_at",
]

#: fixed score thresholds compared with the per-query cut; CLIP text-to-image cosines of right
#: answers usually lie in 0.2-0.35, image-to-image ones far higher
DEFAULT_THRESHOLDS = (0.2, 0.25, 0.3, 0.5, 0.7)
NDCG_AT = 10


@dataclass
class CutScore:
    """Precision, recall and F1 of the hits a cut kept, averaged over queries."""

    name: str
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    kept: float = 0.0  # mean number of hits kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "cut": self.name,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "kept": self.kept,
        }


@dataclass
class QueryResult:
    name: str
    kind: str  # "text" or "image"
    relevant: int  # right answers in the collection
    found_at: list[int]  # 1-based ranks of the right answers within depth
    recall: float
    precision: float
    reciprocal_rank: float
    ndcg: float
    misses: list[str] = field(default_factory=list)  # right answers not in the top k
    miss_ranks: dict[str, int] = field(default_factory=dict)  # their rank when within depth
    cuts: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "relevant": self.relevant,
            "recall": self.recall,
            "precision": self.precision,
            "reciprocal_rank": self.reciprocal_rank,
            "ndcg": self.ndcg,
            "found_at": self.found_at,
            "misses": [{"path": p, "rank": self.miss_ranks.get(p)} for p in self.misses],
        }


@dataclass
class EvalReport:
    k: int
    depth: int
    queries: list[QueryResult]
    cuts: list[CutScore]
    seconds: float

    def mean(self, name: str) -> float:
        values = [float(getattr(q, name)) for q in self.queries]
        return sum(values) / len(values) if values else 0.0

    @property
    def overall(self) -> dict[str, float]:
        return {
            f"recall@{self.k}": self.mean("recall"),
            f"precision@{self.k}": self.mean("precision"),
            "mrr": self.mean("reciprocal_rank"),
            f"ndcg@{NDCG_AT}": self.mean("ndcg"),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "depth": self.depth,
            "overall": self.overall,
            "queries": [q.to_dict() for q in self.queries],
            "cuts": [c.to_dict() for c in self.cuts],
            "seconds": self.seconds,
        }


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: sum of gain_i / log2(i + 1), ranks from 1."""
    return sum(g / math.log2(i + 1) for i, g in enumerate(gains, start=1))


def ndcg_at(right: Sequence[bool], relevant: int, n: int = NDCG_AT) -> float:
    """Binary-relevance nDCG of the first ``n`` hits when ``relevant`` answers exist."""
    ideal = dcg([1.0] * min(relevant, n))
    return dcg([1.0 if r else 0.0 for r in right[:n]]) / ideal if ideal > 0 else 0.0


def evaluate(
    searcher: Searcher,
    store: Store,
    queries: Sequence[LabelledQuery],
    *,
    k: int = 10,
    depth: int = 100,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> EvalReport:
    """Search every labelled query and score the results (QueryError for a bad k or depth)."""
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be from 1 to {MAX_K}", field="k")
    if not k <= depth <= MAX_K:
        raise QueryError(f"depth must be from k ({k}) to {MAX_K}", field="depth")
    started = time.perf_counter()
    results = [_one(searcher, store, q, k, depth, thresholds) for q in queries]
    names = ["top-k", *(f"score>={t:g}" for t in thresholds), "largest-gap"]
    cuts = []
    for name in names:
        rows = [r.cuts[name] for r in results]
        n = len(rows) or 1
        cuts.append(
            CutScore(
                name,
                precision=sum(r[0] for r in rows) / n,
                recall=sum(r[1] for r in rows) / n,
                f1=sum(r[2] for r in rows) / n,
                kept=sum(r[3] for r in rows) / n,
            )
        )
    return EvalReport(k, depth, results, cuts, time.perf_counter() - started)


def _one(
    searcher: Searcher,
    store: Store,
    q: LabelledQuery,
    k: int,
    depth: int,
    thresholds: Sequence[float],
) -> QueryResult:
    query = Query(texts=[q.text] if q.text else (), images=[q.image] if q.image else (), k=depth)
    hits = searcher.search(query)
    right = [q.is_relevant(h.path) for h in hits]
    relevant = _count_relevant(store, q)
    found_at = [i for i, r in enumerate(right, start=1) if r]
    in_k = sum(right[:k])
    ranks = {h.path: i for i, h in enumerate(hits, start=1) if right[i - 1]}
    top_k = {h.path for h in hits[:k]}
    listed_misses = [p for p in ranks if p not in top_k]
    missing_files = [f for f in q.files if f not in ranks and f != q.image]
    result = QueryResult(
        name=q.name,
        kind="text" if q.text else "image",
        relevant=relevant,
        found_at=found_at,
        recall=in_k / relevant if relevant else 0.0,
        precision=in_k / k,
        reciprocal_rank=1.0 / found_at[0] if found_at else 0.0,
        ndcg=ndcg_at(right, relevant),
        misses=listed_misses + missing_files,
        miss_ranks={p: ranks[p] for p in listed_misses},
    )
    result.cuts["top-k"] = _cut_score(right, relevant, k)
    for t in thresholds:
        result.cuts[f"score>={t:g}"] = _cut_score(right, relevant, _kept_above(hits, t))
    result.cuts["largest-gap"] = _cut_score(right, relevant, largest_gap([h.score for h in hits]))
    return result


def _kept_above(hits: Sequence[Hit], threshold: float) -> int:
    return sum(1 for h in hits if h.score >= threshold)


def _cut_score(right: Sequence[bool], relevant: int, kept: int) -> tuple[float, float, float, int]:
    hit = sum(right[:kept])
    precision = hit / kept if kept else 0.0
    recall = hit / relevant if relevant else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, kept


def _count_relevant(store: Store, q: LabelledQuery) -> int:
    """Right answers in the collection: documents under the listed folders plus the listed
    files (a listed file that is not indexed still counts: search could not find it)."""
    folders = [f for f in q.folders if not any(f != d and f.startswith(d) for d in q.folders)]
    total = sum(store.count(Filters(folder=f.rstrip("/") or "/")) for f in folders)
    total += sum(1 for f in q.files if not any(f.startswith(d) for d in folders))
    if q.image is not None and q.is_relevant(q.image):
        total -= 1  # the query image is never its own answer
    return max(total, 0)
