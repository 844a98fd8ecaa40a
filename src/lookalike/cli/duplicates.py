"""``lookalike duplicates``: groups of exact copies, near-duplicates or similar shots.

It lists; it never deletes. ``--csv`` writes the list for a spreadsheet, and
``--move-to DIR`` moves every copy but each group's best under DIR (``--dry-run``
shows the plan first and touches nothing).
"""

from __future__ import annotations

import csv
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings

if TYPE_CHECKING:
    from lookalike.duplicates import DuplicateGroup, DuplicateReport

__all__ = ["duplicates"]

CSV_COLUMNS = [
    "group", "kind", "best", "path", "size", "width", "height", "format", "modified", "taken",
    "score", "sha256", "id",
]  # fmt: skip


@cli.command()
@click.option(
    "--kind",
    type=click.Choice(["exact", "near", "similar"]),
    default="near",
    show_default=True,
    help="exact: same bytes; near: same picture edited; similar: shots taken close together.",
)
@click.option("--threshold", type=float, help="Cosine threshold (default: the measured one).")
@click.option("--folder", help="Only images in this folder (or below).")
@click.option(
    "--burst-seconds",
    type=float,
    default=10.0,
    show_default=True,
    help="similar: at most this many seconds apart (EXIF capture time, else mtime).",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per file on stdout.")
@click.option(
    "--move-to",
    type=click.Path(file_okay=False),
    help="Move every copy but each group's best under this folder (nothing is deleted).",
)
@click.option("--dry-run", is_flag=True, help="With --move-to: show the moves, make none.")
@click.option("--yes", "-y", is_flag=True, help="With --move-to: do not ask before moving.")
@settings_options
def duplicates(
    kind: str,
    threshold: float | None,
    folder: str | None,
    burst_seconds: float,
    as_csv: bool,
    move_to: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    settings: Settings,
) -> None:
    """Find groups of duplicate images; the best copy (most pixels, then oldest) comes first."""
    from lookalike.collection import open_collection
    from lookalike.duplicates import apply_moves, find_duplicates, plan_moves
    from lookalike.errors import QueryError

    if dry_run and not move_to:
        raise QueryError("--dry-run goes with --move-to DIR", field="dry_run")
    with open_collection(settings) as col:
        report = find_duplicates(
            col.store,
            kind=kind,
            threshold=threshold,
            folder=Path(os.path.abspath(folder)).as_posix() if folder else None,
            burst_seconds=burst_seconds,
            max_pixels=settings.max_pixels,
        )
    if move_to:
        plan = plan_moves(report.groups, move_to)
        if not dry_run and plan.moves and not yes and not as_json:
            click.confirm(
                f"move {len(plan.moves)} files ({_bytes(plan.bytes)}) under {plan.destination}?",
                abort=True,
                err=True,
            )
        if not dry_run:
            apply_moves(plan)
        if as_json:
            emit_json({**report.to_dict(), "dry_run": dry_run, "plan": plan.to_dict()})
            return
        for move in plan.moves:
            click.echo(
                f"{'would move' if dry_run else move.status}: {move.source} -> {move.target}"
            )
        verb = "would move" if dry_run else "moved"
        done = len(plan.moves) if dry_run else sum(m.status == "moved" for m in plan.moves)
        click.echo(f"{verb} {done} of {len(plan.moves)} files", err=True)
        return
    if as_json:
        emit_json(report.to_dict())
    elif as_csv:
        _write_csv(report.groups)
    else:
        _print(report)


def _write_csv(groups: list[DuplicateGroup]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for n, group in enumerate(groups, start=1):
        for m in group.members:
            writer.writerow(
                [n, group.kind, int(m.best), m.path, m.size, m.width, m.height, m.format,
                 _date(m.mtime), _date(m.taken) if m.taken is not None else "",
                 f"{m.score:.4f}", m.sha256, m.id]
            )  # fmt: skip


def _print(report: DuplicateReport) -> None:
    if not report.groups:
        click.echo(f"no {report.kind} duplicates among {report.documents} images", err=True)
        return
    for n, group in enumerate(report.groups, start=1):
        reclaim = sum(m.size for m in group.others)
        click.echo(
            f"group {n}: {len(group.members)} {group.kind} ({_bytes(reclaim)} in the other copies)"
        )
        for m in group.members:
            mark = "best" if m.best else f"{m.score:4.2f}"
            size = f"{m.width}x{m.height}  {_bytes(m.size):>9}"
            click.echo(f"  {mark:>4}  {size}  {_date(m.mtime)}  {m.path}")
    click.echo(
        f"{len(report.groups)} groups among {report.documents} images "
        f"(threshold {report.threshold}, {report.seconds:.1f} s)",
        err=True,
    )


def _bytes(n: int) -> str:
    from lookalike.sizing import human_bytes

    return human_bytes(n)


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
