"""One place that turns errors into HTTP responses.

``LookalikeError.status`` decides the status code. JSON routes (``/api/...``,
``/partials/...``) get ``{"error": {"message", "field", "type"}}``; pages get the
same message rendered as an HTML error state. FastAPI's validation errors and
Starlette's routing errors (404, 405) are reshaped to the same body. Anything
else is a bug: it is logged and answered with a 500 that reveals no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.errors import LookalikeError, NotFoundError

__all__ = ["FileGoneError", "error_body", "install_error_handlers", "wants_json"]

log = logging.getLogger("lookalike.web")

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


class FileGoneError(NotFoundError):
    """An indexed file that was deleted, moved or edited since it was indexed."""

    status = 410


def wants_json(request: Request) -> bool:
    """JSON for the API and the page's fetch() fragments; HTML for pages people open."""
    path = request.url.path
    return path.startswith(("/api/", "/partials/", "/static/")) or path in ("/api", "/openapi.json")


def error_body(message: str, *, field: str | None, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "field": field, "type": type_}}


def _respond(
    request: Request, status: int, message: str, field: str | None, type_: str
) -> Response:
    headers = {"Cache-Control": "no-store"}
    if wants_json(request):
        return JSONResponse(error_body(message, field=field, type_=type_), status, headers=headers)
    # Imported here: pages import this module too.
    from lookalike.web.pages import render_error

    return render_error(request, status, message, field, headers=headers)


def _validation_field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header", "cookie")]
    return parts[0] if parts else None


def install_error_handlers(app: FastAPI) -> None:
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
