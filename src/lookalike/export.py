"""Search results as data: the JSON envelope every interface shares, and CSV.

The CLI's ``--json`` / ``--csv`` and the page's download links write the same
shapes as the JSON API's search routes, so a script can switch between them.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lookalike.records import Filters, Hit

__all__ = ["CSV_COLUMNS", "envelope", "hits_csv"]

CSV_COLUMNS = ("rank", "score", "path", "id", "format", "width", "height", "size", "modified")


def envelope(
    *,
    collection: str,
    query: Mapping[str, Any],
    k: int,
    offset: int,
    min_score: float | None,
    filters: Filters | None,
    results: Sequence[Mapping[str, Any]],
    started: float,
    max_window: int,
) -> dict[str, Any]:
    """``{"collection", "query", "k", "offset", "min_score", "count", "next_offset",
    "took_ms", "results"}``: the body of the API's search routes."""
    end = offset + len(results)
    more = len(results) == k and end < max_window
    return {
        "collection": collection,
        "query": {**query, "filters": filters.to_dict() if filters else {}},
        "k": k,
        "offset": offset,
        "min_score": min_score,
        "count": len(results),
        "next_offset": end if more else None,
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
        "results": list(results),
    }


def _iso(mtime: Any) -> str:
    try:
        return datetime.fromtimestamp(float(mtime), tz=UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def hits_csv(hits: Sequence[Hit], offset: int = 0) -> str:
    """One row per hit, best first, with a header row (``CSV_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, hit in enumerate(hits, start=offset + 1):
        meta = hit.metadata
        writer.writerow(
            [
                rank,
                f"{hit.score:.6f}",
                hit.path,
                hit.id,
                meta.get("format", ""),
                meta.get("width", ""),
                meta.get("height", ""),
                meta.get("size", ""),
                _iso(meta.get("mtime")),
            ]
        )
    return out.getvalue()
