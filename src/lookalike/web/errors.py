"""One place that turns errors into HTTP responses.

``LookalikeError.status`` decides the status code. JSON routes (``/api/...``,
``/partials/...``) get ``{"error": {"message", "field", "type"}}``; pages get the
same message rendered as an HTML error state. FastAPI's validation errors and
Starlette's routing errors (404, 405) are reshaped to the same body. Anything
else is a bug: it is logged and answered with a 500 that reveals no internals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.errors import LookalikeError

__all__ = ["PageRenderer", "error_body", "install_error_handlers", "wants_json"]

log = logging.getLogger("lookalike.web")

#: renders a page's error state: (request, status, message, field, headers=...) -> Response
PageRenderer = Callable[..., Response]

_HTTP_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


def wants_json(request: Request) -> bool:
    """JSON for the API and the page's fetch() fragments; HTML for pages people open."""
    path = request.url.path
    return path.startswith(("/api/", "/partials/", "/static/", "/docs-assets/")) or path in (
        "/api",
        "/openapi.json",
    )


def error_body(message: str, *, field: str | None, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "field": field, "type": type_}}


def install_error_handlers(app: FastAPI, render_page: PageRenderer) -> None:
    """Answer every error of ``app`` in one shape: JSON for the API, ``render_page`` for pages."""

    def respond(
        request: Request, status: int, message: str, field: str | None, type_: str
    ) -> Response:
        headers: Mapping[str, str] = {"Cache-Control": "no-store"}
        if wants_json(request):
            body = error_body(message, field=field, type_=type_)
            return JSONResponse(body, status, headers=dict(headers))
        return render_page(request, status, message, field, headers=headers)

    _install(app, respond)


def _validation_field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header", "cookie")]
    return parts[0] if parts else None


def _install(app: FastAPI, _respond: Callable[..., Response]) -> None:
    async def on_lookalike_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LookalikeError)
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return _respond(request, exc.status, exc.message, exc.field, type(exc).__name__)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = _validation_field(first.get("loc", ()))
        detail = str(first.get("msg", "invalid value"))
        if first.get("type") == "missing" and field:
            message = f"the parameter {field!r} is required; see /docs for this route's parameters"
        else:
            message = f"{field}: {detail}" if field else detail
        return _respond(request, 400, message, field, "QueryError")

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"nothing here: {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        response = _respond(
            request, exc.status_code, message, None, _HTTP_TYPES.get(exc.status_code, "HTTPError")
        )
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        message = "internal error: this is a bug in lookalike; the server log has the details"
        return _respond(request, 500, message, None, "InternalError")

    app.add_exception_handler(LookalikeError, on_lookalike_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
