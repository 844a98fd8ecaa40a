"""Commands that look after collections: stats, models, collections, drop, copy."""

from __future__ import annotations

import sys

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings
from lookalike.errors import QueryError

__all__ = ["collections", "copy", "drop", "models", "stats"]


@cli.command()
@settings_options
def stats(as_json: bool, settings: Settings) -> None:
    """Sizing: documents, dimensions, bytes per document and per dimension, projections."""
    from lookalike.cli.output import print_sizing
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
@click.option(
    "--available", is_flag=True, help="List the model presets (--model NAME) and what they cost."
)
@settings_options
def models(no_load: bool, available: bool, as_json: bool, settings: Settings) -> None:
    """Which models are configured, where their weights are, and whether they load."""
    from lookalike.cli.output import print_models
    from lookalike.models import model_statuses

    if available:
        from lookalike.cli.output import print_presets
        from lookalike.presets import PRESETS

        if as_json:
            emit_json([p.to_dict() for p in PRESETS.values()])
        else:
            print_presets(list(PRESETS.values()))
        return

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
    from lookalike.store import drop_collection, open_store

    if not yes:
        open_store(settings).close()  # no confirmation asked for a collection that is not there
        click.confirm(f"Delete collection {settings.collection!r} and its index?", abort=True)
    drop_collection(settings)
    if as_json:
        emit_json({"dropped": settings.collection})
    else:
        click.echo(f"dropped collection {settings.collection}")


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
    from lookalike.store import open_store
    from lookalike.transfer import copy_collection

    src = open_store(_store_settings(settings, source))
    try:
        dst = open_store(_store_settings(settings, dest), create=True)
    except BaseException:
        src.close()
        raise
    try:
        with dst.writer(what="copy"):
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
