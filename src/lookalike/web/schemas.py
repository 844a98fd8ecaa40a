"""What the JSON API answers, as pydantic models: the OpenAPI document is built from
them, and FastAPI checks every success body against them on the way out.

Errors have one body on every route, ``{"error": {"message", "field", "type"}}``,
documented with the statuses each route really answers. FastAPI's own 422
``HTTPValidationError`` is taken out of the document: request validation errors are
answered 400 with the error body (see ``errors.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from lookalike.web.media import THUMB_SIZES

__all__ = [
    "ErrorBody",
    "Health",
    "ImageView",
    "SearchResults",
    "SizingView",
    "ThumbSize",
    "error_responses",
    "install_openapi",
]


class ThumbSize(enum.IntEnum):
    """Thumbnail sizes: 256 px for the grid, 1024 px for a preview."""

    grid = THUMB_SIZES[0]
    preview = THUMB_SIZES[1]


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong and what to do next.")
    field: str | None = Field(description="The parameter or form field at fault, if any.")
    type: str = Field(description="The error class, e.g. QueryError, NotFoundError.")


class ErrorBody(BaseModel):
    """Every error of the API, whatever its status."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    collection: str
    documents: int = Field(ge=0)


class SizingView(BaseModel):
    """The sizing report: what the collection holds and what more would cost."""

    backend: str
    collection: str
    model_id: str | None
    documents: int = Field(ge=0)
    dimensions: int = Field(ge=0)
    image_bytes: int = Field(ge=0)
    index_bytes: int = Field(ge=0)
    bytes_per_document: float | None
    bytes_per_dimension: float | None
    projection_basis: str
    projections: dict[str, int] = Field(description="Projected index bytes by document count.")
    details: dict[str, Any]


class ImageUrls(BaseModel):
    thumbnail: str
    preview: str
    image: str
    similar: str
    page: str
    view: str


class ThumbBox(BaseModel):
    width: int
    height: int


class ImageView(BaseModel):
    """One indexed image; search results add its ``score``."""

    model_config = ConfigDict(extra="forbid")

    id: str
    score: float | None = Field(
        default=None, description="Cosine similarity, -1 to 1 (search results only)."
    )
    name: str
    path: str
    folder: str
    relpath: str | None
    format: str
    width: int
    height: int
    size: int | None = Field(description="File size in bytes.")
    modified: str | None = Field(description="The file's mtime, ISO 8601 in UTC.")
    metadata: dict[str, Any]
    thumbnail: ThumbBox = Field(description="The 256 px thumbnail's pixel size.")
    browser_displayable: bool
    urls: ImageUrls
    region: list[float] | None = Field(
        default=None,
        description="Region search: the box (x0, y0, x1, y1, fractions of the image) of the "
        "tile that matched, when a tile beat the whole image.",
    )
    region_outline: dict[str, float] | None = Field(
        default=None, description="That box in percent of the square thumbnail (x, y, w, h)."
    )


class QueryView(BaseModel):
    """The query as understood; which fields appear depends on ``type``."""

    type: Literal["text", "image", "similar"]
    q: str | None = None
    id: str | None = None
    filename: str | None = None
    bytes: int | None = None
    box: list[float] | None = Field(default=None, description="similar: the part searched.")
    filters: dict[str, Any]


class ComposedQueryView(BaseModel):
    """A composed query (``POST /search``) as understood: its parts, plain or weighted."""

    type: Literal["composed"]
    texts: list[Any] = Field(default_factory=list)
    ids: list[Any] = Field(default_factory=list)
    negative_texts: list[Any] = Field(default_factory=list)
    negative_ids: list[Any] = Field(default_factory=list)
    negative_weight: float | None = None
    image: dict[str, Any] | None = Field(None, description="The uploaded image, if any.")
    filters: dict[str, Any]


class SearchResults(BaseModel):
    collection: str
    query: QueryView | ComposedQueryView = Field(discriminator="type")
    k: int
    offset: int
    min_score: float | None
    count: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")
    took_ms: float
    results: list[ImageView]


_WHEN = {
    400: "A bad, unknown or missing parameter, or a malformed upload.",
    401: "The server has an API token and the request did not send it (or sent another).",
    404: "No indexed image with this id (or no such route).",
    410: "The file is gone, or is no longer what was indexed; run `lookalike index` again.",
    413: "The image is over the upload size cap or the pixel budget.",
    415: "The upload is not an image in a supported format.",
    422: "The image is empty, truncated or cannot be decoded.",
    503: "The model or the store is unavailable.",
}
#: statuses every route may answer
_ALWAYS = (400, 401, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: the error body under each status it can answer."""
    return {
        status: {"model": ErrorBody, "description": _WHEN[status]}
        for status in sorted({*_ALWAYS, *statuses})
    }


def binary_response(media_types: Iterable[str], description: str) -> dict[int | str, Any]:
    """A 200 with raw bytes in one of ``media_types``, and the 304 of a current ETag."""
    schema = {"type": "string", "format": "binary"}
    return {
        200: {"description": description, "content": {m: {"schema": schema} for m in media_types}},
        304: {"description": "Not Modified: the client's copy (If-None-Match) is current."},
    }


def install_openapi(app: FastAPI) -> None:
    """Build the OpenAPI document without FastAPI's 422 ``HTTPValidationError``, which this
    API never answers (request validation errors are 400 with the error body)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        for path in spec.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                fallback = responses.get("422", {}).get("content", {}).get("application/json", {})
                if "HTTPValidationError" in str(fallback.get("schema", {})):
                    del responses["422"]
        components = spec.setdefault("components", {})
        schemas = components.get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        # The token is optional (only servers started with one ask for it): Swagger UI
        # gets an "Authorize" button, and a request without it is valid too.
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's LOOKALIKE_API_TOKEN, when it has one.",
            }
        }
        spec["security"] = [{}, {"bearer": []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
