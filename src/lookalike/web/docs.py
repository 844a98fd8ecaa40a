"""The API docs (Swagger UI at ``/docs``) served with no network.

FastAPI's own docs pages load their scripts from a CDN, so they are blank offline
and tell a third party about every visit. The files come instead from the
``fastapi-offline`` package, which ships Swagger UI as package data; they are
served under ``/docs-assets``. ReDoc is left out: its page fetches its logo from
its vendor's CDN whatever the options.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install_docs"]

ASSETS = "/docs-assets"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to an app built with ``docs_url=None``."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url="/static/icon.svg",
            # no badge fetched from the online validator
            swagger_ui_parameters={"validatorUrl": None, "deepLinking": True},
        )
