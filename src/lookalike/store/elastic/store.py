"""ElasticStore: the Store contract on an Elasticsearch 8.14+ / 9.x cluster.

One collection is one index, ``lookalike-<collection>.v1``, reached through the
alias ``lookalike-<collection>`` (the name to use in Kibana). Writes go through
the alias with ``require_alias``, so a write after someone deleted the index
fails instead of auto-creating an index with the wrong mapping. The mapping
(``mapping``) keeps the vector out of ``_source``; ``get`` and ``copy``
read a compact float32 copy instead.

Writes become visible to searches at ``flush()`` (a refresh) or after the
cluster's refresh interval; a store that wrote refreshes before its own next
search, so it reads its own writes, as the embedded store does. ``upsert`` is
idempotent per document but not atomic per call: a failed call may have written
some documents, which a re-run overwrites (ids are stable).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import ConfigError, ModelError, ModelMismatchError, QueryError, StoreError
from lookalike.records import FileState, Filters, Hit, ModelInfo, Record, StoreStats
from lookalike.store.base import Store
from lookalike.store.checks import MAX_WINDOW, check_window, unit_query_vector
from lookalike.store.elastic.client import BulkOp, BulkStoreError, as_dict
from lookalike.store.elastic.connect import connect
from lookalike.store.elastic.documents import (
    decode_record,
    decode_state,
    encode_document,
    is_storable_id,
    listed_ids,
    safe_text,
    unit_vector,
)
from lookalike.store.elastic.filters import filters_query
from lookalike.store.elastic.index import IndexHandle, collection_names
from lookalike.store.elastic.mapping import FIELDS_META, FIELDS_STATE, IndexOptions
from lookalike.store.elastic.search import (
    KnnPlan,
    plan_knn,
    read_hits,
    rescore_mode,
    rescoring,
)
from lookalike.store.elastic.stats import build_stats, describe, project_ram, sizing_details

__all__ = ["ElasticStore", "project_ram"]

_PAGE = 5000  # documents per page when walking the index (manifest)
_MGET_CHUNK = 1000
_HASH_CHUNK = 500


class ElasticStore(Store):
    """A collection kept in Elasticsearch. Build it with ``ElasticStore.from_settings``."""

    backend = "elasticsearch"

    def __init__(
        self,
        index: IndexHandle,
        *,
        server_version: tuple[int, int, int],
        options: IndexOptions | None = None,
        num_candidates: int = 100,
        text_model: str = "",
        rescore: str = "auto",
    ) -> None:
        self.collection = index.collection
        self.alias = index.alias
        self.index_name = index.index_name
        self.server_version = server_version
        self.options = options or IndexOptions()
        self.num_candidates = num_candidates
        self.text_model = text_model
        self.rescore = rescore
        self._index = index
        self._lock = threading.Lock()
        self._model: ModelInfo | None = None
        self._mapping: dict[str, Any] = {}
        self._dirty = False
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client_options: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ElasticStore:
        """Connect to the cluster named by ``settings.store`` (URL) or ``settings.es_cloud_id``;
        the index is ``lookalike-<settings.collection>``. ``client_options`` go to
        ``elasticsearch.Elasticsearch`` (the unit tests pass a ``node_class``)."""
        options = IndexOptions(
            settings.es_index_options, settings.es_m, settings.es_ef_construction
        )
        if settings.es_num_candidates > MAX_WINDOW:
            raise ConfigError(
                f"es_num_candidates can be at most {MAX_WINDOW}", field="es_num_candidates"
            )
        rescore = rescore_mode(settings.es_rescore)
        conn, version = connect(settings, client_options=client_options, sleep=sleep)
        return cls(
            IndexHandle(conn, settings.collection),
            server_version=version,
            options=options,
            num_candidates=settings.es_num_candidates,
            text_model=settings.es_text_model.strip(),
            rescore=rescore,
        )

    @classmethod
    def list_collections(
        cls, settings: Settings, *, client_options: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Names of the lookalike collections on the cluster (aliases ``lookalike-*``)."""
        conn, _version = connect(settings, client_options=client_options)
        try:
            return collection_names(conn)
        finally:
            conn.close()

    # -- model binding --------------------------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        self._check_open()
        with self._lock:
            if self._model is None:
                self._load()
            return self._model

    def bind_model(self, model: ModelInfo) -> None:
        self._check_open()
        if not model.model_id or not isinstance(model.dim, int) or model.dim <= 0:
            raise StoreError(f"invalid model identity {model!r}: it needs an id and a positive dim")
        with self._lock:
            if self._model is None:
                self._load()
            if self._model is None:
                options = self.options.resolved(self.server_version, model.dim)
                options.check_server(self.server_version)
                options.check_dims(model.dim)
                self._index.create(model, options, self.server_version)
                self._load()
            current = self._model
        if current is None:
            raise StoreError(f"index {self.index_name} could not be created at {self._where}")
        if current != model:
            raise ModelMismatchError(
                f"collection {self.collection!r} (Elasticsearch index {self.alias}) holds vectors "
                f"of {current.model_id} ({current.dim}-d, preprocessing {current.preprocess}), "
                f"not {model.model_id} ({model.dim}-d, {model.preprocess}). Use that model, or "
                "re-index into a new collection (--collection NAME), or drop this one first."
            )

    def _load(self) -> None:
        found = self._index.read_mapping()
        self._model, self._mapping = found if found is not None else (None, {})

    # -- writes ---------------------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        if not records:
            return
        model = self.model
        if model is None:
            raise StoreError(
                f"collection {self.collection!r} has no model yet: call bind_model() first"
            )
        ops: list[BulkOp] = []
        for rec in records:
            if rec.vector is None:
                raise ModelMismatchError(f"record {rec.id!r} ({rec.path}) has no vector")
            vec = unit_vector(
                rec.vector,
                model.dim,
                what=f"the vector of {rec.path}",
                model=model,
                collection=self.collection,
            )
            ops.append(("index", rec.id, encode_document(rec, vec)))
        self._write(ops, f"writing {len(ops)} documents to {self.alias}")

    def delete(self, ids: Sequence[str]) -> None:
        ops: list[BulkOp] = [("delete", i, None) for i in listed_ids(ids) if is_storable_id(i)]
        if ops and self.model is not None:
            self._write(ops, f"deleting {len(ops)} documents from {self.alias}")

    def _write(self, ops: list[BulkOp], action: str) -> None:
        with self._lock:
            self._dirty = True
        try:
            self._index.conn.bulk(self.alias, ops, action)
        except BulkStoreError as exc:
            if any("index_not_found" in f.reason for f in exc.failures):
                with self._lock:  # someone deleted the index: bind_model will recreate it
                    self._model, self._mapping = None, {}
            raise

    def flush(self) -> None:
        if self.model is not None:
            with self._lock:
                self._dirty = False
            self._index.refresh()

    # -- reads ----------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], *, with_vectors: bool = True) -> list[Record]:
        model = self.model
        unique = [i for i in listed_ids(ids) if is_storable_id(i)]
        if model is None or not unique:
            return []
        fields = [*FIELDS_META, "vec"] if with_vectors else list(FIELDS_META)
        found: dict[str, Record] = {}
        for start in range(0, len(unique), _MGET_CHUNK):
            resp = self._call(
                "reading documents",
                self._index.client.mget,
                index=self.alias,
                ids=unique[start : start + _MGET_CHUNK],
                source=fields,
            )
            for doc in as_dict(resp).get("docs", []):
                if doc.get("found") and isinstance(doc.get("_source"), dict):
                    found[doc["_id"]] = decode_record(
                        doc["_id"], doc["_source"], dim=model.dim, with_vector=with_vectors
                    )
        return [found[i] for i in unique if i in found]

    def knn(
        self,
        vector: np.ndarray,
        k: int,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        check_window(k, offset, min_score)
        model = self.model
        query = unit_query_vector(vector, model, self.collection)
        if model is None:
            return []
        return self._run(self._plan(k, offset, filters, min_score, exclude_ids, query_vector=query))

    def knn_text(
        self,
        text: str,
        k: int,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """Like ``knn``, but the cluster embeds ``text`` with the model deployed as
        ``es_text_model`` (``query_vector_builder.text_embedding``); nothing is embedded
        locally. With a quantized index and no re-scoring in the cluster (8.14-8.17; 8.18-9.0
        unless es_rescore = cluster) the scores are the quantized ones: no query vector comes
        back to re-score with here."""
        if not self.text_model:
            raise ConfigError(
                "knn_text needs es_text_model: the id of a text embedding model deployed in "
                "the cluster",
                field="es_text_model",
            )
        check_window(k, offset, min_score)
        if self.model is None:
            return []
        plan = self._plan(k, offset, filters, min_score, exclude_ids, text=(self.text_model, text))
        try:
            return self._run(plan)
        except StoreError as exc:
            if exc.server_type in ("resource_not_found_exception", "status_exception"):
                raise ModelError(
                    f"the cluster at {self._where} cannot embed text with {self.text_model!r} "
                    f"({exc}). Import and start the model with eland (eland_import_hub_model "
                    "--hub-model-id sentence-transformers/clip-ViT-B-32-multilingual-v1 "
                    "--task-type text_embedding --start), or unset es_text_model to embed "
                    "queries locally.",
                    field="es_text_model",
                ) from None
            raise

    def _plan(
        self,
        k: int,
        offset: int,
        filters: Filters | None,
        min_score: float | None,
        exclude_ids: Sequence[str],
        **query: Any,
    ) -> KnnPlan:
        return plan_knn(
            k=k,
            offset=offset,
            filters=filters,
            min_score=min_score,
            exclude_ids=exclude_ids,
            num_candidates=self.num_candidates,
            index_type=self._index_type(),
            server_version=self.server_version,
            rescore=self.rescore,
            **query,
        )

    def _index_type(self) -> str:
        # The index's own options count: they outlive later changes of the settings.
        vector = (self._mapping.get("properties") or {}).get("vector") or {}
        dims = self._model.dim if self._model is not None else 0
        default = self.options.resolved(self.server_version, dims).type
        return str((vector.get("index_options") or {}).get("type", default))

    def _run(self, plan: KnnPlan) -> list[Hit]:
        self._refresh_if_dirty()
        resp = self._call(
            "searching", self._index.client.search, index=self.alias, not_found=True, **plan.request
        )
        return read_hits(plan, as_dict(resp)) if resp is not None else []

    def count(self, filters: Filters | None = None) -> int:
        if self.model is None:
            return 0
        self._refresh_if_dirty()
        query = filters_query(filters) or {"match_all": {}}
        resp = self._call(
            "counting", self._index.client.count, index=self.alias, query=query, not_found=True
        )
        return int(as_dict(resp).get("count", 0)) if resp is not None else 0

    def manifest(self, root: str) -> Iterator[FileState]:
        """The documents indexed with this ``root`` (as the embedded store: equal root)."""
        query = {"bool": {"filter": [{"term": {"root": safe_text(root)}}]}}
        for hits in self._walk(query, list(FIELDS_STATE), _PAGE):
            for h in hits:
                state = decode_state(h["_id"], h.get("_source") or {}, root)
                if state is not None:
                    yield state

    def find_by_hash(self, hashes: Sequence[str]) -> dict[str, Record]:
        model = self.model
        wanted = [h for h in dict.fromkeys(hashes) if isinstance(h, str) and h]
        if model is None or not wanted:
            return {}
        self._refresh_if_dirty()
        out: dict[str, Record] = {}
        for start in range(0, len(wanted), _HASH_CHUNK):
            chunk = wanted[start : start + _HASH_CHUNK]
            resp = self._call(
                "looking up content hashes",
                self._index.client.search,
                index=self.alias,
                query={"bool": {"filter": [{"terms": {"sha256": chunk}}]}},
                collapse={"field": "sha256"},
                sort=[{"id": "asc"}],
                size=len(chunk),
                source=[*FIELDS_META, "vec"],
                track_total_hits=False,
                not_found=True,
            )
            for h in as_dict(resp).get("hits", {}).get("hits", []) if resp is not None else []:
                rec = decode_record(
                    h["_id"], h.get("_source") or {}, dim=model.dim, with_vector=True
                )
                out.setdefault(rec.sha256, rec)
        return out

    def iter_records(
        self, batch_size: int = 500, *, after: str | None = None
    ) -> Iterator[list[Record]]:
        if not 1 <= batch_size <= MAX_WINDOW:
            raise QueryError(f"batch_size must be between 1 and {MAX_WINDOW}", field="batch_size")
        model = self.model
        if model is None:
            return
        for hits in self._walk(None, [*FIELDS_META, "vec"], batch_size, after=after):
            yield [
                decode_record(h["_id"], h.get("_source") or {}, dim=model.dim, with_vector=True)
                for h in hits
            ]

    def _walk(
        self,
        query: dict[str, Any] | None,
        fields: list[str],
        size: int,
        *,
        after: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        if self.model is None:
            return
        self._refresh_if_dirty()
        for hits in self._index.walk(query, fields, size, after=after):
            self._check_open()
            yield hits

    # -- sizing ---------------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        """Documents and store size of the primaries from ``_stats``, bytes per field from
        ``_disk_usage`` where allowed, and projected RAM by index_options type."""
        model = self.model
        version = ".".join(str(p) for p in self.server_version)
        details: dict[str, Any] = {"index": self.alias, "server_version": version}
        if model is None:
            return StoreStats(self.backend, self.collection, 0, 0, 0, 0, details=details)
        self._refresh_if_dirty()
        facts = self._index.size_facts()
        usage = self._index.disk_usage(facts["docs"], facts["store"], model.dim)
        index_type = self._index_type()
        who = rescoring(index_type, self.server_version, self.rescore)
        details.update(describe(index_type, self.server_version, who))
        details.update(sizing_details(self._mapping, usage, facts, model.dim, details))
        return build_stats(self.collection, model, facts, self._mapping, usage, details)

    # -- lifecycle ------------------------------------------------------------------------------

    def drop(self) -> None:
        self._check_open()
        self._index.delete_index()
        with self._lock:
            self._model, self._mapping = None, {}
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._index.conn.close()

    @property
    def embeds_text(self) -> bool:
        return bool(self.text_model)

    @property
    def location(self) -> str:
        """The cluster (without credentials) and the index alias, for messages and reports."""
        return f"{self._index.location}/{self.alias}"

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return self._index.location

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"the store of collection {self.collection!r} is closed; open it again"
            )

    def _refresh_if_dirty(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, False
        if dirty:
            self._index.refresh()

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._check_open()
        return self._index.call(action, fn, *args, **kwargs)
