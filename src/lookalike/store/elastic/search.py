"""kNN requests for the Elasticsearch backend: what to ask for, and how to read the answer.

Scores must be the exact cosine on every backend (``Hit.score``), but quantized
``index_options`` score candidates with int8/int4/bbq approximations. So:

- ``hnsw`` (float vectors): the cluster's scores are exact; ``similarity`` cuts at min_score.
- quantized, re-scored by the cluster (``knn.rescore_vector``; GA from 9.1, a technical
  preview on 8.18-9.0, so used there only with ``es_rescore = cluster``): each shard
  re-scores its top ``ceil(k x oversample)`` candidates (capped at 10,000) with the
  float vectors it keeps on disk, and raises ``num_candidates`` to that pool.
- quantized, re-scored here (8.14-9.0 by default): fetch every candidate with its
  float32 copy (``vec``, 4 bytes a dimension on the wire), re-score, sort and slice.

Pages are stable because nothing above depends on the page: ``knn.k`` and
``num_candidates`` come from a *depth* (``knn_depth``), the smallest rung of
``es_num_candidates x 10^i`` (then 10,000) deep enough for ``offset + k`` with the
oversample factor, so every page of a walk within one rung slices the same ranking
(with defaults: the first 50 hits of an int8 index, then 500, then 10,000).

A ``similarity`` cut-off is sent only where scores are exact; otherwise min_score is
applied here after re-scoring, so a document just above it is never lost to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import ConfigError, QueryError
from lookalike.records import Filters, Hit
from lookalike.store.checks import MAX_WINDOW, check_window
from lookalike.store.elastic.documents import decode_record
from lookalike.store.elastic.filters import filters_query, score_to_cosine
from lookalike.store.elastic.mapping import (
    FIELDS_META,
    INDEX_OPTION_TYPES,
    RESCORE_GA_SINCE,
    RESCORE_SINCE,
)

__all__ = [
    "RESCORE_MODES",
    "KnnPlan",
    "knn_depth",
    "plan_knn",
    "read_hits",
    "rescore_mode",
    "rescoring",
]

#: es_rescore: "auto" (the cluster where rescore_vector is GA, 9.1+; here before),
#: "cluster" (rescore_vector from 8.18, a technical preview on 8.18-9.0), "local" (here)
RESCORE_MODES = ("auto", "cluster", "local")


def rescore_mode(value: str) -> str:
    """The es_rescore setting, checked (before anything connects)."""
    mode = value.strip().lower()
    if mode not in RESCORE_MODES:
        raise ConfigError(
            f"es_rescore {value!r} is not one of {', '.join(RESCORE_MODES)}: auto re-scores in "
            "the cluster where that is GA (9.1+) and here before; cluster uses "
            "knn.rescore_vector from 8.18 (a technical preview on 8.18-9.0); local always "
            "re-scores here",
            field="es_rescore",
        )
    return mode


def rescoring(index_type: str, server_version: tuple[int, int, int], mode: str = "auto") -> str:
    """Who makes the scores exact: "none" (float vectors: already exact), "cluster"
    (``knn.rescore_vector``) or "local" (fetch ``vec`` and re-score here)."""
    if INDEX_OPTION_TYPES.get(index_type, ((0, 0), None))[1] is None:
        return "none"
    since = RESCORE_GA_SINCE if mode == "auto" else RESCORE_SINCE
    if mode != "local" and server_version[:2] >= since:
        return "cluster"
    return "local"


def knn_depth(window: int, num_candidates: int, oversample: float = 1.0) -> tuple[int, int]:
    """(knn.k, num_candidates) for a page ending at ``window``, the same for every page
    whose window fits the same rung: rungs are ``num_candidates x 10^i`` below 10,000,
    then 10,000. ``k`` is the rung divided by ``oversample``, so a re-scored pool of
    ``k x oversample`` is the whole candidate list and does not change with the page."""
    rung = max(1, num_candidates)
    while rung < MAX_WINDOW:
        k = max(1, math.floor(rung / oversample))
        if k >= window:
            return k, rung
        rung *= 10
    return MAX_WINDOW, MAX_WINDOW


@dataclass
class KnnPlan:
    """The keyword arguments of one ``search`` call and how to turn its hits into results."""

    request: dict[str, Any]
    k: int
    offset: int
    min_score: float | None
    rescore_with: np.ndarray | None = None  # the unit query vector, when re-scoring here
    dim: int = 0


def plan_knn(
    *,
    k: int,
    offset: int,
    filters: Filters | None,
    min_score: float | None,
    exclude_ids: Sequence[str],
    num_candidates: int,
    index_type: str,
    server_version: tuple[int, int, int],
    query_vector: np.ndarray | None = None,
    text: tuple[str, str] | None = None,
    rescore: str = "auto",
) -> KnnPlan:
    """Plan a kNN page. Give exactly one of ``query_vector`` (unit) and ``text``
    (model id, text) for a vector built by the cluster. ``rescore`` is es_rescore."""
    check_window(k, offset, min_score)
    window = offset + k
    oversample = INDEX_OPTION_TYPES.get(index_type, ((0, 0), None))[1]
    who = rescoring(index_type, server_version, rescore)
    server_rescore = who == "cluster"
    local_rescore = who == "local" and query_vector is not None
    knn: dict[str, Any] = {"field": "vector"}
    if query_vector is not None:
        knn["query_vector"] = query_vector.tolist()
    elif text is not None:
        model_id, model_text = text
        knn["query_vector_builder"] = {
            "text_embedding": {"model_id": model_id, "model_text": model_text}
        }
    else:
        raise QueryError("a kNN search needs a query vector or a text", field="q")

    # knn.k and num_candidates depend on the depth rung, never on the page itself: the
    # cluster re-scores ceil(k x oversample) per shard, so a k that followed offset + k
    # would re-score a different pool for each page (a hit on two pages, or on none).
    factor = oversample if (server_rescore or local_rescore) and oversample else 1.0
    depth_k, candidates = knn_depth(window, num_candidates, factor)
    if local_rescore:
        depth_k = candidates  # fetch every candidate with its vec; window <= rung / oversample
    knn["k"] = depth_k
    if server_rescore:
        knn["rescore_vector"] = {"oversample": oversample}
    knn["num_candidates"] = candidates
    query = filters_query(filters, exclude_ids)
    if query is not None:
        knn["filter"] = query
    exact_scores = oversample is None or (text is not None and not server_rescore)
    if min_score is not None and exact_scores:
        knn["similarity"] = float(min_score)  # the raw cosine, not the (1 + cos) / 2 score

    fields = [*FIELDS_META, "vec"] if local_rescore else list(FIELDS_META)
    request: dict[str, Any] = {"knn": knn, "source": fields, "track_total_hits": False}
    if local_rescore:
        request.update(from_=0, size=knn["k"])
    else:
        request.update(from_=offset, size=k)
    plan = KnnPlan(request, k, offset, min_score)
    if local_rescore:
        assert query_vector is not None
        plan.rescore_with, plan.dim = query_vector, int(query_vector.shape[0])
    return plan


def read_hits(plan: KnnPlan, body: Mapping[str, Any]) -> list[Hit]:
    """The hits of a search answer, as exact cosines, filtered by min_score and paged."""
    scored: list[tuple[float, Hit]] = []
    for h in (body.get("hits") or {}).get("hits") or []:
        rescore = plan.rescore_with is not None
        rec = decode_record(h["_id"], h.get("_source") or {}, dim=plan.dim, with_vector=rescore)
        if plan.rescore_with is not None and rec.vector is not None:
            exact = float(
                np.dot(rec.vector.astype(np.float64), plan.rescore_with.astype(np.float64))
            )
            score = max(-1.0, min(1.0, exact))
            rec.vector = None
        else:
            score = score_to_cosine(h.get("_score") or 0.0)
        scored.append((score, Hit(id=rec.id, path=rec.path, score=score, metadata=rec.metadata())))
    if plan.rescore_with is not None:
        scored.sort(key=lambda sh: (-sh[0], sh[1].id))
        scored = scored[plan.offset : plan.offset + plan.k]
    return [hit for score, hit in scored if plan.min_score is None or score >= plan.min_score]
