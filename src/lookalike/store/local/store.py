"""The embedded store: a collection in a folder, no server.

``store.db`` (SQLite, WAL) is the truth: documents, their float32 vectors and a
change log written in the same transaction as every upsert and delete. The
vector index (``store.vectorindex``) is derived from it and kept in step through the
change log, so one process can index while others search, each seeing new and
deleted documents before its next search without reopening anything.

Search (``knn``): filters run in SQLite first; scores are exact cosines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import (
    CollectionNotFound,
    LookalikeError,
    ModelMismatchError,
    QueryError,
    StoreError,
    StoreUnavailableError,
)
from lookalike.records import FileState, Filters, Hit, ModelInfo, Record, StoreStats
from lookalike.regions import Region, RegionSpec
from lookalike.store.base import Store
from lookalike.store.checks import check_window, unit_query_vector
from lookalike.store.local.abilities import LocalAbilities
from lookalike.store.local.db import DB_FILENAME, Database, decode_text, encode_text
from lookalike.store.local.footprint import footprint
from lookalike.store.local.knn import LocalKnn
from lookalike.store.local.region_search import best_region_hits, merge_hits
from lookalike.store.local.regions import (
    RegionMatrix,
    delete_regions,
    insert_regions,
    region_counts,
    regions_of,
)
from lookalike.store.local.rows import (
    DOC_COLUMNS,
    VEC_COLUMNS,
    chunks,
    filter_sql,
    hash_lookup_params,
    hash_lookup_where,
    placeholders,
    prepare_records,
    record_from_row,
)
from lookalike.store.local.source import SqliteVectorSource
from lookalike.store.vectorindex.derived import DerivedIndex
from lookalike.store.vectorindex.types import IndexParams, IndexStatus

__all__ = ["THUMBS_DIR", "LocalStore", "remove_collection_folder"]

log = logging.getLogger(__name__)

#: a subfolder the web app may use as a thumbnail cache; not part of the index size
THUMBS_DIR = "thumbs"
_WITH_VECTORS = "documents d JOIN vectors v ON v.key = d.key"


class LocalStore(LocalAbilities, Store):
    """A local collection in ``folder``. Thread- and process-safe.

    ``create``: make the collection when it does not exist (otherwise CollectionNotFound).
    ``readonly``: None opens read-only exactly when the folder cannot be written (a
    read-only mount); then searches work and nothing is written there, not even the
    saved vector index. ``exact_threshold``: below this many documents the whole
    collection is searched exactly; from it on an HNSW index is used (0 forces HNSW).
    ``selective_limit``: a filter matching at most this many documents is answered by
    exact scoring.
    """

    def __init__(
        self,
        folder: Path,
        collection: str,
        *,
        exact_threshold: int = 20_000,
        selective_limit: int = 5_000,
        index_params: IndexParams | None = None,
        busy_timeout_s: float = 30.0,
        create: bool = True,
        readonly: bool | None = None,
        vector_precision: str = "float32",
    ) -> None:
        self.collection = collection
        if vector_precision not in ("float32", "float16"):
            raise StoreError(
                f"vector_precision must be float32 or float16, not {vector_precision!r}"
            )
        self._new_precision = vector_precision
        self.folder = Path(folder)
        self.selective_limit = selective_limit
        params = index_params or IndexParams()
        self.index_params = replace(params, exact_threshold=exact_threshold)
        if create:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"cannot create the collection folder {self.folder} "
                    f"({exc.strerror or exc}); check the path and its permissions "
                    "(or set LOOKALIKE_HOME)"
                ) from exc
        elif not self.folder.is_dir():
            raise CollectionNotFound(f"no collection named {collection!r}", field="collection")
        self._db = Database(
            self.folder / DB_FILENAME,
            collection=collection,
            create=create,
            readonly=readonly,
            busy_timeout_s=busy_timeout_s,
        )
        if self._db.readonly:
            log.warning(
                "collection %r is read-only here (%s cannot be written): searching only, "
                "the vector index is rebuilt in memory and not saved", collection, self.folder,
            )  # fmt: skip
        self._model: ModelInfo | None = None
        self._precision: str | None = None
        self._index: DerivedIndex | None = None
        self._regions: RegionMatrix | None = None
        self._lock = threading.Lock()
        self._writer_depth = 0
        self._writer_lock = threading.RLock()

    @property
    def readonly(self) -> bool:
        """Opened without write access (a read-only folder): searches only."""
        return self._db.readonly

    def __repr__(self) -> str:
        return f"LocalStore({str(self.folder)!r}, {self.collection!r})"

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model identity ----------------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        if self._model is None:
            raw = self._db.get_meta("model")
            if raw is not None:
                self._model = self._parse_model(raw)
        return self._model

    def _parse_model(self, raw: str) -> ModelInfo:
        try:
            return ModelInfo.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{self._db.path}: the recorded model identity is unreadable ({exc}); "
                f"drop the collection (`lookalike drop --collection {self.collection}`) "
                "and index again"
            ) from exc

    def bind_model(self, model: ModelInfo) -> None:
        if not isinstance(model.dim, int) or model.dim <= 0 or not model.model_id:
            raise StoreError(f"invalid model identity {model!r}: it needs an id and a positive dim")
        with self._db.write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('model', ?)", (json.dumps(model.to_dict()),))
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('vector_precision', ?)",
                    (self._new_precision,),
                )
                current = model
            else:
                current = self._parse_model(row[0])
        if current != model:
            raise ModelMismatchError(
                f"collection {self.collection!r} holds vectors of {current.model_id} "
                f"({current.dim}-d, preprocessing {current.preprocess}), not of {model.model_id} "
                f"({model.dim}-d, preprocessing {model.preprocess}); index into a new collection "
                "(`lookalike index --collection NEW ...`), re-embed this one in place "
                "(`lookalike reindex --model NAME`) or drop it "
                f"(`lookalike drop --collection {self.collection}`) and index again"
            )
        self._model = current

    @property
    def vector_precision(self) -> str:
        """How this collection stores its vectors: chosen when its model was first bound
        (``vector_precision`` setting), float32 for collections made before it existed."""
        if self._precision is None:
            found = self._db.get_meta("vector_precision") or "float32"
            self._precision = found if found in ("float32", "float16") else "float32"
        return self._precision

    def _require_model(self) -> ModelInfo:
        model = self.model
        if model is None:
            raise StoreError(
                f"collection {self.collection!r} has no model yet: call bind_model() with the "
                "embedder's identity before storing vectors"
            )
        return model

    # -- writing -----------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        records = list(records)
        if not records:
            return
        model = self._require_model()
        latest: dict[bytes, tuple[Any, ...]] = {}
        tiles: dict[bytes, Record] = {}
        # validate everything before touching the database
        for rec, row in zip(
            records,
            prepare_records(records, model, self.collection, self.vector_precision),
            strict=True,
        ):
            latest.pop(row[0], None)
            latest[row[0]] = row  # the last occurrence of an id wins
            tiles[row[0]] = rec
        rows = list(latest.values())
        with self._db.write() as conn:
            old: list[tuple[int, bytes]] = []
            for part in chunks([r[0] for r in rows]):
                sql = f"SELECT key, id FROM documents WHERE id IN ({placeholders(len(part))})"
                old += conn.execute(sql, list(part)).fetchall()
            self._remove_keys(conn, old)
            seq_row = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'documents'"
            ).fetchone()
            first = int(seq_row[0] if seq_row else 0) + 1
            keys = range(first, first + len(rows))
            conn.executemany(
                "INSERT INTO documents (key, id, path, root, relpath, format, size, mtime, sha256, "
                "width, height) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(key, *r[:10]) for key, r in zip(keys, rows, strict=True)],
            )
            conn.executemany(
                "INSERT INTO vectors (key, vector, crc) VALUES (?, ?, ?)",
                [(key, r[10], r[11]) for key, r in zip(keys, rows, strict=True)],
            )
            # An upsert's id is on its documents row; only a delete's is kept in the log
            # (its row is gone). Nothing reads it back: 20+ bytes per document saved.
            conn.executemany(
                "INSERT INTO changes (key, id, op) VALUES (?, x'', 'U')", [(k,) for k in keys]
            )
            for key, r in zip(keys, rows, strict=True):
                rec = tiles[r[0]]
                insert_regions(conn, key, getattr(rec, "regions", None) or [], model.dim, rec.id)

    @staticmethod
    def _remove_keys(conn: Any, old: Sequence[tuple[int, bytes]]) -> None:
        if not old:
            return
        conn.executemany("DELETE FROM documents WHERE key = ?", [(k,) for k, _ in old])
        conn.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k, _ in old])
        delete_regions(conn, [k for k, _ in old])
        conn.executemany("INSERT INTO changes (key, id, op) VALUES (?, ?, 'D')", list(old))

    def delete(self, ids: Sequence[str]) -> None:
        wanted = self._encode_ids(ids)
        if not wanted:
            return
        with self._db.write() as conn:
            old: list[tuple[int, bytes]] = []
            for part in chunks(wanted):
                sql = f"SELECT key, id FROM documents WHERE id IN ({placeholders(len(part))})"
                old += conn.execute(sql, list(part)).fetchall()
            self._remove_keys(conn, old)

    @staticmethod
    def _encode_ids(ids: Sequence[str]) -> list[bytes]:
        if isinstance(ids, str):
            raise QueryError("ids must be a list of ids, not one string", field="ids")
        out: list[bytes] = []
        for i in ids:
            if not isinstance(i, str):
                raise QueryError(f"document ids are strings, got {i!r}", field="ids")
            out.append(encode_text(i))
        return list(dict.fromkeys(out))

    # -- reading -----------------------------------------------------------------------

    def get(self, ids: Sequence[str], *, with_vectors: bool = True) -> list[Record]:
        wanted = self._encode_ids(ids)
        dim = self.model.dim if with_vectors and self.model else None
        found: dict[bytes, Record] = {}
        cols = DOC_COLUMNS + (f", {VEC_COLUMNS}" if dim else "")
        join = " LEFT JOIN vectors v ON v.key = d.key" if dim else ""
        with self._db.read() as conn:
            for part in chunks(wanted):
                where = f"d.id IN ({placeholders(len(part))})"
                sql = f"SELECT {cols} FROM documents d{join} WHERE {where}"
                for row in conn.execute(sql, list(part)):
                    found[bytes(row[1])] = record_from_row(row, dim, self.collection)
        return [found[i] for i in wanted if i in found]

    def count(self, filters: Filters | None = None) -> int:
        where, params = filter_sql(filters)
        with self._db.read() as conn:
            row = conn.execute(f"SELECT count(*) FROM documents WHERE {where}", params).fetchone()
        return int(row[0])

    def manifest(self, root: str) -> Iterator[FileState]:
        if not isinstance(root, str):
            raise QueryError(f"root must be a folder path, got {root!r}", field="root")
        root_b = encode_text(root)
        last = b""
        while True:
            with self._db.read() as conn:
                rows = conn.execute(
                    "SELECT id, relpath, size, mtime, sha256 FROM documents "
                    "WHERE root = ? AND id > ? ORDER BY id LIMIT 2000",
                    (root_b, last),
                ).fetchall()
            if not rows:
                return
            last = bytes(rows[-1][0])
            for id_, rel, size, mtime, sha in rows:
                yield FileState(
                    decode_text(id_), decode_text(rel), int(size), float(mtime), str(sha)
                )

    def find_by_hash(self, hashes: Sequence[str]) -> dict[str, Record]:
        wanted = list(dict.fromkeys(h for h in hashes if isinstance(h, str)))
        model = self.model
        out: dict[str, Record] = {}
        if not wanted or model is None:
            return out
        with self._db.read() as conn:
            for part in chunks(wanted):
                sql = (
                    f"SELECT {DOC_COLUMNS}, {VEC_COLUMNS} FROM {_WITH_VECTORS} "
                    f"WHERE {hash_lookup_where(len(part))} ORDER BY d.id"
                )
                for row in conn.execute(sql, hash_lookup_params(part)):
                    if str(row[8]) not in out:
                        out[str(row[8])] = record_from_row(row, model.dim, self.collection)
        return out

    def iter_records(
        self, batch_size: int = 500, *, after: str | None = None
    ) -> Iterator[list[Record]]:
        if batch_size <= 0:
            raise QueryError("batch_size must be positive", field="batch_size")
        model = self.model
        if model is None:
            return
        last = encode_text(after) if after is not None else b""
        while True:
            with self._db.read() as conn:
                rows = conn.execute(
                    f"SELECT {DOC_COLUMNS}, {VEC_COLUMNS} FROM {_WITH_VECTORS} "
                    "WHERE d.id > ? ORDER BY d.id LIMIT ?",
                    (last, batch_size),
                ).fetchall()
            if not rows:
                return
            last = bytes(rows[-1][1])
            yield [record_from_row(r, model.dim, self.collection) for r in rows]

    # -- search ------------------------------------------------------------------------

    def _derived(self, model: ModelInfo) -> DerivedIndex:
        with self._lock:
            if self._index is None:
                self._index = DerivedIndex(
                    self.folder,
                    SqliteVectorSource(self._db, model.dim),
                    dim=model.dim,
                    db_uuid=self._db.uuid,
                    params=self.index_params,
                    saves=not self._db.readonly,
                )
            return self._index

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
        model, q, where, params, excluded_ids = self._query(
            vector, k, offset, min_score, filters, exclude_ids
        )
        if model is None:
            return []
        knn = LocalKnn(self._db, self._derived(model), selective_limit=self.selective_limit)
        return knn.search(q, int(k), int(offset), where, params, min_score, excluded_ids)

    def _query(
        self,
        vector: np.ndarray,
        k: int,
        offset: int,
        min_score: float | None,
        filters: Filters | None,
        exclude_ids: Sequence[str],
    ) -> tuple[ModelInfo | None, np.ndarray, str, list[Any], list[bytes]]:
        """The checks every search shares (``store.checks``), and its SQL filter pieces."""
        check_window(k, offset, min_score)
        model = self.model
        q = unit_query_vector(vector, model, self.collection)
        where, params = filter_sql(filters)
        return model, q, where, params, self._encode_ids(exclude_ids)

    # -- regions -----------------------------------------------------------------------

    @property
    def region_spec(self) -> RegionSpec | None:
        raw = self._db.get_meta("regions")
        return None if raw is None else RegionSpec.from_json(raw)

    def set_region_spec(self, spec: RegionSpec) -> None:
        with self._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('regions', ?)", (spec.to_json(),))

    def regions_of(self, ids: Sequence[str]) -> dict[str, list[Region]]:
        return regions_of(self._db, self._encode_ids(ids))

    def ids_missing_regions(self, root: str, spec: RegionSpec) -> set[str]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id FROM documents d WHERE root = ? AND min(width, height) >= ? "
                "AND NOT EXISTS (SELECT 1 FROM regions r WHERE r.key = d.key)",
                (encode_text(root), spec.min_side),
            ).fetchall()
        return {decode_text(r[0]) for r in rows}

    def record_region_cost(self, whole_seconds: float, region_seconds: float) -> None:
        with self._db.write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'region_cost'").fetchone()
            cost = json.loads(row[0]) if row else {"whole_seconds": 0.0, "region_seconds": 0.0}
            cost["whole_seconds"] += float(whole_seconds)
            cost["region_seconds"] += float(region_seconds)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('region_cost', ?)", (json.dumps(cost),)
            )

    def knn_regions(
        self,
        vector: np.ndarray,
        k: int,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        model, q, where, params, excluded = self._query(
            vector, k, offset, min_score, filters, exclude_ids
        )
        if model is None:
            return []
        need = int(k) + int(offset)
        whole = self.knn(q, need, filters=filters, min_score=min_score, exclude_ids=exclude_ids)
        with self._lock:
            if self._regions is None:
                self._regions = RegionMatrix(self._db, model.dim)
            matrix = self._regions
        tiles = best_region_hits(self._db, matrix, q, need, where, params, excluded, min_score)
        return merge_hits(whole, tiles, need)[int(offset) :]

    def _region_details(self, documents: int) -> dict[str, Any]:
        spec = self.region_spec
        rows, with_tiles, db_bytes = region_counts(self._db)
        raw = self._db.get_meta("region_cost")
        cost = json.loads(raw) if raw else {}
        whole_s = float(cost.get("whole_seconds", 0.0))
        ratio = (whole_s + float(cost.get("region_seconds", 0.0))) / whole_s if whole_s else None
        dim = self.model.dim if self.model else 0
        return {
            "grids": list(spec.grids) if spec else [],
            "min_side": spec.min_side if spec else None,
            "region_vectors": rows,
            "documents_with_regions": with_tiles,
            "vectors_per_image": round((documents + rows) / documents, 2) if documents else 0.0,
            "region_db_bytes": db_bytes,
            # int8 vector + float32 scale + four float32 box values + int64 key per tile
            "region_ram_bytes": rows * (dim + 4 + 16 + 8),
            "whole_ram_bytes": documents * dim * 4,
            "embed_time_ratio": None if ratio is None else round(ratio, 2),
        }

    # -- maintenance -------------------------------------------------------------------

    def sync_index(self, *, persist: bool = True) -> IndexStatus:
        """Bring the vector index up to date now (loading or building it if needed) and,
        with ``persist``, merge and save it when enough has changed. Returns its status."""
        model = self.model
        if model is None:
            return self.index_status()
        self._derived(model).sync(strict=persist)
        return self.index_status()

    def vector_source(self) -> SqliteVectorSource:
        """The checked view of the stored vectors the derived index reads."""
        return SqliteVectorSource(self._db, self._require_model().dim)

    def reset_index(self) -> None:
        """Forget this process's vector index; the next search loads or builds it again."""
        with self._lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()

    def index_status(self) -> IndexStatus:
        """How this process's vector index was obtained (file, rebuild, catch-up...)."""
        model = self.model
        if model is None or self._index is None:
            return IndexStatus("none", "none", 0, None, 0, None, 0, 0, 0, 0, 0, 0)
        return self._index.status()

    def flush(self) -> None:
        """Checkpoint the WAL and, for HNSW-sized collections, bring the saved index up to date."""
        if self._db.readonly:
            return
        with self._db.errors("checkpoint"):
            self._db.conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        model = self.model
        if model is None:
            return
        index = self._derived(model)
        big = self.count() >= max(1, self.index_params.exact_threshold)
        index.sync(strict=True, load=big)

    def stats(self) -> StoreStats:
        with self._db.read() as conn:
            documents, image_bytes = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM documents"
            ).fetchone()
            page_size, pages, free = (
                int(conn.execute(f"PRAGMA {name}").fetchone()[0])
                for name in ("page_size", "page_count", "freelist_count")
            )
            (trees,) = conn.execute("SELECT count(*) FROM sqlite_master WHERE rootpage > 0")
        head = self._db.head()
        model = self.model
        db_bytes = ann_bytes = hnsw_bytes = other_bytes = thumbs_bytes = 0
        for dirpath, _dirnames, filenames in os.walk(self.folder):
            in_thumbs = Path(dirpath).relative_to(self.folder).parts[:1] == (THUMBS_DIR,)
            for name in filenames:
                with contextlib.suppress(OSError):
                    size = os.stat(os.path.join(dirpath, name)).st_size
                    if in_thumbs:
                        thumbs_bytes += size
                    elif name.startswith(DB_FILENAME):
                        db_bytes += size
                    elif name.startswith(("ann-", ".ann-", "ann.")):
                        ann_bytes += size
                        hnsw_bytes += size if name.endswith(".usearch") else 0
                    else:
                        other_bytes += size
        status = self.index_status()
        kind = status.kind
        if kind == "none":
            kind = "hnsw" if documents >= max(1, self.index_params.exact_threshold) else "exact"
        dim = model.dim if model else 0
        search = footprint(
            documents=int(documents),
            dim=dim,
            params=self.index_params,
            status=status,
            db_bytes=db_bytes,
            graph_bytes=hnsw_bytes,
            other_bytes=ann_bytes - hnsw_bytes + other_bytes,
            precision=self.vector_precision,
            db_used_bytes=max(0, pages - free - int(trees[0])) * page_size,
            page_size=page_size,
        )
        return StoreStats(
            backend="local",
            collection=self.collection,
            documents=int(documents),
            dimensions=model.dim if model else 0,
            image_bytes=int(image_bytes),
            index_bytes=db_bytes + ann_bytes + other_bytes,
            model=model,
            details={
                "folder": str(self.folder),
                "db_bytes": db_bytes,
                "ann_bytes": ann_bytes,  # all of the saved index: the graph and its stamp
                "hnsw_bytes": hnsw_bytes,  # the graph and its codes
                "thumbs_bytes": thumbs_bytes,
                "index": kind,
                "ann_dtype": self.index_params.kind_for(dim) if dim else self.index_params.dtype,
                "search": search,
                "exact_threshold": self.index_params.exact_threshold,
                "seq": head,
                "schema_version": self._db.schema_version,
                "vector_precision": self.vector_precision,
                "regions": self._region_details(int(documents)),
            },
        )

    @property
    def location(self) -> str:
        return str(self.folder)

    def close(self) -> None:
        if self._db.closed:
            return
        index, self._index = self._index, None
        if index is not None:
            try:
                index.sync(strict=True, load=False)  # save a large pending merge for the next open
            except (LookalikeError, OSError, RuntimeError) as exc:
                log.warning("could not save the vector index of %s on close: %s", self.folder, exc)
            index.close()
        self._db.close()

    def drop(self) -> None:
        with self.writer(what="drop"):
            self.close()
            remove_collection_folder(self.folder)


def remove_collection_folder(folder: Path) -> None:
    """Delete a collection folder (the caller holds its writer lock, or it is unusable)."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StoreError(
            f"could not delete the collection folder {folder} ({exc.strerror or exc}); "
            "delete it by hand"
        ) from exc
