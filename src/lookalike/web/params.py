"""Request parameters: parsing and validation shared by the JSON API and the pages.

Every value a client sends is checked here or by FastAPI; a mistake raises
``QueryError`` naming the parameter. Pages submit empty form fields for unused
filters, so an empty value means "not given" everywhere.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query

from lookalike.errors import QueryError
from lookalike.formats import parse_formats
from lookalike.records import Filters
from lookalike.search import MAX_K, MAX_WINDOW
from lookalike.units import parse_size

__all__ = [
    "FILTER_NAMES",
    "SearchParams",
    "check_known",
    "filter_query",
    "filters_from_mapping",
    "parse_filters",
    "parse_int",
    "parse_min_score",
    "parse_time",
    "search_params",
    "wants_regions",
]

FILTER_NAMES = (
    "folder",
    "format",
    "min_size",
    "max_size",
    "modified_after",
    "modified_before",
)
#: parameters any route accepts: the API token (see auth.py)
ALWAYS_ALLOWED = frozenset({"token"})
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_MAX_TEXT = 4096
_MAX_BYTES = 2**53  # file sizes; far beyond any file, well inside SQLite's integers


@dataclass(frozen=True)
class SearchParams:
    """The paging window and the filters of one search request."""

    k: int = 10
    offset: int = 0
    min_score: float | None = None
    filters: Filters | None = None
    #: also match regions of large images (collections indexed with --regions)
    regions: bool = False

    def with_window(self, k: int, offset: int) -> SearchParams:
        return SearchParams(
            k=k, offset=offset, min_score=self.min_score, filters=self.filters, regions=self.regions
        )


def check_known(params: Iterable[str], allowed: Iterable[str]) -> None:
    """Reject parameters a route does not know, so that a typo does not pass silently."""
    allowed_set = set(allowed) | ALWAYS_ALLOWED
    for name in params:
        if name not in allowed_set:
            known = ", ".join(sorted(allowed_set - ALWAYS_ALLOWED))
            raise QueryError(f"unknown parameter {name!r}; this route takes: {known}", field=name)


def parse_int(value: str, name: str, *, minimum: int, maximum: int) -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", text):
        raise QueryError(f"{name} must be a whole number, got {value[:40]!r}", field=name)
    number = int(text)
    if not minimum <= number <= maximum:
        raise QueryError(f"{name} must be from {minimum} to {maximum}, got {number}", field=name)
    return number


def parse_min_score(value: str | float | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        score = float(value)
    except ValueError:
        raise QueryError(
            f"min_score must be a number, got {str(value)[:40]!r}", field="min_score"
        ) from None
    if not math.isfinite(score) or not -1.0 <= score <= 1.0:
        raise QueryError("min_score must be between -1 and 1", field="min_score")
    return score


def parse_time(value: str, name: str, *, end_of_day: bool = False) -> float:
    """POSIX timestamp from ``2024-05-31``, an ISO date-time, or seconds since 1970.

    A bare date means the start of that day (local time), or its end for an upper bound,
    so ``modified_before=2024-05-31`` includes the whole of May 31st.
    """
    text = value.strip()
    try:
        if _NUMBER.match(text):
            stamp = float(text)
        elif len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min)
            if end_of_day:
                moment += timedelta(days=1, microseconds=-1)
            stamp = moment.timestamp()
        else:
            stamp = datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        raise QueryError(
            f"{name} must be a date like 2024-05-31, a date-time like 2024-05-31T18:00, "
            f"or seconds since 1970; got {value[:40]!r}",
            field=name,
        ) from None
    if not math.isfinite(stamp):
        raise QueryError(f"{name} must be a finite time", field=name)
    return stamp


def _parse_formats(values: Iterable[str]) -> tuple[str, ...]:
    return parse_formats(values)


def _parse_folder(value: str) -> str:
    text = value.strip()
    if "\x00" in text or len(text) > _MAX_TEXT:
        raise QueryError("folder is not a usable path", field="folder")
    if not text.startswith("/"):
        raise QueryError(
            f"folder must be an absolute path such as /photos/2024 (a result's details show its "
            f"folder); got {text[:80]!r}",
            field="folder",
        )
    return posixpath.normpath(text).replace("//", "/")


def parse_filters(
    *,
    folder: str | None = None,
    formats: Iterable[str] = (),
    min_size: int | None = None,
    max_size: int | None = None,
    modified_after: str | None = None,
    modified_before: str | None = None,
) -> Filters | None:
    """Filters from already-typed values; None when nothing restricts the search."""
    if min_size is not None and max_size is not None and min_size > max_size:
        raise QueryError("min_size is larger than max_size", field="min_size")
    after = parse_time(modified_after, "modified_after") if modified_after else None
    before = (
        parse_time(modified_before, "modified_before", end_of_day=True) if modified_before else None
    )
    if after is not None and before is not None and after > before:
        raise QueryError("modified_after is later than modified_before", field="modified_after")
    filters = Filters(
        folder=_parse_folder(folder) if folder else None,
        formats=_parse_formats(formats),
        min_size=min_size,
        max_size=max_size,
        modified_after=after,
        modified_before=before,
    )
    return None if filters.is_empty() else filters


def _size(value: str | None, name: str) -> int | None:
    """Bytes, or a size with a unit as the page's fields take it (``200KB``, ``5MB``)."""
    if value is None or not value.strip():
        return None
    if value.strip().isdigit():
        return parse_int(value, name, minimum=0, maximum=_MAX_BYTES)
    return parse_int(str(parse_size(value, name)), name, minimum=0, maximum=_MAX_BYTES)


def filters_from_mapping(params: Mapping[str, list[str]]) -> Filters | None:
    """Filters from raw query/form values (``name -> [values]``); empty values are ignored."""

    def one(name: str) -> str | None:
        values = [v for v in params.get(name, []) if v.strip()]
        if len(values) > 1:
            raise QueryError(f"give {name} only once", field=name)
        return values[0] if values else None

    return parse_filters(
        folder=one("folder"),
        formats=params.get("format", []),
        min_size=_size(one("min_size"), "min_size"),
        max_size=_size(one("max_size"), "max_size"),
        modified_after=one("modified_after"),
        modified_before=one("modified_before"),
    )


def filter_query(params: Mapping[str, list[str]]) -> str:
    """The non-empty filter parameters of a request, as a query string for links."""
    pairs = [(name, v) for name in FILTER_NAMES for v in params.get(name, []) if v.strip()]
    if wants_regions(params):  # kept with the filters, so paging and links keep it
        pairs.append(("regions", "1"))
    return urlencode(pairs)


def wants_regions(params: Mapping[str, list[str]]) -> bool:
    """Whether a page request asks for region search (``regions=1``, a ticked checkbox)."""
    values = [v.strip().lower() for v in params.get("regions", []) if v.strip()]
    return bool(values) and values[-1] in ("1", "on", "true", "yes")


# -- the FastAPI dependency for the JSON API ---------------------------------------------

_FORMAT_HELP = "Image format(s): jpeg, png, webp, ... Repeat the parameter or separate with commas."
_DATE_HELP = "A date (2024-05-31, local time), an ISO date-time, or seconds since 1970."


def search_params(
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many results.")] = 10,
    offset: Annotated[
        int, Query(ge=0, le=MAX_WINDOW - 1, description="Skip this many results (paging).")
    ] = 0,
    min_score: Annotated[
        float | None,
        Query(ge=-1, le=1, description="Only results with at least this cosine score."),
    ] = None,
    folder: Annotated[
        str | None, Query(max_length=_MAX_TEXT, description="Only images in this absolute folder.")
    ] = None,
    format: Annotated[list[str] | None, Query(description=_FORMAT_HELP)] = None,
    min_size: Annotated[
        int | None, Query(ge=0, le=_MAX_BYTES, description="Minimum file size in bytes.")
    ] = None,
    max_size: Annotated[
        int | None, Query(ge=0, le=_MAX_BYTES, description="Maximum file size in bytes.")
    ] = None,
    modified_after: Annotated[
        str | None, Query(max_length=64, description="Modified at or after. " + _DATE_HELP)
    ] = None,
    modified_before: Annotated[
        str | None, Query(max_length=64, description="Modified at or before. " + _DATE_HELP)
    ] = None,
    regions: Annotated[
        bool,
        Query(
            description="Also match regions of large images (a collection indexed with "
            "--regions); a result found through a region carries its box."
        ),
    ] = False,
) -> SearchParams:
    if offset + k > MAX_WINDOW:
        raise QueryError(f"offset + k must be at most {MAX_WINDOW}", field="offset")
    filters = parse_filters(
        folder=folder or None,
        formats=format or (),
        min_size=min_size,
        max_size=max_size,
        modified_after=modified_after or None,
        modified_before=modified_before or None,
    )
    return SearchParams(k=k, offset=offset, min_score=min_score, filters=filters, regions=regions)


#: the names ``search_params`` reads, for ``check_known``
SEARCH_PARAM_NAMES = ("k", "offset", "min_score", "regions", *FILTER_NAMES)
