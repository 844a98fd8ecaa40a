"""What the Elasticsearch backend sends: the index mapping, the documents and the filters.

Pure functions with no client or network, so the exact wire format is easy to
read and to test. ``lookalike.store.elastic`` does the talking.

Layout of one document (``_id`` is the record id)::

    id, path, folder, root, relpath, format, sha256   keyword
    size (long), mtime (double, exact), modified (date, epoch ms, for Kibana)
    width, height                                     integer, not indexed
    vector   dense_vector, HNSW-indexed, similarity cosine, left out of _source
    vec      binary: the float32 vector, little-endian, base64 (for get / copy)
    raw      binary, only when a path is not valid UTF-8: [path, root, relpath] exactly,
             while the keyword fields hold them with U+FFFD for the undecodable bytes
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import ConfigError, ModelMismatchError, QueryError, StoreError
from lookalike.records import FileState, Filters, ModelInfo, Record

__all__ = [
    "FIELDS_META",
    "FIELDS_STATE",
    "INDEX_OPTION_TYPES",
    "INDEX_PREFIX",
    "MAX_ID_BYTES",
    "MAX_WINDOW",
    "RESCORE_SINCE",
    "SCHEMA_VERSION",
    "IndexOptions",
    "alias_name",
    "build_index_body",
    "check_id",
    "concrete_index_name",
    "decode_record",
    "decode_state",
    "encode_document",
    "filters_query",
    "index_model",
    "is_storable_id",
    "listed_ids",
    "safe_text",
    "score_to_cosine",
    "unit_vector",
]

INDEX_PREFIX = "lookalike-"
SCHEMA_VERSION = 1
MAX_WINDOW = 10_000  # Elasticsearch caps num_candidates (and so offset + k) at 10,000
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id

#: index_options type -> (first Elasticsearch version that has it, query-time oversample factor)
INDEX_OPTION_TYPES: dict[str, tuple[tuple[int, int], float | None]] = {
    "hnsw": ((8, 0), None),
    "int8_hnsw": ((8, 12), 2.0),
    "int4_hnsw": ((8, 15), 2.0),
    "bbq_hnsw": ((8, 16), 3.0),
}
RESCORE_SINCE = (8, 18)  # query-time knn.rescore_vector

FIELDS_META = (
    "id",
    "path",
    "root",
    "relpath",
    "format",
    "size",
    "mtime",
    "sha256",
    "width",
    "height",
    "raw",
)
FIELDS_STATE = ("id", "path", "root", "relpath", "size", "mtime", "sha256", "raw")


def alias_name(collection: str) -> str:
    """The name users see and search (an alias): ``lookalike-<collection>``."""
    return INDEX_PREFIX + collection


def concrete_index_name(collection: str) -> str:
    """The index behind the alias. Collection names cannot hold '.', so no clash with aliases."""
    return f"{INDEX_PREFIX}{collection}.v{SCHEMA_VERSION}"


@dataclass(frozen=True)
class IndexOptions:
    """How the dense_vector field is indexed (es_index_options, es_m, es_ef_construction)."""

    type: str = "int8_hnsw"
    m: int = 16
    ef_construction: int = 100

    def __post_init__(self) -> None:
        if self.type not in INDEX_OPTION_TYPES:
            raise ConfigError(
                f"es_index_options {self.type!r} is not supported: use one of "
                + ", ".join(INDEX_OPTION_TYPES),
                field="es_index_options",
            )
        if not 2 <= self.m <= 512:
            raise ConfigError(f"es_m must be between 2 and 512, got {self.m}", field="es_m")
        if not 1 <= self.ef_construction <= 3200:
            raise ConfigError(
                f"es_ef_construction must be between 1 and 3200, got {self.ef_construction}",
                field="es_ef_construction",
            )

    def check_server(self, version: tuple[int, int, int]) -> None:
        since = INDEX_OPTION_TYPES[self.type][0]
        if version[:2] < since:
            raise ConfigError(
                f"es_index_options {self.type} needs Elasticsearch {since[0]}.{since[1]} or newer; "
                f"this cluster runs {'.'.join(map(str, version))}. Choose int8_hnsw or hnsw.",
                field="es_index_options",
            )

    @property
    def oversample(self) -> float | None:
        return INDEX_OPTION_TYPES[self.type][1]

    def to_mapping(self) -> dict[str, Any]:
        return {"type": self.type, "m": self.m, "ef_construction": self.ef_construction}


def build_index_body(collection: str, model: ModelInfo, options: IndexOptions) -> dict[str, Any]:
    """The body of ``PUT /lookalike-<collection>.v1``: settings, mappings and the alias.

    cosine, not dot_product: the vectors are unit length, so for them Elasticsearch
    stores no magnitude and cosine costs what dot_product costs; but dot_product
    rejects any query vector that is not unit length, and a text model deployed in
    the cluster (clip-ViT-B-32-multilingual-v1 imported with eland ends in a Dense
    layer, no Normalize) produces such vectors. Both score (1 + cos) / 2.
    """
    return {
        "settings": {"index": {"codec": "best_compression"}},
        "mappings": {
            "dynamic": "strict",
            "_meta": {
                "lookalike": {
                    "schema": SCHEMA_VERSION,
                    "model": model.to_dict(),
                    "vector_copy": "vec: float32 little-endian, base64",
                }
            },
            "_source": {"excludes": ["vector"]},
            "properties": {
                "id": {"type": "keyword"},
                "path": {"type": "keyword"},
                "folder": {"type": "keyword"},
                "root": {"type": "keyword"},
                "relpath": {"type": "keyword"},
                "format": {"type": "keyword"},
                "sha256": {"type": "keyword"},
                "size": {"type": "long"},
                "mtime": {"type": "double"},
                "modified": {"type": "date", "format": "epoch_millis"},
                "width": {"type": "integer", "index": False},
                "height": {"type": "integer", "index": False},
                "raw": {"type": "binary"},
                "vec": {"type": "binary"},
                "vector": {
                    "type": "dense_vector",
                    "element_type": "float",
                    "dims": model.dim,
                    "index": True,
                    "similarity": "cosine",
                    "index_options": options.to_mapping(),
                },
            },
        },
        "aliases": {alias_name(collection): {"is_write_index": True}},
    }


def index_model(mapping: Mapping[str, Any]) -> ModelInfo | None:
    """The model in an index mapping's ``_meta``; None if lookalike did not create it."""
    meta = (mapping.get("_meta") or {}).get("lookalike")
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        return None
    try:
        return ModelInfo.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError):
        return None


# -- text that Elasticsearch can hold ---------------------------------------------------------


def safe_text(s: str) -> str:
    """``s`` as valid Unicode: undecodable bytes of file names become U+FFFD."""
    try:
        raw = s.encode("utf-8", "surrogateescape")  # os.fsdecode's escapes back to bytes
    except UnicodeEncodeError:
        raw = s.encode("utf-8", "surrogatepass")  # any other lone surrogate
    return raw.decode("utf-8", "replace")


def _is_clean(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(doc_id: str) -> None:
    if not isinstance(doc_id, str) or not doc_id or not _is_clean(doc_id):
        raise StoreError(
            f"document id {doc_id!r} cannot be stored in Elasticsearch: use a non-empty UTF-8 id"
        )
    if len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
        raise StoreError(
            f"document id {doc_id[:40]!r}... is longer than Elasticsearch's 512-byte limit"
        )


def listed_ids(ids: Sequence[str]) -> list[str]:
    """``ids`` without repeats; QueryError unless it is a list of strings."""
    if isinstance(ids, str):
        raise QueryError("ids must be a list of ids, not one string", field="ids")
    for i in ids:
        if not isinstance(i, str):
            raise QueryError(f"document ids are strings, got {i!r}", field="ids")
    return list(dict.fromkeys(ids))


def is_storable_id(doc_id: str) -> bool:
    try:
        check_id(doc_id)
    except StoreError:
        return False
    return True


# -- vectors ----------------------------------------------------------------------------------


def unit_vector(vector: Any, dim: int, *, what: str, model: ModelInfo) -> np.ndarray:
    """``vector`` as a float32 unit vector of length ``dim``; ModelMismatchError if mis-shaped."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (dim,):
        raise ModelMismatchError(
            f"{what} has shape {arr.shape} but this collection holds {dim}-dimensional vectors "
            f"of {model.model_id}; use that model, or re-index into a new collection"
        )
    if not np.all(np.isfinite(arr)):
        raise StoreError(f"{what} contains NaN or infinite values; re-embed it")
    norm = float(np.linalg.norm(arr.astype(np.float64)))
    if norm == 0.0:
        raise StoreError(f"{what} is all zeros and has no direction to search by; re-embed it")
    return (arr.astype(np.float64) / norm).astype(np.float32)


def _json_floats(arr: np.ndarray) -> str:
    """A float32 array as a JSON list; 9 significant digits read back to the same float32
    (about 13.6 bytes a number instead of 22 for Python's float64 repr)."""
    return "[" + ",".join([f"{x:.9g}" for x in arr.tolist()]) + "]"


def _encode_vec(arr: np.ndarray) -> str:
    return base64.b64encode(arr.astype("<f4").tobytes()).decode("ascii")


def _decode_vec(text: Any, dim: int, doc_id: str) -> np.ndarray:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StoreError(f"document {doc_id!r} has a corrupt vector copy; re-index it") from exc
    if len(raw) != 4 * dim:
        raise StoreError(
            f"document {doc_id!r} has a {len(raw) // 4}-dimensional vector copy, "
            f"expected {dim}; re-index it"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


# -- documents --------------------------------------------------------------------------------


def encode_document(rec: Record, vector: np.ndarray) -> str:
    """The JSON source line of one record for a bulk ``index`` action (vector already unit)."""
    check_id(rec.id)
    if not math.isfinite(float(rec.mtime)):
        raise StoreError(f"record {rec.id!r} ({rec.path}) has an invalid mtime {rec.mtime!r}")
    src: dict[str, Any] = {
        "id": rec.id,
        "path": safe_text(rec.path),
        "folder": safe_text(posixpath.dirname(rec.path)),
        "root": safe_text(rec.root),
        "relpath": safe_text(rec.relpath),
        "format": safe_text(rec.format),
        "sha256": safe_text(rec.sha256),
        "size": int(rec.size),
        "mtime": float(rec.mtime),
        "modified": int(round(float(rec.mtime) * 1000)),
        "width": int(rec.width),
        "height": int(rec.height),
        "vec": _encode_vec(vector),
    }
    if not all(_is_clean(s) for s in (rec.path, rec.root, rec.relpath)):
        exact = json.dumps([rec.path, rec.root, rec.relpath], ensure_ascii=True)
        src["raw"] = base64.b64encode(exact.encode("ascii")).decode("ascii")
    body = json.dumps(src, ensure_ascii=False, separators=(",", ":"))
    return body[:-1] + ',"vector":' + _json_floats(vector) + "}"


def _exact_paths(src: Mapping[str, Any]) -> tuple[str, str, str]:
    raw = src.get("raw")
    if raw:
        try:
            path, root, relpath = json.loads(base64.b64decode(str(raw)).decode("ascii"))
            return str(path), str(root), str(relpath)
        except (ValueError, TypeError, binascii.Error):
            pass  # fall back to the display form below
    return str(src.get("path", "")), str(src.get("root", "")), str(src.get("relpath", ""))


def decode_record(
    doc_id: str, src: Mapping[str, Any], *, dim: int | None, with_vector: bool
) -> Record:
    path, root, relpath = _exact_paths(src)
    vector = None
    if with_vector:
        if dim is None or "vec" not in src:
            raise StoreError(f"document {doc_id!r} has no vector copy; re-index it")
        vector = _decode_vec(src["vec"], dim, doc_id)
    try:
        return Record(
            id=str(src.get("id", doc_id)),
            path=path,
            root=root,
            relpath=relpath,
            format=str(src.get("format", "")),
            size=int(src.get("size", 0)),
            mtime=float(src.get("mtime", 0.0)),
            sha256=str(src.get("sha256", "")),
            width=int(src.get("width", 0)),
            height=int(src.get("height", 0)),
            vector=vector,
        )
    except (TypeError, ValueError) as exc:
        raise StoreError(f"document {doc_id!r} has malformed fields ({exc}); re-index it") from exc


def decode_state(doc_id: str, src: Mapping[str, Any], root: str) -> FileState | None:
    """The file state of a document indexed with ``root``; None when only the U+FFFD display
    form of the root matched."""
    _path, doc_root, relpath = _exact_paths(src)
    if doc_root != root:
        return None
    return FileState(
        id=str(src.get("id", doc_id)),
        relpath=relpath,
        size=int(src.get("size", 0)),
        mtime=float(src.get("mtime", 0.0)),
        sha256=str(src.get("sha256", "")),
    )


# -- queries ----------------------------------------------------------------------------------


def filters_query(
    filters: Filters | None, exclude_ids: Sequence[str] = ()
) -> dict[str, Any] | None:
    """One ``bool`` query for the filters and exclusions, or None when there are none.

    The folder filter is a prefix on ``path`` ending in '/', so ``/a/b`` never matches ``/a/bc``.
    """
    must: list[dict[str, Any]] = []
    if filters is not None:
        prefix = filters.folder_prefix
        if prefix is not None:
            must.append({"prefix": {"path": safe_text(prefix)}})
        if filters.formats:
            must.append({"terms": {"format": [safe_text(f) for f in filters.formats]}})
        size = _range(filters.min_size, filters.max_size, "size")
        if size:
            must.append({"range": {"size": size}})
        mtime = _range(filters.modified_after, filters.modified_before, "modified")
        if mtime:
            must.append({"range": {"mtime": mtime}})
    ids = [i for i in dict.fromkeys(exclude_ids) if is_storable_id(i)]
    if not must and not ids:
        return None
    query: dict[str, Any] = {"filter": must}
    if ids:
        query["must_not"] = [{"ids": {"values": ids}}]
    return {"bool": query}


def _range(low: float | None, high: float | None, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (("gte", low), ("lte", high)):
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise QueryError(f"the {name} filter needs finite numbers, got {value!r}", field=name)
        out[key] = value
    return out


def score_to_cosine(score: float) -> float:
    """Elasticsearch scores cosine kNN hits (1 + cos) / 2; give back cos, clamped to [-1, 1]."""
    return max(-1.0, min(1.0, 2.0 * float(score) - 1.0))
