"""The error tree of lookalike.

The library raises only these; it never prints or exits. The CLI turns them
into one-line messages and exit codes, the web app into HTTP status codes
(``status``) with a JSON body that names the offending ``field``.

::

    LookalikeError                      (500, but see the subclasses)
    ├── ConfigError                     invalid setting or flag          400
    ├── QueryError                      bad query / parameter            400
    ├── NotFoundError                   unknown id, collection, file     404
    │   ├── CollectionNotFound
    │   └── FileGoneError               indexed file moved or edited     410
    ├── ImageError                      an image that cannot be used     422
    │   ├── UnsupportedImageError       not an image / unknown format    415
    │   ├── CorruptImageError           truncated, empty, undecodable    422
    │   └── ImageTooLargeError          over the pixel or byte budget    413
    ├── ModelError                      a model cannot be used           503
    │   └── ModelNotAvailableError      weights missing, cannot fetch
    └── StoreError                      the vector store failed          503
        ├── ModelMismatchError          vectors from another model       409
        ├── StoreDamagedError           stored data fails its checks     503
        └── StoreUnavailableError       cannot reach / open the store    503
            └── StoreBusyError          another writer holds the lock    409

Every message says what went wrong and what to do next. An error that a server
answered (Elasticsearch) also carries that server's own error type and HTTP
status (``server_type``, ``server_status``), so callers branch on them without
parsing messages.
"""

from __future__ import annotations

__all__ = [
    "CollectionNotFound",
    "ConfigError",
    "CorruptImageError",
    "FileGoneError",
    "ImageError",
    "ImageTooLargeError",
    "LookalikeError",
    "ModelError",
    "ModelMismatchError",
    "ModelNotAvailableError",
    "NotFoundError",
    "QueryError",
    "StoreBusyError",
    "StoreDamagedError",
    "StoreError",
    "StoreUnavailableError",
    "UnsupportedImageError",
]


class LookalikeError(Exception):
    """Base of every error lookalike raises on purpose."""

    status: int = 500
    #: the request field, option or setting the error is about, if any
    field: str | None = None
    #: a server's own error type (e.g. Elasticsearch's "resource_already_exists_exception")
    server_type: str = ""
    #: the HTTP status a server answered with; 0 when no server answered
    server_status: int = 0

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field

    def __str__(self) -> str:
        return self.message


class ConfigError(LookalikeError):
    status = 400


class QueryError(LookalikeError):
    status = 400


class NotFoundError(LookalikeError):
    status = 404


class CollectionNotFound(NotFoundError):
    pass


class FileGoneError(NotFoundError):
    """An indexed file that was deleted, moved or edited since it was indexed."""

    status = 410


class ImageError(LookalikeError):
    """An image that cannot be used; ``path`` names the file when there is one."""

    status = 422

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None) -> None:
        self.path = path
        self.reason = message
        full = f"{path}: {message}" if path else message
        super().__init__(full, field=field)


class UnsupportedImageError(ImageError):
    status = 415


class CorruptImageError(ImageError):
    status = 422


class ImageTooLargeError(ImageError):
    status = 413


class ModelError(LookalikeError):
    status = 503


class ModelNotAvailableError(ModelError):
    pass


class StoreError(LookalikeError):
    status = 503


class ModelMismatchError(StoreError):
    status = 409


class StoreUnavailableError(StoreError):
    status = 503


class StoreDamagedError(StoreError):
    """Stored data failed a check (a vector checksum, a missing row, a damaged page);
    ``lookalike check --repair`` is the next step."""


class StoreBusyError(StoreUnavailableError):
    """Another process holds the collection's writer lock (an index run, a drop...)."""

    status = 409
