"""``lookalike check``: verify a collection's stored data; ``--repair`` fixes what it can."""

from __future__ import annotations

import sys

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings

__all__ = ["check"]


@cli.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild the saved index and re-embed damaged images from their files.",
)
@settings_options
def check(repair: bool, as_json: bool, settings: Settings) -> None:
    """Verify the collection: SQLite's integrity, every vector's checksum, the saved index.

    Exits 0 when all is well (or a repair fixed everything), 5 when problems remain.
    """
    from lookalike.checkup import check_collection
    from lookalike.collection import open_collection

    with open_collection(settings) as col:
        report = check_collection(col, repair=repair)
    if as_json:
        emit_json(report.to_dict())
    else:
        found = report.check
        if not found.supported:
            click.echo(f"the {settings.store} store cannot check itself; nothing was verified")
        checked = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in found.checked.items())
        click.echo(f"checked collection {found.collection}: {checked}")
        for line in found.problems:
            click.echo(f"  problem: {line}")
        for line in found.repaired:
            click.echo(f"  repaired: {line}")
        if report.reembedded is not None:
            again = report.reembedded
            click.echo(f"  re-embedded {again.indexed + again.reused} damaged image(s)")
            for skipped in again.skipped:
                click.echo(f"  not re-embedded {skipped.path}: {skipped.reason}")
        if report.reindexed is not None:
            click.echo(f"  indexed {report.reindexed.indexed} image(s) whose rows were lost")
        if report.ok:
            click.echo("ok" if found.ok else "repaired")
        elif not repair:
            click.echo(f"damaged: run `lookalike check --repair -c {found.collection}`")
    if not report.ok or not report.check.supported:
        sys.exit(5)
