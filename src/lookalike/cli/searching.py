"""``lookalike search`` and ``similar``: text, image-file and indexed-id queries."""

from __future__ import annotations

import os
from typing import Any

import click

from lookalike.cli.app import cli
from lookalike.cli.indexing import say_text_export
from lookalike.cli.options import build_filters, emit_json, filter_options, settings_options
from lookalike.config import Settings
from lookalike.records import Hit

__all__ = ["search", "similar"]


_REGIONS = click.option(
    "--regions",
    is_flag=True,
    help="Also match regions of large images (collections indexed with --regions); "
    "a hit found through a region shows its box.",
)


@cli.command()
@click.argument("query")
@_REGIONS
@filter_options
@settings_options
def search(
    query: str,
    regions: bool,
    as_json: bool,
    settings: Settings,
    k: int,
    offset: int,
    min_score: float | None,
    **filter_args: Any,
) -> None:
    """Find images matching a text QUERY (any language the text model knows)."""
    from lookalike.collection import open_collection
    from lookalike.search import Query

    filters = build_filters(**filter_args)
    with open_collection(settings) as col:
        if col.embedder.text_export_pending():
            say_text_export(as_json)
        hits = col.searcher.search(
            Query(
                texts=[query],
                k=k,
                offset=offset,
                min_score=min_score,
                filters=filters,
                regions=regions,
            )
        )
    _print_hits(hits, as_json, offset)


@cli.command()
@click.argument("image_or_id")
@_REGIONS
@filter_options
@settings_options
def similar(
    image_or_id: str,
    regions: bool,
    as_json: bool,
    settings: Settings,
    k: int,
    offset: int,
    min_score: float | None,
    **filter_args: Any,
) -> None:
    """Find images similar to an image file or to an indexed image's id (itself excluded)."""
    from lookalike.collection import open_collection
    from lookalike.search import Query

    filters = build_filters(**filter_args)
    with open_collection(settings) as col:
        query = Query(k=k, offset=offset, min_score=min_score, filters=filters, regions=regions)
        if os.path.exists(image_or_id):
            query.images = [image_or_id]
        else:
            query.ids = [image_or_id]
        hits = col.searcher.search(query)
    _print_hits(hits, as_json, offset)


def _print_hits(hits: list[Hit], as_json: bool, offset: int) -> None:
    from lookalike.cli.output import print_hits

    if as_json:
        emit_json([h.to_dict() for h in hits])
    else:
        print_hits(hits, offset)
