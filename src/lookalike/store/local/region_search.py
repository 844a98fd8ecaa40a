"""Region search over a local collection: best tile per document, merged with whole images.

Each document's score is the best of its whole-image cosine and its tiles' cosines.
The top ``need`` by that maximum are all among the top ``need`` by whole vector or
the top ``need`` by best tile, so both lists are fetched (filters and exclusions
applied to each) and merged, one hit per document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lookalike.records import Hit
from lookalike.store.local.db import Database
from lookalike.store.local.regions import RegionMatrix, box_of
from lookalike.store.local.rows import DOC_COLUMNS, chunks, hit_from_row, placeholders

__all__ = ["best_region_hits", "merge_hits"]


def best_region_hits(
    db: Database,
    matrix: RegionMatrix,
    q: np.ndarray,
    need: int,
    where: str,
    params: list[Any],
    exclude: Sequence[bytes],
    min_score: float | None,
) -> list[Hit]:
    """The ``need`` documents with the best tiles that match ``where`` and are not excluded,
    each a Hit with its best tile's score and box. Widens until enough pass the filter."""
    excluded = set(exclude)
    limit = max(2 * need + len(excluded), 32)
    while True:
        ranking = matrix.rank(q, limit)
        keys = ranking.keys.tolist()
        rows = _rows(db, keys, where, params)
        hits: list[Hit] = []
        for key, score, box in zip(keys, ranking.scores.tolist(), ranking.boxes, strict=True):
            row = rows.get(key)
            if row is None or bytes(row[1]) in excluded:
                continue
            if min_score is not None and score < min_score:
                break
            hit = hit_from_row(row, score)
            hit.region = box_of(box)
            hits.append(hit)
            if len(hits) >= need:
                return hits
        if len(keys) < limit or (min_score is not None and keys and ranking.scores[-1] < min_score):
            return hits  # every document with tiles was considered
        limit *= 4


def merge_hits(whole: list[Hit], regions: list[Hit], need: int) -> list[Hit]:
    """One hit per document, the better of its whole-image and best-tile scores, best first
    (ties keep the whole image: no box is shown when the tile adds nothing)."""
    best: dict[str, Hit] = {}
    for hit in [*whole, *regions]:
        seen = best.get(hit.id)
        if seen is None or hit.score > seen.score:
            best[hit.id] = hit
    ranked = sorted(best.values(), key=lambda h: -h.score)
    return ranked[:need]


def _rows(db: Database, keys: list[int], where: str, params: list[Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    with db.read() as conn:
        for part in chunks(keys):
            sql = (
                f"SELECT {DOC_COLUMNS} FROM documents d WHERE d.key IN "
                f"({placeholders(len(part))}) AND {where}"
            )
            for row in conn.execute(sql, [*part, *params]):
                out[int(row[0])] = row
    return out
