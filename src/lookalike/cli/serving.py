"""``lookalike serve``: the web UI and the JSON API."""

from __future__ import annotations

import click

from lookalike.cli.app import cli
from lookalike.cli.options import settings_options
from lookalike.config import Settings
from lookalike.errors import ConfigError

__all__ = ["serve"]


@cli.command()
@click.option("--host", help="Address to bind [default: 127.0.0.1].")
@click.option("--port", type=int, help="Port [default: 8000].")
@click.option(
    "--watch",
    "watch_paths",
    multiple=True,
    type=click.Path(),
    help="Also keep this folder indexed as files change (repeatable; see `lookalike watch`).",
)
@settings_options
def serve(
    host: str | None,
    port: int | None,
    watch_paths: tuple[str, ...],
    as_json: bool,
    settings: Settings,
) -> None:
    """Serve the web UI and the JSON API (binds 127.0.0.1 unless told otherwise)."""
    try:
        from lookalike.web import serve as run_server
    except ImportError as exc:
        raise ConfigError(
            f"the web extra is missing ({exc}); pip install 'lookalike[web]'"
        ) from exc
    from lookalike.store import open_store

    # a missing collection: exit 3 now, not a failed start-up (--watch indexes: it may create)
    open_store(settings, create=bool(watch_paths)).close()
    settings = settings.with_overrides(host=host, port=port)
    # The address is printed by the server once the collection and models are loaded.
    click.echo(
        f"loading collection {settings.collection!r} and its models (a few seconds); "
        f"then serving on http://{settings.host}:{settings.port} ...",
        err=True,
    )
    run_server(settings, watch=watch_paths)
