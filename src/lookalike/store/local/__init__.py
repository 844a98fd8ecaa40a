"""The embedded store: SQLite (WAL) is the truth; the vector index is derived from it.

Modules: ``store`` (LocalStore, the Store contract), ``db`` (connections,
migrations), ``rows`` (records to and from rows, filters as SQL), ``knn``
(search: filters in SQLite first, exact or approximate by selectivity) and
``source`` (the rows the derived index reads).
"""

from __future__ import annotations

from lookalike.store.local.db import DB_FILENAME
from lookalike.store.local.store import THUMBS_DIR, LocalStore

__all__ = ["DB_FILENAME", "THUMBS_DIR", "LocalStore"]
