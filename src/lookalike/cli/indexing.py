"""``lookalike index``: add new and changed files, remove deleted ones."""

from __future__ import annotations

import contextlib

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings
from lookalike.errors import ModelError

__all__ = [
    "index",
    "query_exports_pending",
    "say_query_exports",
    "say_text_export",
    "text_export_pending",
]


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@settings_options
def index(paths: tuple[str, ...], quiet: bool, as_json: bool, settings: Settings) -> None:
    """Index the images in PATHS (folders or files); only new or changed files are embedded."""
    from lookalike.cli.output import IndexProgressBar, print_index_report
    from lookalike.collection import open_collection

    with open_collection(settings) as col:
        with IndexProgressBar(disable=quiet, model=settings.image_model) as bar:
            report = col.indexer.index(list(paths), progress=bar.update)
        # Queries run on checked ONNX exports of the text and image towers, without torch:
        # make them now, once per model and version, so that the first query is fast.
        # A model that cannot load is the search's to report.
        pending = query_exports_pending(col.embedder)
        if pending:
            say_query_exports(pending, quiet or as_json)
            with contextlib.suppress(ModelError):
                col.embedder.prepare_queries()  # type: ignore[attr-defined]
    if as_json:
        emit_json(report.to_dict())
    else:
        print_index_report(report)


def query_exports_pending(embedder: object) -> list[str]:
    """The towers whose torch-free query export is still to be made ([] for other runtimes)."""
    pending = getattr(embedder, "query_exports_pending", None)
    return list(pending()) if pending is not None else []


def say_query_exports(towers: list[str], quiet: bool) -> None:
    if not quiet:
        models = " and ".join(f"{t} model" for t in towers)
        click.echo(
            f"preparing fast queries: exporting the {models} for ONNX Runtime "
            "(once per model and version; up to a minute) ...",
            err=True,
        )


def text_export_pending(embedder: object) -> bool:
    pending = getattr(embedder, "text_export_pending", None)
    return bool(pending is not None and pending())


def say_text_export(quiet: bool) -> None:
    if not quiet:
        click.echo(
            "preparing text search: exporting the text model for ONNX Runtime "
            "(once per model and version; up to a minute) ...",
            err=True,
        )
