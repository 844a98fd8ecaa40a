"""The ``lookalike`` command line. Thin: it parses, calls the library, and prints.

Library errors become one-line messages on stderr with a non-zero exit code;
every command has ``--json`` for machine-readable output on stdout.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from lookalike.config import Settings
from lookalike.errors import (
    ConfigError,
    LookalikeError,
    ModelError,
    NotFoundError,
    QueryError,
    StoreError,
)
from lookalike.records import Filters, Hit

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES: list[tuple[type[LookalikeError], int]] = [
    (QueryError, 2),
    (ConfigError, 2),
    (NotFoundError, 3),
    (ModelError, 4),
    (StoreError, 5),
    (LookalikeError, 1),
]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn library errors into one-line messages."""
    # Pillow warns about odd chunks in damaged files; the decoder reports such files itself.
    warnings.filterwarnings("ignore", module="PIL")
    try:
        cli.main(args=argv, prog_name="lookalike", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LookalikeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(next(code for cls, code in EXIT_CODES if isinstance(exc, cls)))
    except KeyboardInterrupt:
        click.echo(
            "interrupted; committed work is kept, run the same command again to continue", err=True
        )
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


# -- shared options --------------------------------------------------------------------------


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
            help="Only this format (jpeg, png, ...); repeatable.",
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
        formats=tuple(_format_name(f) for f in formats),
        min_size=parse_size(min_size, "min-size") if min_size else None,
        max_size=parse_size(max_size, "max-size") if max_size else None,
        modified_after=parse_date(after, "after", end_of_day=False) if after else None,
        modified_before=parse_date(before, "before", end_of_day=True) if before else None,
    )
    return None if filters.is_empty() else filters


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(text: str, field: str) -> int:
    """'200KB' -> 200000, '5MiB' -> 5242880, '123' -> 123."""
    m = _SIZE_RE.match(text)
    unit = (m.group(2) or "").lower() if m else ""
    if not m or unit not in _UNITS:
        raise QueryError(
            f"cannot read size {text!r}; write e.g. 500KB, 2MB or 1048576", field=field
        )
    return int(float(m.group(1)) * _UNITS[unit])


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


def _format_name(name: str) -> str:
    name = name.lower().lstrip(".")
    return {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heic": "heif"}.get(name, name)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# -- commands ---------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lookalike")
def cli() -> None:
    """Search your own images by text (50+ languages) or by image."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@settings_options
def index(paths: tuple[str, ...], quiet: bool, as_json: bool, settings: Settings) -> None:
    """Index the images in PATHS (folders or files); only new or changed files are embedded."""
    from lookalike.cli_output import IndexProgressBar, print_index_report
    from lookalike.collection import open_collection

    with open_collection(settings) as col:
        with IndexProgressBar(disable=quiet) as bar:
            report = col.indexer.index(list(paths), progress=bar.update)
        # Text search's first use exports the text model for ONNX Runtime: do it now,
        # so that the first query is fast. A model that cannot load is the search's to report.
        if _text_export_pending(col.embedder):
            _say_text_export(quiet or as_json)
            with contextlib.suppress(ModelError):
                col.embedder.load_texts()  # type: ignore[attr-defined]
    if as_json:
        emit_json(report.to_dict())
    else:
        print_index_report(report)


def _text_export_pending(embedder: object) -> bool:
    pending = getattr(embedder, "text_export_pending", None)
    return bool(pending is not None and pending())


def _say_text_export(quiet: bool) -> None:
    if not quiet:
        click.echo(
            "preparing text search: exporting the text model for ONNX Runtime "
            "(once per model and version; up to a minute) ...",
            err=True,
        )


@cli.command()
@click.argument("query")
@filter_options
@settings_options
def search(
    query: str,
    as_json: bool,
    settings: Settings,
    k: int,
    offset: int,
    min_score: float | None,
    **filter_args: Any,
) -> None:
    """Find images matching a text QUERY (any language the text model knows)."""
    from lookalike.collection import open_collection

    filters = build_filters(**filter_args)
    with open_collection(settings) as col:
        if _text_export_pending(col.embedder):
            _say_text_export(as_json)
        hits = col.searcher.text(query, k=k, offset=offset, min_score=min_score, filters=filters)
    _print_hits(hits, as_json, offset)


@cli.command()
@click.argument("image_or_id")
@filter_options
@settings_options
def similar(
    image_or_id: str,
    as_json: bool,
    settings: Settings,
    k: int,
    offset: int,
    min_score: float | None,
    **filter_args: Any,
) -> None:
    """Find images similar to an image file or to an indexed image's id (itself excluded)."""
    from lookalike.collection import open_collection

    filters = build_filters(**filter_args)
    with open_collection(settings) as col:
        if os.path.exists(image_or_id):
            hits = col.searcher.image(
                image_or_id, k=k, offset=offset, min_score=min_score, filters=filters
            )
        else:
            hits = col.searcher.similar(
                image_or_id, k=k, offset=offset, min_score=min_score, filters=filters
            )
    _print_hits(hits, as_json, offset)


@cli.command()
@settings_options
def stats(as_json: bool, settings: Settings) -> None:
    """Sizing: documents, dimensions, bytes per document and per dimension, projections."""
    from lookalike.cli_output import print_sizing
    from lookalike.collection import open_collection
    from lookalike.sizing import sizing_report

    with open_collection(settings) as col:
        report = sizing_report(col.store.stats())
    if as_json:
        emit_json(report.to_dict())
    else:
        print_sizing(report)


@cli.command()
@click.option("--no-load", is_flag=True, help="Only look for the weights; do not load them.")
@settings_options
def models(no_load: bool, as_json: bool, settings: Settings) -> None:
    """Which models are configured, where their weights are, and whether they load."""
    from lookalike.cli_output import print_models
    from lookalike.models import model_statuses

    statuses = model_statuses(settings, try_load=not no_load)
    if as_json:
        emit_json([s.to_dict() for s in statuses])
    else:
        print_models(statuses)
    if not all(s.available and s.loads is not False for s in statuses):
        sys.exit(4)


@cli.command()
@settings_options
def collections(as_json: bool, settings: Settings) -> None:
    """List the collections in the data folder."""
    from lookalike.store import list_collections

    names = list_collections(settings)
    if as_json:
        emit_json(names)
    else:
        for name in names:
            click.echo(name)
        if not names:
            click.echo(
                f"no collections yet in {settings.home}; run `lookalike index FOLDER`", err=True
            )


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@settings_options
def drop(yes: bool, as_json: bool, settings: Settings) -> None:
    """Delete a collection and its index (your image files are not touched)."""
    from lookalike.store import open_store

    if not yes:
        click.confirm(f"Delete collection {settings.collection!r} and its index?", abort=True)
    store = open_store(settings)
    store.drop()
    if as_json:
        emit_json({"dropped": settings.collection})
    else:
        click.echo(f"dropped collection {settings.collection}")


@cli.command()
@click.option("--host", help="Address to bind [default: 127.0.0.1].")
@click.option("--port", type=int, help="Port [default: 8000].")
@settings_options
def serve(host: str | None, port: int | None, as_json: bool, settings: Settings) -> None:
    """Serve the web UI and the JSON API (binds 127.0.0.1 unless told otherwise)."""
    try:
        from lookalike.web import serve as run_server
    except ImportError as exc:
        raise ConfigError(
            f"the web extra is missing ({exc}); pip install 'lookalike[web]'"
        ) from exc
    run_server(settings.with_overrides(host=host, port=port))


@cli.command()
@click.argument("source")
@click.argument("dest")
@click.option("--batch-size", type=int, default=500, show_default=True)
@settings_options
def copy(source: str, dest: str, batch_size: int, as_json: bool, settings: Settings) -> None:
    """Copy a collection between stores without re-embedding.

    SOURCE and DEST are a local collection name (``photos``) or an Elasticsearch
    URL ending in the collection name (``https://host:9200/photos``).
    """
    from lookalike.copy import copy_collection
    from lookalike.store import open_store

    src = open_store(_store_settings(settings, source))
    dst = open_store(_store_settings(settings, dest))
    try:
        report = copy_collection(src, dst, batch_size=batch_size)
    finally:
        src.close()
        dst.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(
            f"copied {report.copied} documents ({report.skipped} already there); "
            f"source has {report.source_count}, destination {report.dest_count}"
        )


def _store_settings(settings: Settings, spec: str) -> Settings:
    if "://" in spec:
        url, _, name = spec.rstrip("/").rpartition("/")
        if "://" not in url or not name:
            raise QueryError(
                f"{spec!r}: write the store as URL/COLLECTION, e.g. https://host:9200/photos"
            )
        return settings.with_overrides(store=url, collection=name)
    return settings.with_overrides(store="local", collection=spec)


def _print_hits(hits: list[Hit], as_json: bool, offset: int) -> None:
    from lookalike.cli_output import print_hits

    if as_json:
        emit_json([h.to_dict() for h in hits])
    else:
        print_hits(hits, offset)
