"""Vector stores: the Store contract, the embedded default and the Elasticsearch backend.

``open_store(settings)`` is the one way in: the embedded ``LocalStore`` for
``store = "local"``, otherwise Elasticsearch (imported only then, so the
``elasticsearch`` package stays optional).
"""

from __future__ import annotations

from lookalike.config import Settings
from lookalike.errors import ConfigError
from lookalike.store.base import Store
from lookalike.store.local import DB_FILENAME, LocalStore
from lookalike.store.vectorindex import IndexParams, IndexStatus

__all__ = ["IndexParams", "IndexStatus", "LocalStore", "Store", "list_collections", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store of ``settings.collection`` on the configured backend (created if missing)."""
    if settings.is_local_store:
        return LocalStore(settings.collection_dir, settings.collection)
    from lookalike.store.elastic.store import ElasticStore

    store: Store = ElasticStore.from_settings(settings)
    return store


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
