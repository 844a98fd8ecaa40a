"""Options the commands share, and parsing of their values (sizes, dates, formats)."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from lookalike.config import Settings
from lookalike.errors import QueryError
from lookalike.formats import parse_formats
from lookalike.records import Filters
from lookalike.units import parse_size

__all__ = [
    "build_filters",
    "emit_json",
    "filter_options",
    "parse_date",
    "parse_size",
    "settings_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """Options every command shares: where the collection is and which models to use."""
    options = [
        click.option(
            "--home", type=click.Path(file_okay=False), help="Data folder [env LOOKALIKE_HOME]."
        ),
        click.option("-c", "--collection", help="Collection name [default: default]."),
        click.option(
            "--store", help="'local' (default) or an Elasticsearch URL [env LOOKALIKE_STORE]."
        ),
        click.option(
            "--model", "image_model", help="Image model: hub name or folder [env LOOKALIKE_MODEL]."
        ),
        click.option("--text-model", help="Text model, or 'clip' for CLIP's English text tower."),
        click.option("--runtime", help="Embedding runtime [default: auto]."),
        click.option(
            "--es-text-model",
            help="Embed text queries in Elasticsearch with this deployed model id.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout."),
    ]
    for option in reversed(options):
        func = option(func)

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        keys = (
            "home",
            "collection",
            "store",
            "image_model",
            "text_model",
            "runtime",
            "es_text_model",
        )
        overrides = {k: kwargs.pop(k) for k in keys}
        kwargs["settings"] = Settings.load(overrides)
        return func(**kwargs)

    return wrapper  # type: ignore[return-value]


def filter_options(func: F) -> F:
    options = [
        click.option(
            "-k", "--k", "k", type=int, default=10, show_default=True, help="Number of results."
        ),
        click.option("--offset", type=int, default=0, help="Skip this many results (paging)."),
        click.option(
            "--min-score", type=float, help="Only results with cosine similarity >= this."
        ),
        click.option("--folder", help="Only images in this folder (or below)."),
        click.option(
            "--format",
            "formats",
            multiple=True,
            help="Only these formats (jpeg, png, ...): repeat or separate with commas.",
        ),
        click.option("--min-size", help="Only files at least this big (e.g. 200KB)."),
        click.option("--max-size", help="Only files at most this big (e.g. 5MB)."),
        click.option(
            "--after", help="Only files modified on or after this date (YYYY-MM-DD or ISO time)."
        ),
        click.option("--before", help="Only files modified on or before this date."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_filters(
    folder: str | None,
    formats: tuple[str, ...],
    min_size: str | None,
    max_size: str | None,
    after: str | None,
    before: str | None,
) -> Filters | None:
    filters = Filters(
        folder=Path(os.path.abspath(folder)).as_posix() if folder else None,
        formats=parse_formats(formats),
        min_size=parse_size(min_size, "min-size") if min_size else None,
        max_size=parse_size(max_size, "max-size") if max_size else None,
        modified_after=parse_date(after, "after", end_of_day=False) if after else None,
        modified_before=parse_date(before, "before", end_of_day=True) if before else None,
    )
    return None if filters.is_empty() else filters


def parse_date(text: str, field: str, *, end_of_day: bool) -> float:
    """A date or ISO time as a POSIX timestamp; a bare date covers the whole day (UTC)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
            return day.timestamp() + (86399.999 if end_of_day else 0.0)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"cannot read date {text!r}; write e.g. 2024-05-31", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
