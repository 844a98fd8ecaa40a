"""``lookalike search`` and ``similar``: text, image-file, indexed-id and composed queries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click

from lookalike.cli.app import cli
from lookalike.cli.indexing import say_text_export
from lookalike.cli.options import build_filters, emit_json, filter_options, settings_options
from lookalike.config import Settings
from lookalike.errors import QueryError
from lookalike.records import Filters, Hit

__all__ = ["search", "similar"]


_REGIONS = click.option(
    "--regions",
    is_flag=True,
    help="Also match regions of large images (collections indexed with --regions); "
    "a hit found through a region shows its box.",
)


_AUTO_CUTOFF = click.option(
    "--auto-cutoff",
    is_flag=True,
    help="Keep only the hits above the widest drop between consecutive scores (a per-query "
    "cut instead of one --min-score; `lookalike eval` measures it on your labels).",
)


@cli.command()
@click.argument("query", required=False)
@click.option("--like", multiple=True, help="More like this image file or indexed id; repeatable.")
@click.option("--unlike", multiple=True, help="Less like this image file or id; repeatable.")
@click.option("--not", "not_texts", multiple=True, help="Steer away from this text; repeatable.")
@click.option(
    "--negative-weight",
    type=float,
    default=0.5,
    show_default=True,
    help="How strongly --not/--unlike push away.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV on stdout.")
@_REGIONS
@_AUTO_CUTOFF
@filter_options
@settings_options
def search(
    query: str | None,
    like: tuple[str, ...],
    unlike: tuple[str, ...],
    not_texts: tuple[str, ...],
    negative_weight: float,
    as_csv: bool,
    regions: bool,
    auto_cutoff: bool,
    as_json: bool,
    settings: Settings,
    k: int,
    offset: int,
    min_score: float | None,
    **filter_args: Any,
) -> None:
    """Find images matching a text QUERY (any language the text model knows), optionally
    composed with --like / --unlike images or ids and --not texts. Any part may carry a
    weight: "2:red car", --like 0.5:cat.jpg."""
    from lookalike.cli.compose import describe, parse_parts
    from lookalike.collection import open_collection
    from lookalike.search import Query

    _one_format(as_json, as_csv)
    filters = build_filters(**filter_args)
    parts = parse_parts([query] if query else [], like, unlike, not_texts)
    started = time.perf_counter()
    with open_collection(settings) as col:
        if (query or not_texts) and col.embedder.text_export_pending():
            say_text_export(as_json or as_csv, settings, col.embedder.text_export_pending)
        hits = col.searcher.search(
            Query(
                **parts,
                negative_weight=negative_weight,
                k=k,
                offset=offset,
                min_score=min_score,
                filters=filters,
                regions=regions,
            )
        )
        hits = _cut(hits, auto_cutoff)
        described = describe(parts, negative_weight)
        if set(described) == {"type", "texts"} and len(parts["texts"]) == 1:
            described = {"type": "text", "q": str(query).strip()}
        out = _Output(as_json, as_csv, col.name, described, k, offset, min_score, filters, started)
        _print_hits(hits, out)


@cli.command()
@click.argument("image_or_id")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV on stdout.")
@_REGIONS
@_AUTO_CUTOFF
@filter_options
@settings_options
def similar(
    image_or_id: str,
    as_csv: bool,
    regions: bool,
    auto_cutoff: bool,
    as_json: bool,
    settings: Settings,
    k: int,
    offset: int,
    min_score: float | None,
    **filter_args: Any,
) -> None:
    """Find images similar to an image file or to an indexed image's id (itself excluded)."""
    from lookalike.cli.compose import image_or_id as classify
    from lookalike.collection import open_collection
    from lookalike.search import Query

    _one_format(as_json, as_csv)
    filters = build_filters(**filter_args)
    kind, value = classify(image_or_id, "image_or_id")
    started = time.perf_counter()
    with open_collection(settings) as col:
        query = Query(k=k, offset=offset, min_score=min_score, filters=filters, regions=regions)
        if kind == "image":
            query.images = [value]
            described = {"type": "image", "path": value}
        else:
            query.ids = [value]
            described = {"type": "similar", "id": value}
        hits = _cut(col.searcher.search(query), auto_cutoff)
        out = _Output(as_json, as_csv, col.name, described, k, offset, min_score, filters, started)
        _print_hits(hits, out)


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise QueryError("choose one of --json and --csv", field="csv")


@dataclass
class _Output:
    as_json: bool
    as_csv: bool
    collection: str
    query: dict[str, Any]
    k: int
    offset: int
    min_score: float | None
    filters: Filters | None
    started: float


def _print_hits(hits: list[Hit], out: _Output) -> None:
    if out.as_json:
        from lookalike.export import envelope
        from lookalike.search import MAX_WINDOW

        emit_json(
            envelope(
                collection=out.collection,
                query=out.query,
                k=out.k,
                offset=out.offset,
                min_score=out.min_score,
                filters=out.filters,
                results=[h.to_dict() for h in hits],
                started=out.started,
                max_window=MAX_WINDOW,
            )
        )
    elif out.as_csv:
        from lookalike.export import hits_csv

        click.echo(hits_csv(hits, out.offset), nl=False)
    else:
        from lookalike.cli.output import print_hits

        print_hits(hits, out.offset)


def _cut(hits: list[Hit], auto_cutoff: bool) -> list[Hit]:
    if not auto_cutoff:
        return hits
    from lookalike.cutoff import largest_gap

    return hits[: largest_gap([h.score for h in hits])]
