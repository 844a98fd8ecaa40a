"""``lookalike watch``: keep the index current as files are added, changed, moved or deleted."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Any

import click

from lookalike.cli.app import cli
from lookalike.cli.options import settings_options
from lookalike.config import Settings

__all__ = ["watch"]


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--debounce",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds a folder must be quiet before a pass.",
)
@click.option("--polling", is_flag=True, help="Poll instead of inotify/FSEvents (network shares).")
@click.option(
    "--rescan",
    type=float,
    default=600.0,
    show_default=True,
    help="Full pass every this many seconds anyway (0: never).",
)
@settings_options
def watch(
    paths: tuple[str, ...],
    debounce: float,
    polling: bool,
    rescan: float,
    as_json: bool,
    settings: Settings,
) -> None:
    """Index PATHS, then watch them and index changes until interrupted (Ctrl-C).

    Each start begins with a normal pass, so changes made while nothing was watching
    are picked up too. With --json, one JSON line per pass on stdout.
    """
    from lookalike.collection import open_collection
    from lookalike.errors import NotFoundError
    from lookalike.watch import PassReport, watch_collection

    for path in paths:
        if not os.path.isdir(path):
            raise NotFoundError(f"{path} is not a folder; give the folders to watch", field="path")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    def on_pass(result: PassReport) -> None:
        if as_json:
            click.echo(json.dumps(result.to_dict()))
            return
        if result.error:
            click.echo(f"{result.root}: {result.error}", err=True)
        elif result.report is not None:
            r = result.report
            click.echo(
                f"{result.root} ({result.reason}): indexed {r.indexed}, reused {r.reused}, "
                f"updated {r.updated}, removed {r.removed}, skipped {len(r.skipped)}"
            )

    with open_collection(settings, create=True) as col:  # watching indexes: it may create
        watcher = watch_collection(
            col, list(paths), debounce_s=debounce, polling=polling, rescan_s=rescan, on_pass=on_pass
        )
        done = threading.Event()

        def stop(*_args: Any) -> None:
            done.set()

        previous = signal.signal(signal.SIGTERM, stop)
        watcher.start()
        if not as_json:
            click.echo(
                f"watching {', '.join(r.path for r in watcher.roots)} (Ctrl-C stops)", err=True
            )
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()
            signal.signal(signal.SIGTERM, previous)
