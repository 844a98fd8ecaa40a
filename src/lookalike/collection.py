"""A collection: one store plus the models that fill and query it.

``open_collection`` is the library's front door; the CLI and the web app use it
too, so every interface goes through the same Searcher and Indexer.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings
from lookalike.models import create_embedder
from lookalike.models.base import Embedder
from lookalike.search import Searcher
from lookalike.store import open_store
from lookalike.store.base import Store

if TYPE_CHECKING:  # the indexer (decode workers, scanning) loads only for indexing
    from lookalike.indexer import Indexer

__all__ = ["Collection", "open_collection"]


class Collection:
    """Store, embedder, searcher and indexer of one named collection.

    The embedder is created on first use, so opening a collection for ``stats``
    never loads a model. Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        create: bool = True,
    ) -> None:
        self.settings = settings
        self.store: Store = store if store is not None else open_store(settings, create=create)
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.settings.collection

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = create_embedder(self.settings)
            return self._embedder

    @property
    def searcher(self) -> Searcher:
        return Searcher(
            self.store,
            self.embedder,
            max_pixels=self.settings.max_pixels,
            server_side_text=bool(self.settings.es_text_model),
        )

    @property
    def indexer(self) -> Indexer:
        from lookalike.indexer import Indexer

        return Indexer(self.store, self.embedder, self.settings)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_collection(
    settings: Settings | None = None, *, create: bool = False, **overrides: Any
) -> Collection:
    """Open a collection: ``open_collection(collection="photos")``.

    A collection that does not exist raises CollectionNotFound (naming those that do)
    unless ``create=True``, which only code that is about to fill it should pass.
    Settings come from the usual sources (config file, ``LOOKALIKE_*``, ``.env``)
    unless a ``Settings`` object is given; keyword overrides win over both.
    """
    base = settings if settings is not None else Settings.load()
    return Collection(base.with_overrides(**overrides) if overrides else base, create=create)
