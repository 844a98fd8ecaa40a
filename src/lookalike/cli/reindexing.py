"""``lookalike reindex --model NAME``: re-embed a collection with another model, in place."""

from __future__ import annotations

import contextlib

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings
from lookalike.errors import ModelError

__all__ = ["reindex"]


@cli.command()
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@settings_options
def reindex(quiet: bool, as_json: bool, settings: Settings) -> None:
    """Re-embed the collection with the model of --model (a preset, Hub name or folder).

    Searches keep using the old vectors until the new ones are complete; then the
    collection is swapped in one step. Interrupted, it continues where it stopped.
    """
    from lookalike.cli.indexing import say_query_exports
    from lookalike.cli.output import IndexProgressBar
    from lookalike.models import create_embedder
    from lookalike.reindex import reindex_collection

    embedder = create_embedder(settings)
    with IndexProgressBar(disable=quiet or as_json) as bar:
        report = reindex_collection(settings, embedder, progress=bar.update)
    pending = embedder.query_exports_pending()
    if pending:
        say_query_exports(pending, quiet or as_json)
        with contextlib.suppress(ModelError):
            embedder.prepare_queries()
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.swapped:
        click.echo(f"collection {report.collection} already uses {report.model}; nothing to do")
        return
    click.echo(
        f"re-embedded {report.collection} with {report.model} (was {report.previous_model}): "
        f"{report.embedded} embedded, {report.resumed} from the interrupted run, "
        f"{report.reused} reused, {len(report.skipped)} left out, in {report.seconds:.1f} s"
    )
    for skipped in report.skipped[:20]:
        click.echo(f"  left out {skipped.path}: {skipped.reason}")
