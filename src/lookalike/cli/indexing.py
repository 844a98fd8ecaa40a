"""``lookalike index``: add new and changed files, remove deleted ones."""

from __future__ import annotations

import contextlib

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings
from lookalike.errors import ModelError

__all__ = ["index", "say_text_export"]


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--regions",
    is_flag=True,
    help="Also embed overlapping tiles of large images, so that search --regions finds small "
    "details; recorded in the collection (later runs keep doing it). See `stats` for its cost.",
)
@settings_options
def index(
    paths: tuple[str, ...], quiet: bool, regions: bool, as_json: bool, settings: Settings
) -> None:
    """Index the images in PATHS (folders or files); only new or changed files are embedded."""
    from lookalike.cli.output import IndexProgressBar, print_index_report
    from lookalike.collection import open_collection

    with open_collection(settings) as col:
        with IndexProgressBar(disable=quiet) as bar:
            report = col.indexer.index(list(paths), progress=bar.update, regions=regions)
        # Text search's first use exports the text model for ONNX Runtime: do it now,
        # so that the first query is fast. A model that cannot load is the search's to report.
        if col.embedder.text_export_pending():
            say_text_export(quiet or as_json)
            with contextlib.suppress(ModelError):
                col.embedder.load_texts()
    if as_json:
        emit_json(report.to_dict())
    else:
        print_index_report(report)


def say_text_export(quiet: bool) -> None:
    if not quiet:
        click.echo(
            "preparing text search: exporting the text model for ONNX Runtime "
            "(once per model and version; up to a minute) ...",
            err=True,
        )
