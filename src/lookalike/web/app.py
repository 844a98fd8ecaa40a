"""The app factory: ``create_app(settings)`` builds the app serving the page and the API.

The collection is opened once when the app starts (its lifespan) and closed when
it stops. ``preload=True`` loads the models at start-up too, so missing weights
stop the server with a clear message instead of failing the first search. A
caller that already holds a ``Collection`` (tests, benchmarks) may pass it in;
the app then leaves closing it to that caller.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from lookalike.collection import Collection, open_collection
from lookalike.config import Settings
from lookalike.watch import PassReport, Watcher, watch_collection
from lookalike.web.api import package_version, router as api_router
from lookalike.web.auth import TokenAuth
from lookalike.web.composed import router as composed_router
from lookalike.web.docs import install_docs
from lookalike.web.duplicates import (
    api_router as duplicates_api_router,
    page_router as duplicates_page_router,
)
from lookalike.web.errors import install_error_handlers
from lookalike.web.headers import NoSniff
from lookalike.web.media import Media
from lookalike.web.pages import STATIC_DIR, render_error, router as pages_router
from lookalike.web.schemas import install_openapi
from lookalike.web.search_api import router as search_api_router

__all__ = ["create_app"]

log = logging.getLogger("lookalike.web")

DESCRIPTION = """Search an image collection by text (50+ languages), by an uploaded image, or by
an indexed image's id. Errors are `{"error": {"message", "field", "type"}}` with a 4xx status
for mistakes in the request. When the server has an API token, send
`Authorization: Bearer <token>` (browsers: the sign-in cookie; `?token=` only as a last
resort)."""


def create_app(
    settings: Settings,
    *,
    collection: Collection | None = None,
    preload: bool = True,
    watch: Sequence[str] = (),
) -> FastAPI:
    """The ASGI app for ``settings``; run it with uvicorn (``lookalike.web.serve`` does).
    With ``watch``, those folders are kept indexed while the app runs (``lookalike.watch``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = collection is None
        opened = await run_in_threadpool(open_collection, settings) if owned else collection
        assert opened is not None
        try:
            if preload:
                await run_in_threadpool(lambda: opened.embedder.load())
            media = Media(
                opened.store,
                settings.collection_dir / "thumbs",
                max_pixels=settings.max_pixels,
                work_slots=min(4, os.cpu_count() or 2),
            )
            await run_in_threadpool(media.remove_stale_temp_files)
            app.state.collection = opened
            app.state.media = media
            app.state.watcher = _start_watcher(opened, watch) if watch else None
            log.info("serving collection %s", opened.name)
            yield
        finally:
            if getattr(app.state, "watcher", None) is not None:
                await run_in_threadpool(app.state.watcher.stop)
            if owned:
                await run_in_threadpool(opened.close)

    app = FastAPI(
        title="lookalike",
        summary="Image similarity search over your own collections.",
        description=DESCRIPTION,
        version=package_version(),
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_openapi(app)
    install_error_handlers(app, render_error)
    app.include_router(api_router)
    app.include_router(search_api_router)
    app.include_router(duplicates_api_router)
    app.include_router(duplicates_page_router)
    app.include_router(pages_router)
    app.include_router(composed_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_docs(app)
    if settings.api_token:
        app.add_middleware(TokenAuth, token=settings.api_token)
    app.add_middleware(NoSniff)  # added last: the outermost, so every response has it
    return app


def _start_watcher(collection: Collection, paths: Sequence[str]) -> Watcher:
    def on_pass(result: PassReport) -> None:
        log.info("watch pass: %s", result.to_dict())

    watcher = watch_collection(collection, paths, on_pass=on_pass)
    watcher.start()
    return watcher
