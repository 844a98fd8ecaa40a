"""``lookalike index``: add new and changed files, remove deleted ones."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings
from lookalike.errors import ModelError

if TYPE_CHECKING:
    from lookalike.query_export_job import Job

__all__ = ["index", "say_query_exports", "say_text_export"]


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--wait", is_flag=True, help="If another run is changing the collection, wait.")
@click.option(
    "--retry-failed", is_flag=True, help="Try files that failed before even if unchanged."
)
@click.option(
    "--regions",
    is_flag=True,
    help="Also embed overlapping tiles of large images, so that search --regions finds small "
    "details; recorded in the collection (later runs keep doing it). See `stats` for its cost.",
)
@settings_options
def index(
    paths: tuple[str, ...],
    quiet: bool,
    wait: bool,
    retry_failed: bool,
    regions: bool,
    as_json: bool,
    settings: Settings,
) -> None:
    """Index the images in PATHS (folders or files); only new or changed files are embedded.

    Creates the collection if needed. One run at a time per collection: another one
    exits with a message naming the running one, unless --wait."""
    from lookalike.cli.output import IndexProgressBar, print_index_report
    from lookalike.collection import open_collection

    with open_collection(settings, create=True) as col:
        with IndexProgressBar(disable=quiet, model=settings.image_model) as bar:
            indexer = col.indexer
            report = indexer.index(
                list(paths),
                progress=bar.update,
                retry_failed=retry_failed,
                wait=wait,
                on_wait=lambda message: click.echo(message, err=True),
                regions=regions,
            )
        # Queries run on checked ONNX exports of the text and image towers, without torch,
        # made once per model and version (lookalike.query_export_job). A model that
        # cannot load is the search's to report.
        # The saved image tower (lookalike.models.vision_saved) is made with them.
        pending = col.embedder.query_exports_pending()
        save = report.indexed > 0 and col.embedder.warm_start_pending()
        job = None
        if (pending or save) and settings.query_export == "now":
            if pending:
                say_query_exports(pending, quiet or as_json)
            with contextlib.suppress(ModelError):
                col.embedder.prepare_queries()
                col.embedder.prepare_warm_start()
        elif (pending or save) and settings.query_export == "background":
            job = _background_exports(settings, pending, quiet or as_json)
    if as_json:
        out = report.to_dict()
        split = indexer.split
        if split is not None:  # how the embedding phase split the cores (for benchmarks)
            out["core_split"] = " > ".join(f"{s.workers}w/{s.threads}t" for s in split.history)
        if job is not None:
            out["query_export"] = {**job.to_dict(), "towers": pending}
        emit_json(out)
        return
    print_index_report(report)


def say_query_exports(towers: list[str], quiet: bool) -> None:
    if not quiet:
        models = " and ".join(f"{t} model" for t in towers)
        click.echo(
            f"preparing fast queries: exporting the {models} for ONNX Runtime "
            "(once per model and version; up to a minute) ...",
            err=True,
        )


def _background_exports(settings: Settings, towers: list[str], quiet: bool) -> Job:
    """Start (or find running) the detached export of the query models, saying so."""
    from lookalike.query_export_job import running_job, start_job

    job = running_job(settings) or start_job(settings)
    if not quiet and towers:
        models = " and ".join(f"{t} model" for t in towers)
        click.echo(
            f"preparing fast queries in the background: exporting the {models} for ONNX "
            f"Runtime (pid {job.pid}, once per model and version; log {job.log})",
            err=True,
        )
    return job


def say_text_export(
    quiet: bool, settings: Settings | None = None, pending: Callable[[], bool] | None = None
) -> None:
    """Say that the first text query makes the text model's export; when ``index``'s
    background export is making it now, say so and wait for it instead (the query
    then runs on it, without torch)."""
    if settings is not None:
        from lookalike.query_export_job import running_job, wait_for_job

        job = running_job(settings)
        if job is not None:
            if not quiet:
                click.echo(
                    "preparing text search: waiting for the ONNX export that `lookalike index` "
                    f"started in the background (pid {job.pid}; up to a minute) ...",
                    err=True,
                )
            if wait_for_job(settings) and not (pending and pending()):
                return
    if not quiet:
        click.echo(
            "preparing text search: exporting the text model for ONNX Runtime "
            "(once per model and version; up to a minute) ...",
            err=True,
        )
