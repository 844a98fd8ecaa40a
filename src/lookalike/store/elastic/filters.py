"""Filters and exclusions as one Elasticsearch ``bool`` query, and scores back to cosines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lookalike.errors import QueryError
from lookalike.records import Filters
from lookalike.store.elastic.documents import is_storable_id, safe_text

__all__ = ["filters_query", "score_to_cosine"]


def filters_query(
    filters: Filters | None, exclude_ids: Sequence[str] = ()
) -> dict[str, Any] | None:
    """One ``bool`` query for the filters and exclusions, or None when there are none.

    The folder filter is a prefix on ``path`` ending in '/', so ``/a/b`` never matches ``/a/bc``.
    """
    must: list[dict[str, Any]] = []
    if filters is not None:
        prefix = filters.folder_prefix
        if prefix is not None:
            must.append({"prefix": {"path": safe_text(prefix)}})
        if filters.formats:
            must.append({"terms": {"format": [safe_text(f) for f in filters.formats]}})
        size = _range(filters.min_size, filters.max_size, "size")
        if size:
            must.append({"range": {"size": size}})
        mtime = _range(filters.modified_after, filters.modified_before, "modified")
        if mtime:
            must.append({"range": {"mtime": mtime}})
    ids = [i for i in dict.fromkeys(exclude_ids) if is_storable_id(i)]
    if not must and not ids:
        return None
    query: dict[str, Any] = {"filter": must}
    if ids:
        query["must_not"] = [{"ids": {"values": ids}}]
    return {"bool": query}


def _range(low: float | None, high: float | None, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (("gte", low), ("lte", high)):
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise QueryError(f"the {name} filter needs finite numbers, got {value!r}", field=name)
        out[key] = value
    return out


def score_to_cosine(score: float) -> float:
    """Elasticsearch scores cosine kNN hits (1 + cos) / 2; give back cos, clamped to [-1, 1]."""
    return max(-1.0, min(1.0, 2.0 * float(score) - 1.0))
