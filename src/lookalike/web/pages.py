"""The web page: server-rendered, with a little plain JavaScript on top.

The URL holds the query (``q``, ``similar``, filters, ``n`` = how many results
are shown), so any page can be shared and reloaded; without JavaScript, text
search, "Find similar" and "More results" still work as plain links and forms.
JavaScript adds uploads by drag-and-drop and paste, "Load more" in place, and a
viewer dialog. It fetches HTML fragments (``/partials/...``) rendered by the
same template as the page, so there is one renderer.

An uploaded image cannot live in a URL and is never stored: after an upload
search the address becomes ``/?upload=1`` (plus filters), and reloading it shows
a note asking to drop the image again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from lookalike.collection import Collection
from lookalike.errors import LookalikeError, QueryError
from lookalike.models.provenance import random_weight_models
from lookalike.records import Filters, Hit
from lookalike.search import MAX_K, MAX_WINDOW
from lookalike.web.composed import PageQuery, page_query, query_string, run_page_query
from lookalike.web.media import Media
from lookalike.web.params import (
    FILTER_NAMES,
    SearchParams,
    filter_query,
    filters_from_mapping,
    parse_int,
    wants_regions,
)
from lookalike.web.present import hit_view, record_to_view
from lookalike.web.uploads import receive_upload, search_upload

__all__ = ["PAGE", "STATIC_DIR", "TEMPLATE_DIR", "render_error", "router"]

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PAGE = 30  # results per page / per "Load more"
PAGE_SIZES = (10, 30, 60, 100)
#: repeatable address parameters of a composed query (see composed.py)
COMPOSE_LISTS = ("similar", "unlike", "not")
FORMATS = ("jpeg", "png", "webp", "gif", "heif", "avif", "tiff", "bmp")
UPLOAD_RELOAD_NOTICE = (
    "This page showed results for an uploaded image. Uploads are never kept on the server, "
    "so a reload cannot repeat that search: drop or paste the image again."
)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATE_DIR)


@cache
def static_url(name: str) -> str:
    """``/static/<name>?v=<hash>``, so browsers refetch a changed file."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


templates.env.globals["static_url"] = static_url
templates.env.globals["FORMATS"] = FORMATS


def _collection(request: Request) -> Collection:
    collection: Collection = request.app.state.collection
    return collection


def _raw(request: Request) -> dict[str, list[str]]:
    params = request.query_params
    return {name: params.getlist(name) for name in params}


def _one(raw: Mapping[str, list[str]], name: str) -> str:
    values = [v.strip() for v in raw.get(name, []) if v.strip()]
    if len(values) > 1:
        raise QueryError(f"give {name} only once", field=name)
    return values[0] if values else ""


def _base_context(request: Request, raw: Mapping[str, list[str]]) -> dict[str, Any]:
    collection = _collection(request)
    try:
        documents: int | None = collection.store.count()
    except LookalikeError:
        documents = None
    form: dict[str, Any] = {
        name: (raw.get(name) or [""])[0] for name in ("q", "min_score", "n", "box", *FILTER_NAMES)
    }
    form["regions"] = wants_regions(raw)
    lists = {name: [v for v in raw.get(name, []) if v.strip()] for name in COMPOSE_LISTS}
    return {
        "collection": collection.name,
        "documents": documents,
        "form": form,
        "lists": lists,
        "filters_open": any(form[name] for name in (*FILTER_NAMES, "min_score", "n"))
        or bool(lists["not"]),
        "random_models": random_weight_models(request.app.state.settings),
        "page_sizes": PAGE_SIZES,
        "max_upload_bytes": request.app.state.settings.max_upload_bytes,
        "page_size": PAGE,
        "error": None,
        "notice": None,
        "section": None,
    }


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers={**PAGE_HEADERS, **(headers or {})}
    )


def render_error(
    request: Request, status: int, message: str, field: str | None, *, headers: Mapping[str, str]
) -> Response:
    """The page's error state, used by the error handler for page routes."""
    raw = _raw(request)
    context = _base_context(request, raw)
    context["error"] = {"message": message, "field": field, "status": status}
    return render(request, "index.html", context, status, headers)


# -- searching ----------------------------------------------------------------------------


def _search(
    collection: Collection, pq: PageQuery, window: SearchParams
) -> tuple[list[Hit], list[dict[str, Any]], list[dict[str, Any]]]:
    """Hits for the page's query; views of its positive and negative images."""
    hits = run_page_query(collection, pq, window)
    return hits, _views(collection, pq.similar), _views(collection, pq.unlike)


def _views(collection: Collection, ids: tuple[str, ...]) -> list[dict[str, Any]]:
    if not ids:
        return []
    found = {r.id: r for r in collection.store.get(list(ids), with_vectors=False)}
    return [record_to_view(found[i]) for i in ids if i in found]


def _section(
    *,
    mode: str,
    q: str,
    hits: list[Hit],
    window: SearchParams,
    fq: str,
    query_view: dict[str, Any] | None = None,
    next_page: str | None = None,
    more_href: str | None = None,
    pq: PageQuery | None = None,
    likes: list[dict[str, Any]] | None = None,
    unlikes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    end = window.offset + len(hits)
    has_more = len(hits) == window.k and end + 1 <= MAX_WINDOW
    return {
        "mode": mode,
        "q": q,
        "query_view": query_view,
        "cards": [hit_view(h) for h in hits],
        "offset": window.offset,
        "fq": fq,
        "filtered": window.filters is not None and not window.filters.is_empty(),
        "next_url": (next_page + f"offset={end}&k={PAGE}" + (f"&{fq}" if fq else ""))
        if has_more and next_page
        else None,
        "more_href": more_href if has_more else None,
        "likes": likes or [],
        "unlikes": unlikes or [],
        "nots": list(pq.nots) if pq else [],
        "pairs": pq.pairs() if pq else [],
        "base": query_string(pq, fq) if pq else "",
        "composed": bool(pq and pq.composed),
        "hidden": [*(pq.pairs() if pq else []), *parse_qsl(fq)],
        "export_n": max(PAGE, end),
    }


def _text_or_similar(request: Request, *, offset: int, k: int) -> dict[str, Any]:
    raw = _raw(request)
    pq = page_query(raw)
    filters = filters_from_mapping(raw)
    fq = filter_query(raw)
    window = SearchParams(
        k=k, offset=offset, min_score=pq.min_score, filters=filters, regions=wants_regions(raw)
    )
    hits, likes, unlikes = _search(_collection(request), pq, window)
    if pq.box and likes:
        likes[0]["part"] = pq.box
    base = query_string(pq, fq)
    mode = "text" if not pq.similar else ("similar" if not pq.q and not pq.composed else "mixed")
    return _section(
        mode=mode,
        q=pq.q,
        hits=hits,
        window=window,
        fq=fq,
        query_view=likes[0] if len(likes) == 1 else None,
        next_page=f"/partials/results?{query_string(pq, '')}&",
        more_href=f"/?{base}&n={offset + len(hits) + PAGE}"
        if offset + len(hits) + PAGE <= MAX_K
        else None,
        pq=pq,
        likes=likes,
        unlikes=unlikes,
    )


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    raw = _raw(request)
    context = _base_context(request, raw)
    if raw.get("upload"):
        context["notice"] = UPLOAD_RELOAD_NOTICE
    pq = page_query(raw)
    if pq.empty and (pq.unlike or pq.nots):
        raise QueryError(
            "say what to find more of (a text or an image) beside what to find less of",
            field="q",
        )
    if not pq.empty:
        n = _one(raw, "n")
        # A long "Load more" session can pass MAX_K; a reload then shows the first MAX_K.
        shown = min(MAX_K, parse_int(n, "n", minimum=1, maximum=MAX_WINDOW)) if n else PAGE
        context["section"] = _text_or_similar(request, offset=0, k=shown)
    else:
        filters_from_mapping(raw)  # validate what the form holds, so a typo shows at once
    return render(request, "index.html", context)


@router.get("/partials/results", response_class=HTMLResponse)
def results_fragment(request: Request) -> Response:
    raw = _raw(request)
    offset = parse_int(_one(raw, "offset") or "0", "offset", minimum=0, maximum=MAX_WINDOW - 1)
    k = parse_int(_one(raw, "k") or str(PAGE), "k", minimum=1, maximum=MAX_K)
    section = _text_or_similar(request, offset=offset, k=k)
    return render(request, "_results.html", {"section": section})


async def _upload_section(request: Request, *, offset: int, k: int) -> dict[str, Any]:
    raw = _raw(request)
    filters: Filters | None = filters_from_mapping(raw)
    window = SearchParams(
        k=k,
        offset=offset,
        min_score=page_query(raw).min_score,
        filters=filters,
        regions=wants_regions(raw),
    )
    collection, media = _collection(request), request.app.state.media
    assert isinstance(media, Media)
    with await receive_upload(request) as upload:
        hits = await run_in_threadpool(search_upload, collection, media, upload, window)
    fq = filter_query(raw)
    return _section(
        mode="upload", q="", hits=hits, window=window, fq=fq, next_page="/partials/upload?"
    )


@router.post("/partials/upload", response_class=HTMLResponse)
async def upload_fragment(request: Request) -> Response:
    raw = _raw(request)
    offset = parse_int(_one(raw, "offset") or "0", "offset", minimum=0, maximum=MAX_WINDOW - 1)
    k = parse_int(_one(raw, "k") or str(PAGE), "k", minimum=1, maximum=MAX_K)
    section = await _upload_section(request, offset=offset, k=k)
    return render(request, "_results.html", {"section": section})


@router.post("/", response_class=HTMLResponse)
async def upload_page(request: Request) -> Response:
    """The upload form without JavaScript: the whole page, with results for the image."""
    raw = _raw(request)
    context = await run_in_threadpool(_base_context, request, raw)
    context["section"] = await _upload_section(request, offset=0, k=PAGE)
    return render(request, "index.html", context)


@router.get("/view/{doc_id}", response_class=HTMLResponse)
def view(request: Request, doc_id: str) -> Response:
    """One image with its metadata (the viewer dialog's page, for new tabs and no-JS)."""
    media: Media = request.app.state.media
    raw = _raw(request)
    context = _base_context(request, raw)
    # the page shows the file, so the file must still be the indexed one (else 410)
    context["image"] = record_to_view(media.check(doc_id))
    context["fq"] = filter_query(raw)
    context["quote"] = quote
    return render(request, "view.html", context)
