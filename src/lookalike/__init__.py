"""lookalike: search your own image collections by text or by image.

>>> from lookalike import open_collection
>>> with open_collection(collection="photos") as col:
...     report = col.indexer.index(["~/Pictures"])
...     hits = col.searcher.text("green recycle symbol", k=10)

Names are imported lazily, so ``import lookalike`` (and ``lookalike --help``)
does not load torch; the first use of a model-backed name does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Collection": "lookalike.collection",
    "open_collection": "lookalike.collection",
    "Settings": "lookalike.config",
    "Indexer": "lookalike.indexer",
    "IndexReport": "lookalike.indexer",
    "Filters": "lookalike.records",
    "Hit": "lookalike.records",
    "ModelInfo": "lookalike.records",
    "Record": "lookalike.records",
    "Query": "lookalike.search",
    "Searcher": "lookalike.search",
    "Weighted": "lookalike.composing",
    "SizingReport": "lookalike.sizing",
    "sizing_report": "lookalike.sizing",
    **{
        name: "lookalike.errors"
        for name in (
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
            "StoreError",
            "StoreUnavailableError",
            "UnsupportedImageError",
        )
    },
}

__all__ = [
    "Collection",
    "CollectionNotFound",
    "ConfigError",
    "CorruptImageError",
    "FileGoneError",
    "Filters",
    "Hit",
    "ImageError",
    "ImageTooLargeError",
    "IndexReport",
    "Indexer",
    "LookalikeError",
    "ModelError",
    "ModelInfo",
    "ModelMismatchError",
    "ModelNotAvailableError",
    "NotFoundError",
    "Query",
    "QueryError",
    "Record",
    "Searcher",
    "Settings",
    "SizingReport",
    "StoreError",
    "StoreUnavailableError",
    "UnsupportedImageError",
    "Weighted",
    "open_collection",
    "sizing_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from lookalike.collection import Collection, open_collection
    from lookalike.composing import Weighted
    from lookalike.config import Settings
    from lookalike.errors import (
        CollectionNotFound,
        ConfigError,
        CorruptImageError,
        FileGoneError,
        ImageError,
        ImageTooLargeError,
        LookalikeError,
        ModelError,
        ModelMismatchError,
        ModelNotAvailableError,
        NotFoundError,
        QueryError,
        StoreError,
        StoreUnavailableError,
        UnsupportedImageError,
    )
    from lookalike.indexer import Indexer, IndexReport
    from lookalike.records import Filters, Hit, ModelInfo, Record
    from lookalike.search import Query, Searcher
    from lookalike.sizing import SizingReport, sizing_report
