"""lookalike: search your own image collections by text or by image.

>>> from lookalike import open_collection
>>> with open_collection(collection="photos", create=True) as col:
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
            "StoreBusyError",
            "StoreDamagedError",
            "StoreError",
            "StoreUnavailableError",
            "UnsupportedImageError",
        )
    },
}

__all__ = sorted(_EXPORTS)  # one list: the lazy export table (typed re-exports below)


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
    from lookalike.collection import (
        Collection as Collection,
        open_collection as open_collection,
    )
    from lookalike.composing import (
        Weighted as Weighted,
    )
    from lookalike.config import (
        Settings as Settings,
    )
    from lookalike.errors import (
        CollectionNotFound as CollectionNotFound,
        ConfigError as ConfigError,
        CorruptImageError as CorruptImageError,
        FileGoneError as FileGoneError,
        ImageError as ImageError,
        ImageTooLargeError as ImageTooLargeError,
        LookalikeError as LookalikeError,
        ModelError as ModelError,
        ModelMismatchError as ModelMismatchError,
        ModelNotAvailableError as ModelNotAvailableError,
        NotFoundError as NotFoundError,
        QueryError as QueryError,
        StoreBusyError as StoreBusyError,
        StoreDamagedError as StoreDamagedError,
        StoreError as StoreError,
        StoreUnavailableError as StoreUnavailableError,
        UnsupportedImageError as UnsupportedImageError,
    )
    from lookalike.indexer import (
        Indexer as Indexer,
        IndexReport as IndexReport,
    )
    from lookalike.records import (
        Filters as Filters,
        Hit as Hit,
        ModelInfo as ModelInfo,
        Record as Record,
    )
    from lookalike.search import (
        Query as Query,
        Searcher as Searcher,
    )
    from lookalike.sizing import (
        SizingReport as SizingReport,
        sizing_report as sizing_report,
    )
