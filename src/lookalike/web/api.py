"""The JSON API, version 1: search by text, by uploaded image and by indexed id;
images and thumbnails by id; collection stats; health.

Route functions that embed, decode or read files are plain ``def``s, so FastAPI
runs them in its thread pool and the event loop stays free. The upload route is
``async`` only to read the body as it streams in, then hands the work to a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from lookalike.collection import Collection
from lookalike.export import envelope
from lookalike.records import Hit
from lookalike.regions import check_box
from lookalike.search import MAX_QUERY_CHARS, MAX_WINDOW, Query as SearchQuery
from lookalike.sizing import sizing_report
from lookalike.web.media import MIME_TYPES, Media, etag_matches, mime_type
from lookalike.web.params import SEARCH_PARAM_NAMES, SearchParams, check_known, search_params
from lookalike.web.present import API, hit_view, record_to_view
from lookalike.web.schemas import (
    Health,
    ImageView,
    SearchResults,
    SizingView,
    ThumbSize,
    binary_response,
    error_responses,
)
from lookalike.web.uploads import UPLOAD_FIELD, receive_upload, search_upload

__all__ = ["package_version", "results_body", "router"]

router = APIRouter(prefix=API, tags=["api"])

IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
_IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def package_version() -> str:
    """lookalike's installed version, or "unknown" when it runs from a source tree."""
    try:
        return version("lookalike")
    except PackageNotFoundError:
        return "unknown"


def known(*names: str) -> Callable[[Request], None]:
    """A dependency rejecting query parameters the route does not take."""

    def check(request: Request) -> None:
        check_known(request.query_params.keys(), names)

    return check


def get_collection(request: Request) -> Collection:
    collection: Collection = request.app.state.collection
    return collection


def get_media(request: Request) -> Media:
    media: Media = request.app.state.media
    return media


CollectionDep = Annotated[Collection, Depends(get_collection)]
MediaDep = Annotated[Media, Depends(get_media)]
Params = Annotated[SearchParams, Depends(search_params)]


def results_body(
    collection: Collection,
    query: dict[str, Any],
    params: SearchParams,
    hits: Sequence[Hit],
    started: float,
) -> dict[str, Any]:
    """The response of every search route (``lookalike.export.envelope``, as the CLI's)."""
    return envelope(
        collection=collection.name,
        query=query,
        k=params.k,
        offset=params.offset,
        min_score=params.min_score,
        filters=params.filters,
        results=[hit_view(h) for h in hits],
        started=started,
        max_window=MAX_WINDOW,
    )


@router.get(
    "/health", dependencies=[Depends(known())], response_model=Health, responses=error_responses()
)
def health(collection: CollectionDep) -> dict[str, Any]:
    """Liveness and the collection's size (cheap: no model is loaded)."""
    return {
        "status": "ok",
        "version": package_version(),
        "collection": collection.name,
        "documents": collection.store.count(),
    }


@router.get(
    "/stats",
    dependencies=[Depends(known())],
    response_model=SizingView,
    responses=error_responses(),
)
def stats(collection: CollectionDep) -> dict[str, Any]:
    """The sizing report: documents, dimensions, bytes per document, projections."""
    return sizing_report(collection.store.stats()).to_dict()


@router.get(
    "/search",
    dependencies=[Depends(known("q", *SEARCH_PARAM_NAMES))],
    response_model=SearchResults,
    response_model_exclude_unset=True,
    responses=error_responses(),
)
def search_text(
    collection: CollectionDep,
    params: Params,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="What to look for, in any of 50+ languages.",
        ),
    ],
) -> dict[str, Any]:
    """Images matching a text query."""
    started = time.perf_counter()
    hits = collection.searcher.search(
        SearchQuery(
            texts=[q],
            k=params.k,
            offset=params.offset,
            min_score=params.min_score,
            filters=params.filters,
            regions=params.regions,
        )
    )
    return results_body(collection, {"type": "text", "q": q.strip()}, params, hits, started)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/search/image",
    dependencies=[Depends(known(*SEARCH_PARAM_NAMES))],
    openapi_extra=_UPLOAD_BODY,
    response_model=SearchResults,
    response_model_exclude_unset=True,
    responses=error_responses(413, 415, 422),
)
async def search_image(
    request: Request, collection: CollectionDep, media: MediaDep, params: Params
) -> dict[str, Any]:
    """Images similar to an uploaded one. The upload is never stored: it is held in memory
    (or an anonymous temporary file above 1 MiB) for the request only."""
    started = time.perf_counter()
    with await receive_upload(request) as upload:
        hits = await run_in_threadpool(search_upload, collection, media, upload, params)
        query = {"type": "image", "filename": upload.filename, "bytes": upload.size}
    return results_body(collection, query, params, hits, started)


@router.get(
    "/images/{doc_id}",
    dependencies=[Depends(known())],
    response_model=ImageView,
    response_model_exclude_unset=True,
    responses=error_responses(404),
)
def image_info(doc_id: str, media: MediaDep) -> dict[str, Any]:
    """What is known about one indexed image."""
    return record_to_view(media.record(doc_id))


@router.get(
    "/images/{doc_id}/similar",
    dependencies=[Depends(known("box", *SEARCH_PARAM_NAMES))],
    response_model=SearchResults,
    response_model_exclude_unset=True,
    responses=error_responses(404),
)
def similar(
    doc_id: str,
    collection: CollectionDep,
    media: MediaDep,
    params: Params,
    box: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Search this part only: x0,y0,x1,y1 as fractions of the image (0 to 1).",
        ),
    ] = None,
) -> dict[str, Any]:
    """Images similar to an indexed one (or to the part of it in ``box``); the image itself
    is never among the results."""
    started = time.perf_counter()
    media.record(doc_id)
    window: dict[str, Any] = {
        "k": params.k,
        "offset": params.offset,
        "min_score": params.min_score,
    }
    query: dict[str, Any] = {"type": "similar", "id": doc_id}
    if box:
        with media.work_slot():
            hits = collection.searcher.part(
                doc_id, box, filters=params.filters, regions=params.regions, **window
            )
        query["box"] = list(check_box(box))
    else:
        hits = collection.searcher.search(
            SearchQuery(ids=[doc_id], filters=params.filters, regions=params.regions, **window)
        )
    return results_body(collection, query, params, hits, started)


def _cache_control(v: str | None, sha256: str) -> str:
    return IMMUTABLE if v and sha256 and v == sha256[: len(v)] and len(v) >= 8 else REVALIDATE


@router.get(
    "/images/{doc_id}/file",
    dependencies=[Depends(known("v"))],
    response_class=Response,
    responses={
        **binary_response(MIME_TYPES, "The indexed file, byte for byte."),
        **error_responses(404, 410),
    },
)
def image_file(
    request: Request,
    doc_id: str,
    media: MediaDep,
    v: Annotated[
        str | None, Query(max_length=64, description="Content version from a result's URLs.")
    ] = None,
) -> Response:
    """The indexed file itself, only if it is still what was indexed (else 410)."""
    opened = media.open(doc_id)
    rec = opened.record
    etag = f'"{rec.sha256[:32]}"' if rec.sha256 else None
    headers = {**_IMAGE_HEADERS, "Cache-Control": _cache_control(v, rec.sha256)}
    if etag:
        headers["ETag"] = etag
        match = request.headers.get("if-none-match")
        if match is not None and etag_matches(match, etag):
            opened.file.close()
            return Response(status_code=304, headers=headers)
    name = quote(rec.path.rsplit("/", 1)[-1])
    headers["Content-Disposition"] = f"inline; filename*=UTF-8''{name}"
    headers["Content-Length"] = str(opened.size)
    return StreamingResponse(opened.chunks(), media_type=mime_type(rec.format), headers=headers)


@router.get(
    "/images/{doc_id}/thumbnail",
    dependencies=[Depends(known("size", "v"))],
    response_class=Response,
    responses={
        **binary_response(["image/webp"], "A WebP thumbnail, never larger than the original."),
        **error_responses(404, 410, 413, 415, 422),
    },
)
def thumbnail(
    request: Request,
    doc_id: str,
    media: MediaDep,
    size: Annotated[ThumbSize, Query(description="256 (grid) or 1024 (preview).")] = ThumbSize.grid,
    v: Annotated[
        str | None, Query(max_length=64, description="Content version from a result's URLs.")
    ] = None,
) -> Response:
    """A WebP thumbnail, made once and cached on disk; answers 304 to a current ETag."""
    result = media.thumbnail(doc_id, int(size), if_none_match=request.headers.get("if-none-match"))
    headers = {
        **_IMAGE_HEADERS,
        "ETag": result.etag,
        "Cache-Control": _cache_control(v, result.record.sha256),
    }
    if result.data is None:
        return Response(status_code=304, headers=headers)
    return Response(content=result.data, media_type="image/webp", headers=headers)
