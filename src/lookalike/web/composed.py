"""The page's composed queries and its exports.

The address holds the whole query, so a refined or fed-back search can be shared:

* ``q``: a text; ``similar`` (repeatable): indexed images to find more like;
* ``unlike`` (repeatable): images to find less like ("Less like this");
* ``not`` (repeatable): texts to steer away from; ``min_score``.

"More like these" submits the selected results as more ``similar`` values beside
the current ones (Rocchio relevance feedback: the positives are averaged, the
negatives subtracted with ``NEGATIVE_WEIGHT``; see ``lookalike.composing``).
``/export.csv`` and ``/export.json`` answer the same address as data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lookalike.collection import Collection
from lookalike.errors import QueryError
from lookalike.export import envelope, hits_csv
from lookalike.records import Hit
from lookalike.search import MAX_K, MAX_WINDOW, Query
from lookalike.web.params import (
    SearchParams,
    filters_from_mapping,
    parse_int,
    parse_min_score,
    wants_regions,
)
from lookalike.web.present import hit_view

__all__ = ["NEGATIVE_WEIGHT", "PageQuery", "page_query", "router", "run_page_query"]

NEGATIVE_WEIGHT = 0.5
MAX_PARTS = 20
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class PageQuery:
    """What the page's address asks for."""

    q: str = ""
    similar: tuple[str, ...] = ()
    unlike: tuple[str, ...] = ()
    nots: tuple[str, ...] = ()
    min_score: float | None = None
    #: "search this part": fractions x0,y0,x1,y1 of the one ``similar`` image
    box: str = ""

    @property
    def empty(self) -> bool:
        return not (self.q or self.similar)

    @property
    def composed(self) -> bool:
        return bool(self.unlike or self.nots or len(self.similar) > 1)

    def pairs(self) -> list[tuple[str, str]]:
        """The query as address parameters (without filters and paging)."""
        out = [("q", self.q)] if self.q else []
        out += [("similar", i) for i in self.similar]
        out += [("unlike", i) for i in self.unlike]
        out += [("not", t) for t in self.nots]
        if self.box:
            out.append(("box", self.box))
        if self.min_score is not None:
            out.append(("min_score", f"{self.min_score:g}"))
        return out

    def to_query(self, window: SearchParams) -> Query:
        return Query(
            texts=[self.q] if self.q else (),
            ids=self.similar,
            negative_ids=self.unlike,
            negative_texts=self.nots,
            negative_weight=NEGATIVE_WEIGHT,
            k=window.k,
            offset=window.offset,
            min_score=self.min_score,
            filters=window.filters,
            regions=window.regions,
        )


def _many(raw: Mapping[str, list[str]], name: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip() for v in raw.get(name, []) if v.strip()))
    if len(values) > MAX_PARTS:
        raise QueryError(f"give {name} at most {MAX_PARTS} times", field=name)
    return values


def page_query(raw: Mapping[str, list[str]]) -> PageQuery:
    """The query of a page address; repeated values keep their first order."""
    texts = [v.strip() for v in raw.get("q", []) if v.strip()]
    if len(texts) > 1:
        raise QueryError("give q only once", field="q")
    scores = [v for v in raw.get("min_score", []) if v.strip()]
    if len(scores) > 1:
        raise QueryError("give min_score only once", field="min_score")
    similar = _many(raw, "similar")
    unlike = tuple(i for i in _many(raw, "unlike") if i not in similar)
    return PageQuery(
        q=texts[0] if texts else "",
        similar=similar,
        unlike=unlike,
        nots=_many(raw, "not"),
        min_score=parse_min_score(scores[0]) if scores else None,
        box=(_many(raw, "box") or ("",))[0],
    )


def query_string(pq: PageQuery, fq: str) -> str:
    return "&".join(part for part in (urlencode(pq.pairs()), fq) if part)


def run_page_query(collection: Collection, pq: PageQuery, window: SearchParams) -> list[Hit]:
    if pq.empty:
        raise QueryError("give q (text) or similar (an id) to search with", field="q")
    if pq.box:
        if pq.q or pq.composed or len(pq.similar) != 1:
            raise QueryError(
                "a box searches a part of one image: give one similar id, without q", field="box"
            )
        return collection.searcher.part(
            pq.similar[0],
            pq.box,
            k=window.k,
            offset=window.offset,
            min_score=pq.min_score,
            filters=window.filters,
            regions=window.regions,
        )
    return collection.searcher.search(pq.to_query(window))


def _export(request: Request) -> tuple[list[Hit], PageQuery, SearchParams, float]:
    started = time.perf_counter()
    raw = {name: request.query_params.getlist(name) for name in request.query_params}
    pq = page_query(raw)
    n = [v for v in raw.get("n", []) if v.strip()]
    k = parse_int(n[0], "n", minimum=1, maximum=MAX_K) if n else 30
    window = SearchParams(
        k=k,
        offset=0,
        min_score=pq.min_score,
        filters=filters_from_mapping(raw),
        regions=wants_regions(raw),
    )
    collection: Collection = request.app.state.collection
    return run_page_query(collection, pq, window), pq, window, started


def _filename(pq: PageQuery, ext: str) -> str:
    return f'attachment; filename="lookalike-{"composed" if pq.composed else "results"}.{ext}"'


@router.get("/export.csv")
def export_csv(request: Request) -> Response:
    """The page's results as CSV (the same columns as ``lookalike search --csv``)."""
    hits, pq, _, _ = _export(request)
    return Response(
        hits_csv(hits),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _filename(pq, "csv"), "Cache-Control": "no-store"},
    )


@router.get("/export.json")
def export_json(request: Request) -> Response:
    """The page's results as the JSON API's envelope."""
    hits, pq, window, started = _export(request)
    collection: Collection = request.app.state.collection
    shown: dict[str, Any] = {"type": "composed" if pq.composed else "page"}
    shown.update({k: v for k, v in pq.pairs() if k in ("q",)})
    for name, values in (("similar", pq.similar), ("unlike", pq.unlike), ("not", pq.nots)):
        if values:
            shown[name] = list(values)
    body = envelope(
        collection=collection.name,
        query=shown,
        k=window.k,
        offset=0,
        min_score=pq.min_score,
        filters=window.filters,
        results=[hit_view(h) for h in hits],
        started=started,
        max_window=MAX_WINDOW,
    )
    return JSONResponse(
        body, headers={"Content-Disposition": _filename(pq, "json"), "Cache-Control": "no-store"}
    )
