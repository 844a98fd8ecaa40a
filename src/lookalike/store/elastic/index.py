"""One collection's index on the cluster: its alias, mapping, creation, paging and statistics.

``IndexHandle`` does the index-level requests for ``ElasticStore`` and knows the
naming: the index ``lookalike-<collection>.v1`` behind the alias
``lookalike-<collection>`` (collection names cannot contain '.', so an alias never
clashes with another collection's index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lookalike.errors import StoreError
from lookalike.records import ModelInfo
from lookalike.store.elastic.client import Connection, as_dict
from lookalike.store.elastic.mapping import (
    INDEX_PREFIX,
    IndexOptions,
    alias_name,
    build_index_body,
    concrete_index_name,
    index_model,
)
from lookalike.store.elastic.stats import disk_usage_details, primaries

__all__ = [
    "DISK_USAGE_MAX_DOCS",
    "collection_names",
    "IndexHandle",
]

DISK_USAGE_MAX_DOCS = 2_000_000  # _disk_usage reads every segment; skip it on big indexes


class IndexHandle:
    def __init__(self, conn: Connection, collection: str) -> None:
        self.conn = conn
        self.collection = collection
        self.alias = alias_name(collection)
        self.index_name = concrete_index_name(collection)
        self._disk_usage_cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    @property
    def client(self) -> Any:
        return self.conn.client

    @property
    def location(self) -> str:
        return self.conn.location

    def call(
        self,
        action: str,
        fn: Callable[..., Any],
        *args: Any,
        not_found: bool = False,
        retries: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """One cluster call; with ``not_found=True`` a missing index gives None, not an error."""
        resp = self.conn.call(action, fn, *args, retries=retries, missing_ok=True, **kwargs)
        if resp is None and not not_found:
            raise StoreError(
                f"Elasticsearch has no index {self.alias} at {self.location} while {action}; "
                "someone deleted it: index again to recreate it"
            )
        return resp

    # -- mapping and creation -----------------------------------------------------------------

    def read_mapping(self) -> tuple[ModelInfo, dict[str, Any]] | None:
        """The model and mapping of the index behind the alias, or None if there is none."""
        resp = self.call(
            "reading the index mapping",
            self.client.indices.get_mapping,
            index=self.alias,
            not_found=True,
        )
        if resp is None:
            return None
        body = dict(as_dict(resp))
        if self.alias in body:
            raise StoreError(
                f"{self.alias} at {self.location} is an index that lookalike did not create "
                "(lookalike uses an alias of that name); delete or rename it, or choose "
                "another collection"
            )
        if len(body) != 1:
            raise StoreError(
                f"alias {self.alias} points at {len(body)} indices; it must point at exactly one"
            )
        mapping = dict(next(iter(body.values())).get("mappings") or {})
        model = index_model(mapping)
        if model is None:
            raise StoreError(
                f"the index behind {self.alias} at {self.location} has no lookalike model in "
                "its _meta: lookalike did not create it. Choose another collection name."
            )
        return model, mapping

    def create(
        self, model: ModelInfo, options: IndexOptions, server_version: tuple[int, int, int]
    ) -> None:
        """Create the index and its alias; a concurrent creation by another process is fine."""
        body = build_index_body(self.collection, model, options, server_version)
        try:
            self.call(
                "creating the index",
                self.client.indices.create,
                index=self.index_name,
                settings=body["settings"],
                mappings=body["mappings"],
                aliases=body["aliases"],
            )
        except StoreError as exc:
            cause = exc.server_type
            if cause == "resource_already_exists_exception":
                return  # another process was first; the caller reads the mapping again
            if cause == "invalid_alias_name_exception":
                raise StoreError(
                    f"{self.alias} at {self.location} is an existing index, not lookalike's "
                    "alias; delete or rename it, or choose another collection"
                ) from None
            raise

    def refresh(self) -> None:
        self.call(
            "refreshing the index", self.client.indices.refresh, index=self.alias, not_found=True
        )

    def delete_index(self) -> None:
        """Delete the index (or indices) behind the alias; nothing if there is none."""
        resp = self.call(
            "finding the index", self.client.indices.get_alias, name=self.alias, not_found=True
        )
        names = list(as_dict(resp)) if resp is not None else []
        if names:
            self.call("deleting the index", self.client.indices.delete, index=names, not_found=True)

    # -- reading many documents ----------------------------------------------------------------

    def walk(
        self,
        query: dict[str, Any] | None,
        fields: list[str],
        size: int,
        *,
        after: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of hits ordered by the ``id`` keyword, each page resuming after the last id
        (search_after): no duplicates and no deep-paging cost, even while the index changes."""
        last = after
        while True:
            kwargs: dict[str, Any] = {"query": query} if query is not None else {}
            if last is not None:
                kwargs["search_after"] = [last]
            resp = self.call(
                "reading the index",
                self.client.search,
                index=self.alias,
                sort=[{"id": "asc"}],
                size=size,
                source=fields,
                track_total_hits=False,
                not_found=True,
                **kwargs,
            )
            hits = list(as_dict(resp).get("hits", {}).get("hits", [])) if resp is not None else []
            if not hits:
                return
            yield hits
            if len(hits) < size:
                return
            last = str(hits[-1]["sort"][0])

    # -- statistics -----------------------------------------------------------------------------

    def size_facts(self) -> dict[str, int]:
        """Documents, deleted documents and store bytes of the primaries, and image bytes."""
        resp = self.call(
            "reading index statistics",
            self.client.indices.stats,
            index=self.alias,
            metric=["docs", "store"],
        )
        facts = primaries(as_dict(resp))
        total = self.call(
            "summing image sizes",
            self.client.search,
            index=self.alias,
            size=0,
            aggs={"image_bytes": {"sum": {"field": "size"}}},
            track_total_hits=True,
        )
        agg = as_dict(total).get("aggregations", {}).get("image_bytes", {}).get("value") or 0
        facts["image_bytes"] = int(agg)
        return facts

    def disk_usage(self, docs: int, store_bytes: int, dim: int) -> dict[str, Any]:
        """Per-field bytes from ``_disk_usage``, cached while the index does not change.

        ``flush=false``: the API would otherwise flush (a Lucene commit) before reading, a
        write that a statistics call should not cause; the figures are then those of the
        last commit, which the cluster makes on its own (translog size, idle shards).
        The API needs the index privilege 'manage' and is a technical preview."""
        if docs == 0 or docs > DISK_USAGE_MAX_DOCS:
            return {"available": False, "reason": f"skipped for {docs} documents"}
        key = (docs, store_bytes)
        if self._disk_usage_cache and self._disk_usage_cache[0] == key:
            return self._disk_usage_cache[1]
        try:
            # The raw request: indices.disk_usage() warns that the API is a technical preview.
            resp = self.call(
                "analysing disk usage",
                self.client.options(request_timeout=120).perform_request,
                "POST",
                f"/{self.alias}/_disk_usage",
                params={"run_expensive_tasks": "true", "flush": "false"},
                headers={"accept": "application/json"},
                retries=0,
            )
        except StoreError as exc:
            why = str(exc)
            if exc.server_status == 403:
                why = (
                    f"_disk_usage needs the index privilege 'manage' on {self.alias} "
                    f"(per-field bytes left out): {exc}"
                )
            return {"available": False, "reason": why}
        out = disk_usage_details(as_dict(resp), docs, dim)
        out["source"] = "_disk_usage?flush=false: the last Lucene commit (technical preview)"
        self._disk_usage_cache = (key, out)
        return out


def collection_names(conn: Connection) -> list[str]:
    """Names of the lookalike collections on the cluster (aliases ``lookalike-*``)."""
    resp = conn.call(
        "listing collections",
        conn.client.indices.get_alias,
        name=INDEX_PREFIX + "*",
        missing_ok=True,
    )
    names: set[str] = set()
    for entry in as_dict(resp).values():
        aliases = entry.get("aliases") if isinstance(entry, dict) else None
        for alias in aliases or {}:
            if alias.startswith(INDEX_PREFIX):
                names.add(alias[len(INDEX_PREFIX) :])
    return sorted(names)
