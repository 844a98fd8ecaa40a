"""Reading an uploaded query image without ever keeping it or buffering an unbounded body.

The body is parsed as it streams in and counted on the way: a declared
``Content-Length`` over the cap is refused before reading anything, and a body
that grows past it is refused as soon as it does. The image bytes go to a
``SpooledTemporaryFile``: memory up to 1 MiB, then an anonymous temporary file
that the OS deletes when it is closed or when the process dies (even by kill -9),
so no upload is ever left on disk.

Accepted forms: ``multipart/form-data`` with the image in the field ``image``,
or the raw image as the body (``Content-Type: image/*`` or
``application/octet-stream``).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from lookalike.collection import Collection
from lookalike.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    QueryError,
    UnsupportedImageError,
)
from lookalike.records import Hit
from lookalike.search import Query
from lookalike.web.media import Media
from lookalike.web.params import SearchParams

__all__ = ["UPLOAD_FIELD", "Upload", "read_upload", "receive_upload", "search_upload"]

UPLOAD_FIELD = "image"
#: room for multipart boundaries, part headers and a few small text fields
MULTIPART_OVERHEAD = 64 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024
_MAX_TEXT_FIELD = 1024
_MAX_PARTS = 16


@dataclass
class Upload:
    """An uploaded image held in memory or an anonymous temporary file; ``close()`` frees it."""

    file: IO[bytes]
    size: int
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _too_large(limit: int) -> ImageTooLargeError:
    mib = limit / (1024 * 1024)
    return ImageTooLargeError(
        f"the upload is larger than the {mib:,.1f} MiB limit; send a smaller image "
        "(or raise max_upload_bytes / LOOKALIKE_MAX_UPLOAD_BYTES on the server)",
        field=UPLOAD_FIELD,
    )


def _not_an_upload() -> UnsupportedImageError:
    return UnsupportedImageError(
        f"send the image as multipart/form-data in the field {UPLOAD_FIELD!r}, "
        "or as the raw request body with Content-Type image/*",
        field=UPLOAD_FIELD,
    )


async def read_upload(
    content_type: str | None,
    content_length: str | None,
    stream: AsyncIterator[bytes],
    *,
    max_bytes: int,
    text_fields: frozenset[str] = frozenset(),
) -> Upload:
    """Read one uploaded image from a request body; raise a typed error naming ``image``.

    ``text_fields`` are the small form fields the caller accepts beside the image.
    The caller must ``close()`` the result (it is a context manager).
    """
    kind, options = parse_options_header(content_type or "")
    kind_text = kind.decode("latin-1").lower()
    if kind_text == "multipart/form-data":
        body_limit = max_bytes + MULTIPART_OVERHEAD
    elif kind_text.startswith("image/") or kind_text == "application/octet-stream":
        body_limit = max_bytes
    else:
        raise _not_an_upload()
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise QueryError(
                "the Content-Length header is not a number", field=UPLOAD_FIELD
            ) from None
        if declared > body_limit:
            raise _too_large(max_bytes)

    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        if kind_text == "multipart/form-data":
            upload = await _read_multipart(
                stream, options.get(b"boundary"), spool, max_bytes, body_limit, text_fields
            )
        else:
            upload = await _read_raw(stream, spool, max_bytes)
    except BaseException:
        spool.close()
        raise
    if upload.size == 0:
        upload.close()
        raise CorruptImageError(
            "the uploaded file is empty; choose an image file", field=UPLOAD_FIELD
        )
    upload.file.seek(0)
    return upload


async def _read_raw(stream: AsyncIterator[bytes], spool: IO[bytes], max_bytes: int) -> Upload:
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            spool.write(chunk)
    except ClientDisconnect:
        raise QueryError("the upload was interrupted", field=UPLOAD_FIELD) from None
    return Upload(file=spool, size=size)


class _Parts:
    """State of the multipart callbacks: which part we are in and where its bytes go."""

    def __init__(self, spool: IO[bytes], max_bytes: int, text_fields: frozenset[str]) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self.text_fields = text_fields
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.disposition: bytes = b""
        self.current: str | None = None  # "file", a text field's name, or None
        self.text = bytearray()
        self.parts = 0
        self.files = 0
        self.size = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.ended = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise QueryError("too many parts in the upload", field=UPLOAD_FIELD)
        self.disposition = b""
        self.current = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.header_field).lower() == b"content-disposition":
            self.disposition = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, opts = parse_options_header(self.disposition)
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        if name == UPLOAD_FIELD:
            self.files += 1
            if self.files > 1:
                raise QueryError(
                    f"send one image in {UPLOAD_FIELD!r}, not several", field=UPLOAD_FIELD
                )
            raw_name = opts.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name else None
            self.current = "file"
        elif name in self.text_fields:
            self.current = name
            self.text.clear()
        else:
            allowed = ", ".join(sorted({UPLOAD_FIELD, *self.text_fields}))
            raise QueryError(
                f"unknown form field {name[:40]!r}; send: {allowed}", field=name[:40] or None
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current == "file":
            self.size += end - start
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.spool.write(data[start:end])
        elif self.current is not None:
            self.text += data[start:end]
            if len(self.text) > _MAX_TEXT_FIELD:
                raise QueryError(f"the form field {self.current!r} is too long", field=self.current)

    def on_part_end(self) -> None:
        if self.current is not None and self.current != "file":
            self.fields[self.current] = self.text.decode("utf-8", "replace")
        self.current = None

    def on_end(self) -> None:
        self.ended = True


async def _read_multipart(
    stream: AsyncIterator[bytes],
    boundary: bytes | None,
    spool: IO[bytes],
    max_bytes: int,
    body_limit: int,
    text_fields: frozenset[str],
) -> Upload:
    if not boundary:
        raise QueryError("the multipart upload has no boundary", field=UPLOAD_FIELD)
    state = _Parts(spool, max_bytes, text_fields)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": state.on_part_begin,
                "on_header_field": state.on_header_field,
                "on_header_value": state.on_header_value,
                "on_header_end": state.on_header_end,
                "on_headers_finished": state.on_headers_finished,
                "on_part_data": state.on_part_data,
                "on_part_end": state.on_part_end,
                "on_end": state.on_end,
            },
        )
        received = 0
        async for chunk in stream:
            received += len(chunk)
            if received > body_limit:
                raise _too_large(max_bytes)
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except ClientDisconnect:
        raise QueryError("the upload was interrupted", field=UPLOAD_FIELD) from None
    except FormParserError as exc:
        raise QueryError(
            f"the upload is not valid multipart/form-data ({exc})", field=UPLOAD_FIELD
        ) from None
    if not state.ended:
        raise QueryError(
            "the multipart upload ended before its closing boundary", field=UPLOAD_FIELD
        )
    if state.files == 0:
        raise QueryError(
            f"no image in the upload: send the file in the form field {UPLOAD_FIELD!r}",
            field=UPLOAD_FIELD,
        )
    return Upload(file=spool, size=state.size, filename=state.filename, fields=state.fields)


def search_upload(
    collection: Collection, media: Media, upload: Upload, params: SearchParams
) -> list[Hit]:
    """Embed the uploaded image and search with it (runs in a worker thread)."""
    try:
        with media.work_slot():
            return collection.searcher.search(
                Query(
                    images=[upload.file],
                    k=params.k,
                    offset=params.offset,
                    min_score=params.min_score,
                    filters=params.filters,
                    regions=params.regions,
                )
            )
    except ImageError as exc:
        if exc.field is None:
            exc.field = UPLOAD_FIELD
        raise


async def receive_upload(request: Request) -> Upload:
    settings = request.app.state.settings
    return await read_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        max_bytes=settings.max_upload_bytes,
    )
