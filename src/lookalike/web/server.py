"""``serve(settings)``: run the web app under uvicorn (what ``lookalike serve`` calls)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

import uvicorn

from lookalike.config import Settings
from lookalike.web.app import create_app
from lookalike.web.logs import server_log_config

__all__ = ["serve"]

log = logging.getLogger("lookalike.web")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, *, watch: Sequence[str] = ()) -> None:
    """Serve the page and the JSON API on ``settings.host``:``settings.port`` until interrupted.

    Binds 127.0.0.1 unless the settings say otherwise. Serving beyond this machine
    without ``api_token`` works but is logged as a warning: anyone who can reach the
    port can then search the collection and read its images. ``watch``: folders the
    server keeps indexed as files change (``lookalike.watch``), in its own process.
    """
    if not _is_loopback(settings.host) and not settings.api_token:
        log.warning(
            "serving on %s without an API token: anyone who can reach it can see the images; "
            "set LOOKALIKE_API_TOKEN to require one",
            settings.host,
        )
    app = create_app(settings, watch=watch)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=server_log_config([settings.api_token]),  # no token in any log line
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
