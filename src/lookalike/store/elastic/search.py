"""kNN requests for the Elasticsearch backend: what to ask for, and how to read the answer.

Scores must be the exact cosine on every backend (``Hit.score``), but quantized
``index_options`` score candidates with int8/int4/bbq approximations. So:

- ``hnsw`` (float vectors): the cluster's scores are exact; ``similarity`` cuts at min_score.
- quantized, Elasticsearch 8.18+: ``knn.rescore_vector`` makes the cluster re-score an
  oversampled candidate set with the float vectors it keeps on disk.
- quantized, 8.14-8.17: the same done here: fetch ``max(num_candidates, oversample x
  (offset + k))`` candidates with their float32 copy (``vec``, 4 bytes a dimension on
  the wire), re-score, sort and slice.

A ``similarity`` cut-off is sent only where scores are exact; otherwise min_score is
applied here after re-scoring, so a document just above it is never lost to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import QueryError
from lookalike.records import Filters, Hit
from lookalike.store.checks import MAX_WINDOW, check_window
from lookalike.store.elastic.documents import decode_record
from lookalike.store.elastic.filters import filters_query, score_to_cosine
from lookalike.store.elastic.mapping import (
    FIELDS_META,
    INDEX_OPTION_TYPES,
    RESCORE_SINCE,
)

__all__ = ["KnnPlan", "plan_knn", "read_hits"]


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
) -> KnnPlan:
    """Plan a kNN page. Give exactly one of ``query_vector`` (unit) and ``text``
    (model id, text) for a vector built by the cluster."""
    check_window(k, offset, min_score)
    window = offset + k
    oversample = INDEX_OPTION_TYPES.get(index_type, ((0, 0), None))[1]
    server_rescore = oversample is not None and server_version[:2] >= RESCORE_SINCE
    local_rescore = oversample is not None and not server_rescore and query_vector is not None

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

    # Each shard gathers num_candidates (and re-scores num_candidates x oversample of them);
    # keeping it independent of the page keeps consecutive pages consistent.
    candidates = max(num_candidates, window)
    fetch = window
    if local_rescore:
        assert oversample is not None
        fetch = candidates = max(candidates, math.ceil(window * oversample))
    knn["k"] = min(MAX_WINDOW, fetch)
    if server_rescore:
        knn["rescore_vector"] = {"oversample": oversample}
    knn["num_candidates"] = min(MAX_WINDOW, candidates)
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
