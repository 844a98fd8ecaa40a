"""Duplicate groups over HTTP: ``GET /api/v1/duplicates`` (paged JSON) and the ``/duplicates``
page, which shows each group side by side with sizes, dates and resolutions and marks
the best copy. Both call ``lookalike.duplicates.find_duplicates``; neither moves or
deletes anything (the CLI's ``--move-to`` does moving, after a dry run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lookalike.collection import Collection
from lookalike.duplicates import DEFAULT_BURST_SECONDS, KINDS, DuplicateGroup, find_duplicates
from lookalike.errors import QueryError
from lookalike.web.params import check_known, filters_from_mapping, parse_int
from lookalike.web.present import API, record_view
from lookalike.web.schemas import error_responses

__all__ = ["api_router", "page_router"]

PARAMS = ("kind", "threshold", "folder", "burst_seconds", "offset", "limit")
MAX_LIMIT = 200
PAGE_GROUPS = 20

api_router = APIRouter(prefix=API, tags=["api"])
page_router = APIRouter(include_in_schema=False)


def _known_params(request: Request) -> None:
    check_known(request.query_params.keys(), PARAMS)


def _one(params: Mapping[str, list[str]], name: str) -> str:
    values = [v.strip() for v in params.get(name, []) if v.strip()]
    if len(values) > 1:
        raise QueryError(f"give {name} only once", field=name)
    return values[0] if values else ""


def _number(text: str, name: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"{name} must be a number, got {text[:40]!r}", field=name) from None
    if not low <= value <= high:
        raise QueryError(f"{name} must be from {low:g} to {high:g}, got {value:g}", field=name)
    return value


def _folder(text: str) -> str | None:
    """The folder parameter, checked and normalised as the search routes do."""
    filters = filters_from_mapping({"folder": [text]}) if text else None
    return filters.folder if filters else None


def _report(request: Request, default_limit: int) -> tuple[dict[str, Any], dict[str, str]]:
    check_known(request.query_params.keys(), PARAMS)
    raw = {name: request.query_params.getlist(name) for name in request.query_params}
    kind = _one(raw, "kind") or "near"
    if kind not in KINDS:
        raise QueryError(f"kind must be one of {', '.join(KINDS)}, got {kind[:40]!r}", field="kind")
    threshold = _one(raw, "threshold")
    folder = _one(raw, "folder")
    burst = _one(raw, "burst_seconds")
    offset = parse_int(_one(raw, "offset") or "0", "offset", minimum=0, maximum=10**9)
    limit = parse_int(
        _one(raw, "limit") or str(default_limit), "limit", minimum=1, maximum=MAX_LIMIT
    )
    collection: Collection = request.app.state.collection
    report = find_duplicates(
        collection.store,
        kind=kind,
        threshold=_number(threshold, "threshold", -1.0, 1.0) if threshold else None,
        folder=_folder(folder),
        burst_seconds=_number(burst, "burst_seconds", 0, 10**7) if burst else DEFAULT_BURST_SECONDS,
        max_pixels=request.app.state.settings.max_pixels,
    )
    body = report.to_dict(offset, limit)
    body["limit"] = limit
    end = offset + limit
    body["next_offset"] = end if end < len(report.groups) else None
    body["groups"] = [_group_view(g) for g in report.groups[offset:end]]
    form = {"kind": kind, "threshold": threshold, "folder": folder, "burst_seconds": burst}
    return body, form


def _group_view(group: DuplicateGroup) -> dict[str, Any]:
    members = []
    for m in group.members:
        meta = {
            "width": m.width, "height": m.height, "format": m.format, "size": m.size,
            "mtime": m.mtime, "sha256": m.sha256,
        }  # fmt: skip
        view = record_view(m.id, m.path, meta, m.score)
        view["best"] = m.best
        view["taken"] = m.taken
        del view["metadata"]
        members.append(view)
    return {**group.to_dict(), "members": members}


class DuplicatesPage(BaseModel):
    """One page of duplicate groups; each group's ``members[0]`` is its best copy."""

    model_config = ConfigDict(extra="allow")

    kind: str
    offset: int
    limit: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")
    groups: list[dict[str, Any]]


@api_router.get(
    "/duplicates",
    response_model=DuplicatesPage,
    responses=error_responses(),
    dependencies=[Depends(_known_params)],
)
def duplicates_api(
    request: Request,
    kind: Annotated[Literal["exact", "near", "similar"], Query()] = "near",
    threshold: Annotated[float | None, Query(ge=-1, le=1, description="Cosine.")] = None,
    folder: Annotated[str | None, Query(max_length=4096)] = None,
    burst_seconds: Annotated[float | None, Query(ge=0, le=10**7)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    """Groups of exact copies, near-duplicates or similar shots, biggest first, paged by
    ``offset`` and ``limit``; each group's first member is its best copy. (The parameters
    are read and checked once more with the page's rules, so both answer alike.)"""
    body, _ = _report(request, default_limit=50)
    return body


@page_router.get("/duplicates", response_class=HTMLResponse)
def duplicates_page(request: Request) -> Response:
    from lookalike.web.pages import _base_context, render

    body, form = _report(request, default_limit=PAGE_GROUPS)
    context = _base_context(request, {})
    keep = {k: v for k, v in form.items() if v}
    context.update(
        report=body,
        dup_form=form,
        kinds=KINDS,
        next_href=f"/duplicates?{urlencode({**keep, 'offset': body['next_offset']})}"
        if body["next_offset"] is not None
        else None,
    )
    return render(request, "duplicates.html", context)
