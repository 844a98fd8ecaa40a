"""Vector stores: the Store contract, the embedded default and the Elasticsearch backend.

``open_store(settings)`` is the one way in: the embedded ``LocalStore`` for
``store = "local"``, otherwise Elasticsearch (imported only then, so the
``elasticsearch`` package stays optional). Only writers that mean to make a
collection (``index``, a copy's destination) pass ``create=True``; everything else
gets CollectionNotFound listing the collections there are, so a typo never
creates an empty collection.
"""

from __future__ import annotations

from lookalike.config import Settings
from lookalike.errors import CollectionNotFound, ConfigError
from lookalike.store.base import DamagedDocument, Store, StoreCheck
from lookalike.store.local import DB_FILENAME, LocalStore
from lookalike.store.local.store import remove_collection_folder
from lookalike.store.local.writer_lock import writer_lock
from lookalike.store.vectorindex import IndexParams, IndexStatus

__all__ = [
    "DamagedDocument",
    "IndexParams",
    "IndexStatus",
    "LocalStore",
    "Store",
    "StoreCheck",
    "drop_collection",
    "list_collections",
    "open_store",
]


def open_store(settings: Settings, *, create: bool = False) -> Store:
    """The store of ``settings.collection`` on the configured backend; CollectionNotFound
    when it does not exist, unless ``create``."""
    if settings.is_local_store:
        if not create and not (settings.collection_dir / DB_FILENAME).exists():
            raise _not_found(settings)
        return LocalStore(
            settings.collection_dir,
            settings.collection,
            create=create,
            vector_precision=settings.vector_precision,
        )
    from lookalike.store.elastic.store import ElasticStore

    store: Store = ElasticStore.from_settings(settings)
    if not create and store.model is None:  # no index on the cluster yet
        store.close()
        raise _not_found(settings)
    return store


def _names_or_none(settings: Settings) -> list[str] | None:
    try:
        return list_collections(settings)
    except ConfigError:
        return None


def _not_found(settings: Settings, names: list[str] | None = None) -> CollectionNotFound:
    if names is None:
        names = _names_or_none(settings) or []
    listed = ", ".join(names) if names else "none yet"
    return CollectionNotFound(
        f"no collection named {settings.collection} (collections: {listed}); check the name, "
        "or create it with `lookalike index FOLDER -c NAME`",
        field="collection",
    )


def drop_collection(settings: Settings) -> None:
    """Delete a collection. A local one is removed under its writer lock without opening its
    database, so a damaged or empty ``store.db`` can be dropped too."""
    if settings.is_local_store:
        folder = settings.collection_dir
        if not (folder / DB_FILENAME).exists():
            raise _not_found(settings)
        with writer_lock(folder, settings.collection, what="drop"):
            remove_collection_folder(folder)
        return
    open_store(settings).drop()


def list_collections(settings: Settings) -> list[str]:
    """Names of the collections on the configured backend, sorted."""
    if settings.is_local_store:
        base = settings.home / "collections"
        try:
            entries = sorted(base.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(
                f"cannot list collections in {base} ({exc.strerror or exc}); check LOOKALIKE_HOME",
                field="home",
            ) from exc
        return [p.name for p in entries if (p / DB_FILENAME).is_file()]
    from lookalike.store.elastic.store import ElasticStore

    return sorted(ElasticStore.list_collections(settings))
