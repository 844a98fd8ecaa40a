"""The Elasticsearch backend (8.14+ / 9.x), imported only when a collection lives there.

Modules: ``store`` (ElasticStore, the Store contract), ``client`` (the official
client, bulk with retries, typed errors), ``connect`` (settings to a connection),
``index`` (create, check and size the index), ``mapping`` (names, index options,
the mapping), ``documents`` (ids, vectors, records to and from ``_source``),
``filters`` (filters as a ``bool`` query), ``search`` (the kNN request plan) and
``stats``.
"""

from __future__ import annotations

from lookalike.store.elastic.store import ElasticStore

__all__ = ["ElasticStore"]
