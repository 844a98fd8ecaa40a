"""The Elasticsearch index of a collection: its names, vector index options and mapping.

Pure functions with no client or network, so the exact wire format is easy to
read and to test. ``lookalike.store.elastic.store`` does the talking; the
document layout is in ``documents``, the filter translation in ``filters``.

Layout of one document (``_id`` is the record id)::

    id, path, folder, root, relpath, format, sha256   keyword
    size (long), mtime (double, exact), modified (date, epoch ms, for Kibana)
    width, height                                     integer, not indexed
    vector   dense_vector, HNSW-indexed, similarity cosine, left out of the stored _source
             (8.x-9.1: by ``_source.excludes``; 9.2+: by index.mapping.exclude_source_vectors,
             which needs no _recovery_source copy of the unfiltered document)
    vec      binary: the float32 vector, little-endian, base64 (for get / copy)
    raw      binary, only when a path is not valid UTF-8: [path, root, relpath] exactly,
             while the keyword fields hold them with U+FFFD for the undecodable bytes
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from lookalike.errors import ConfigError
from lookalike.records import ModelInfo

__all__ = [
    "FIELDS_META",
    "FIELDS_STATE",
    "AUTO",
    "BBQ_DEFAULT_MIN_DIMS",
    "BBQ_DEFAULT_SINCE",
    "INDEX_OPTION_TYPES",
    "INDEX_PREFIX",
    "MAX_ID_BYTES",
    "PREVIEW_UNTIL",
    "RESCORE_GA_SINCE",
    "RESCORE_SINCE",
    "SCHEMA_VERSION",
    "VECTORS_OUT_OF_SOURCE_SINCE",
    "IndexOptions",
    "alias_name",
    "build_index_body",
    "concrete_index_name",
    "index_model",
]

INDEX_PREFIX = "lookalike-"
SCHEMA_VERSION = 1
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id
BBQ_MIN_DIMS = 64  # DenseVectorFieldMapper.BBQ_MIN_DIMS: bbq_hnsw refuses fewer dimensions
#: es_index_options "auto" picks bbq_hnsw from this many dimensions on servers where it is
#: generally available: Elasticsearch's own default for new dense_vector fields from 9.1
#: (below 384 dimensions one bit per dimension keeps too little to rank by)
BBQ_DEFAULT_MIN_DIMS = 384
#: the first version where "auto" chooses bbq_hnsw: BBQ is GA and so is knn.rescore_vector,
#: which re-scores its candidates against the float vectors in the cluster
BBQ_DEFAULT_SINCE = (9, 1)
AUTO = "auto"

#: index_options type -> (first Elasticsearch version that has it, query-time oversample factor)
INDEX_OPTION_TYPES: dict[str, tuple[tuple[int, int], float | None]] = {
    "hnsw": ((8, 0), None),
    "int8_hnsw": ((8, 12), 2.0),
    "int4_hnsw": ((8, 15), 2.0),
    "bbq_hnsw": ((8, 16), 3.0),
}
RESCORE_SINCE = (8, 18)  # query-time knn.rescore_vector: a technical preview on 8.18-9.0,
RESCORE_GA_SINCE = (9, 1)  # generally available from 9.1 (elastic/docs-content#995)
#: index_options types that are technical previews before a version: bbq_hnsw came in 8.16
#: marked experimental; lookalike treats it as a preview on every 8.x (see docs/elasticsearch.md)
PREVIEW_UNTIL: dict[str, tuple[int, int]] = {"bbq_hnsw": (9, 0)}
#: index.mapping.exclude_source_vectors: the cluster keeps dense vectors out of the stored
#: _source itself, so the mapping needs no _source.excludes and no _recovery_source copy
VECTORS_OUT_OF_SOURCE_SINCE = (9, 2)

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
    """How the dense_vector field is indexed (es_index_options, es_m, es_ef_construction).

    ``type`` "auto" (the default) stands for a choice made when the index is created,
    once the server's version and the model's dimension are known: see ``resolved``.
    """

    type: str = AUTO
    m: int = 16
    ef_construction: int = 100

    def __post_init__(self) -> None:
        if self.type != AUTO and self.type not in INDEX_OPTION_TYPES:
            raise ConfigError(
                f"es_index_options {self.type!r} is not supported: use auto or one of "
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

    def resolved(self, version: tuple[int, int, int], dims: int) -> IndexOptions:
        """The concrete options for a new index: "auto" becomes ``bbq_hnsw`` where it is
        generally available with cluster-side re-scoring (9.1+) and the vectors have at
        least 384 dimensions (one bit per dimension, 3x oversampled candidates re-scored
        against the float vectors), ``int8_hnsw`` elsewhere. Explicit types stay."""
        if self.type != AUTO:
            return self
        bbq = version[:2] >= BBQ_DEFAULT_SINCE and dims >= BBQ_DEFAULT_MIN_DIMS
        return replace(self, type="bbq_hnsw" if bbq else "int8_hnsw")

    def check_server(self, version: tuple[int, int, int]) -> None:
        if self.type == AUTO:
            return
        since = INDEX_OPTION_TYPES[self.type][0]
        if version[:2] < since:
            raise ConfigError(
                f"es_index_options {self.type} needs Elasticsearch {since[0]}.{since[1]} or newer; "
                f"this cluster runs {'.'.join(map(str, version))}. Choose int8_hnsw or hnsw.",
                field="es_index_options",
            )

    def check_dims(self, dims: int) -> None:
        """Elasticsearch's own limits, checked before an index is created."""
        if self.type == "bbq_hnsw" and dims < BBQ_MIN_DIMS:
            raise ConfigError(
                f"es_index_options bbq_hnsw needs vectors of at least {BBQ_MIN_DIMS} dimensions; "
                f"this model has {dims}. Choose int8_hnsw or hnsw.",
                field="es_index_options",
            )
        if self.type == "int4_hnsw" and dims % 2:
            raise ConfigError(
                f"es_index_options int4_hnsw needs an even number of dimensions; this model has "
                f"{dims}. Choose int8_hnsw or hnsw.",
                field="es_index_options",
            )

    def preview_on(self, version: tuple[int, int, int]) -> bool:
        """Whether this type is a technical preview on that server version."""
        until = PREVIEW_UNTIL.get(self.type)  # never for auto: it resolves to a GA type
        return until is not None and version[:2] < until

    @property
    def oversample(self) -> float | None:
        return INDEX_OPTION_TYPES[self.type][1] if self.type != AUTO else None

    def to_mapping(self) -> dict[str, Any]:
        if self.type == AUTO:
            raise ConfigError(
                "es_index_options auto must be resolved against the server and the model "
                "before an index is created (IndexOptions.resolved)",
                field="es_index_options",
            )
        return {"type": self.type, "m": self.m, "ef_construction": self.ef_construction}


def build_index_body(
    collection: str,
    model: ModelInfo,
    options: IndexOptions,
    server_version: tuple[int, int, int] = (8, 14, 0),
) -> dict[str, Any]:
    """The body of ``PUT /lookalike-<collection>.v1``: settings, mappings and the alias.

    How the vector stays out of the stored ``_source`` depends on the server. Before 9.2,
    ``_source.excludes``: then Elasticsearch also stores the unfiltered document as
    ``_recovery_source`` (the vector as JSON text) until merges prune it after the shard's
    retention lease (12 h by default). From 9.2, ``index.mapping.exclude_source_vectors``
    drops the vector from the stored source without that copy.

    cosine, not dot_product: the vectors are unit length, so for them Elasticsearch
    stores no magnitude and cosine costs what dot_product costs; but dot_product
    rejects any query vector that is not unit length, and a text model deployed in
    the cluster (clip-ViT-B-32-multilingual-v1 imported with eland ends in a Dense
    layer, no Normalize) produces such vectors. Both score (1 + cos) / 2.
    """
    index_settings: dict[str, Any] = {"codec": "best_compression"}
    source: dict[str, Any] = {"excludes": ["vector"]}
    if server_version[:2] >= VECTORS_OUT_OF_SOURCE_SINCE:
        index_settings["mapping"] = {"exclude_source_vectors": True}
        source = {}
    mappings: dict[str, Any] = {
        "dynamic": "strict",
        "_meta": {
            "lookalike": {
                "schema": SCHEMA_VERSION,
                "model": model.to_dict(),
                "vector_copy": "vec: float32 little-endian, base64",
                "vector_out_of_source": (
                    "_source.excludes" if source else "index.mapping.exclude_source_vectors"
                ),
            }
        },
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
    }
    if source:
        mappings = {"_source": source, **mappings}
    return {
        "settings": {"index": index_settings},
        "mappings": mappings,
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
