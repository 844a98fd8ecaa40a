"""``POST /api/v1/search``: one route for every composed query.

The body is JSON (``application/json``), or ``multipart/form-data`` with that
JSON in the text field ``query`` and an uploaded image in ``image`` (a positive
part, weighted by ``image_weight``; never stored). Parts are plain strings or
``{"value", "weight"}``; negatives are subtracted Rocchio-style (see
``lookalike.composing``). The answer has the shape of the GET search routes.
The GET shortcuts (``/search?q=``, ``/images/{id}/similar``, ``/search/image``)
stay as they are.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from lookalike.collection import Collection
from lookalike.composing import MAX_WEIGHT, Weighted
from lookalike.errors import ImageError, QueryError
from lookalike.export import envelope
from lookalike.records import Filters, Hit
from lookalike.search import MAX_K, MAX_QUERY_CHARS, MAX_WINDOW, Query
from lookalike.web.media import Media
from lookalike.web.params import parse_filters
from lookalike.web.present import API, hit_view
from lookalike.web.schemas import SearchResults, error_responses
from lookalike.web.uploads import UPLOAD_FIELD, Upload, read_upload

__all__ = ["MAX_JSON_BYTES", "SearchBody", "router"]

router = APIRouter(prefix=API, tags=["api"])

MAX_JSON_BYTES = 64 * 1024
QUERY_FIELD = "query"

Text = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
Weight = Annotated[float, Field(gt=0, le=MAX_WEIGHT)]


class Part(BaseModel):
    """A query part with its weight (plain strings weigh 1)."""

    model_config = ConfigDict(extra="forbid")
    value: Text
    weight: Weight = 1.0


class FilterBody(BaseModel):
    """The filters of the GET routes, by the same names."""

    model_config = ConfigDict(extra="forbid")
    folder: str | None = Field(None, max_length=4096)
    format: list[str] | str | None = None
    min_size: int | None = Field(None, ge=0, le=2**53)
    max_size: int | None = Field(None, ge=0, le=2**53)
    modified_after: str | None = Field(None, max_length=64)
    modified_before: str | None = Field(None, max_length=64)


class SearchBody(BaseModel):
    """A composed query: what to find more of, what to find less of, and the window."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Text | Part] = Field(default_factory=list, max_length=32)
    ids: list[Text | Part] = Field(default_factory=list, max_length=32)
    negative_texts: list[Text | Part] = Field(default_factory=list, max_length=32)
    negative_ids: list[Text | Part] = Field(default_factory=list, max_length=32)
    negative_weight: Weight = 0.5
    image_weight: Weight = Field(1.0, description="Weight of the uploaded image (multipart).")
    k: int = Field(10, ge=1, le=MAX_K)
    offset: int = Field(0, ge=0, le=MAX_WINDOW - 1)
    min_score: float | None = Field(None, ge=-1, le=1)
    filters: FilterBody | None = None


def _parts(items: list[str | Part]) -> list[str | Weighted[str]]:
    return [
        p if isinstance(p, str) else (p.value if p.weight == 1.0 else Weighted(p.value, p.weight))
        for p in items
    ]


def _shown(items: list[str | Part]) -> list[Any]:
    return [p if isinstance(p, str) else p.model_dump() for p in items]


def parse_body(raw: bytes | str) -> SearchBody:
    """The body, validated; a mistake is a ``QueryError`` naming the member."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise QueryError("the body is not valid JSON", field="body") from None
    try:
        return SearchBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"] if not str(p).startswith(("str", "Part"))]
        field = ".".join(loc) or "body"
        raise QueryError(f"{field}: {first['msg']}", field=loc[0] if loc else "body") from None


def _filters(body: SearchBody) -> Filters | None:
    f = body.filters
    if f is None:
        return None
    formats = [f.format] if isinstance(f.format, str) else (f.format or [])
    return parse_filters(
        folder=f.folder or None,
        formats=formats,
        min_size=f.min_size,
        max_size=f.max_size,
        modified_after=f.modified_after or None,
        modified_before=f.modified_before or None,
    )


def build_query(body: SearchBody, upload: Upload | None) -> tuple[Query, dict[str, Any]]:
    """The library query for a body (and an uploaded image), and how the answer shows it."""
    if body.offset + body.k > MAX_WINDOW:
        raise QueryError(f"offset + k must be at most {MAX_WINDOW}", field="offset")
    images: list[Any] = []
    shown: dict[str, Any] = {"type": "composed"}
    if upload is not None:
        images.append(
            upload.file if body.image_weight == 1.0 else Weighted(upload.file, body.image_weight)
        )
        shown["image"] = {"filename": upload.filename, "bytes": upload.size}
    for name in ("texts", "ids", "negative_texts", "negative_ids"):
        items = getattr(body, name)
        if items:
            shown[name] = _shown(items)
    if body.negative_texts or body.negative_ids:
        shown["negative_weight"] = body.negative_weight
    query = Query(
        texts=_parts(body.texts),
        images=images,
        ids=_parts(body.ids),
        negative_texts=_parts(body.negative_texts),
        negative_ids=_parts(body.negative_ids),
        negative_weight=body.negative_weight,
        k=body.k,
        offset=body.offset,
        min_score=body.min_score,
        filters=_filters(body),
    )
    return query, shown


async def _read_json(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise QueryError(f"the JSON body is larger than {MAX_JSON_BYTES} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise QueryError(f"the JSON body is larger than {MAX_JSON_BYTES} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _search(collection: Collection, media: Media, query: Query, upload: Upload | None) -> list[Hit]:
    try:
        with media.work_slot() if upload is not None else contextlib.nullcontext():
            return collection.searcher.search(query)
    except ImageError as exc:
        if exc.field is None:
            exc.field = UPLOAD_FIELD
        raise


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchBody.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "An uploaded image alone is a query; with the SearchBody "
                    "JSON in the query field, the image is one positive part of it.",
                    "properties": {
                        QUERY_FIELD: {"type": "string", "description": "SearchBody as JSON."},
                        UPLOAD_FIELD: {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/search",
    openapi_extra=_BODY_DOC,
    response_model=SearchResults,
    response_model_exclude_unset=True,
    responses=error_responses(404, 413, 415, 422),
)
async def search_composed(request: Request) -> dict[str, Any]:
    """A composed query: positive and negative texts and ids, an optional uploaded image,
    weights, filters, ``min_score``, ``k`` and ``offset`` in one body."""
    started = time.perf_counter()
    collection: Collection = request.app.state.collection
    media: Media = request.app.state.media
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    upload: Upload | None = None
    if kind == "application/json":
        body = parse_body(await _read_json(request))
    elif kind == "multipart/form-data":
        upload = await read_upload(
            request.headers.get("content-type"),
            request.headers.get("content-length"),
            request.stream(),
            max_bytes=request.app.state.settings.max_upload_bytes,
            text_fields=frozenset({QUERY_FIELD}),
        )
    else:
        raise QueryError(
            "send the query as application/json, or as multipart/form-data with the JSON in "
            f"{QUERY_FIELD!r} and an image in {UPLOAD_FIELD!r}",
            field="body",
        )
    try:
        if upload is not None:
            body = parse_body(upload.fields.get(QUERY_FIELD) or "{}")
        query, shown = build_query(body, upload)
        hits = await run_in_threadpool(_search, collection, media, query, upload)
    finally:
        if upload is not None:
            upload.close()
    return envelope(
        collection=collection.name,
        query=shown,
        k=query.k,
        offset=query.offset,
        min_score=query.min_score,
        filters=query.filters,
        results=[hit_view(h) for h in hits],
        started=started,
        max_window=MAX_WINDOW,
    )
