"""Sizing facts of an Elasticsearch collection, read from the cluster's own answers.

``_stats`` gives documents and store size of the primaries (replicas would double
it); ``_disk_usage`` (a technical preview that reads every segment, so it needs
the index privilege 'manage' and time; sent with ``flush=false`` so that asking
for statistics never forces a Lucene commit) splits the bytes by field; the RAM
projection applies Elastic's published formulas (``project_ram``).

The size of a fresh index is not its steady size. Before 9.2 the mapping keeps the
vector out of ``_source`` with ``_source.excludes``, and then Elasticsearch also stores
the unfiltered document as ``_recovery_source`` (the vector as JSON text) until merges
prune it, after the shard's retention lease (12 h by default). ``sizing`` states both
figures, with the layout and versions they apply to, and the cluster's own
``_recovery_source`` bytes when ``_disk_usage`` could run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lookalike.errors import ConfigError
from lookalike.records import ModelInfo, StoreStats
from lookalike.store.elastic.mapping import (
    INDEX_OPTION_TYPES,
    PREVIEW_UNTIL,
    RESCORE_GA_SINCE,
)

__all__ = [
    "EXPECTED_BYTES_PER_DIMENSION",
    "PROJECTION_SIZES",
    "build_stats",
    "describe",
    "previews",
    "sizing",
    "sizing_details",
    "disk_usage_details",
    "primaries",
    "project_ram",
    "ram_projection",
]

PROJECTION_SIZES = (1_000_000, 10_000_000, 100_000_000)

#: bytes per dimension of a 512-d int8_hnsw collection (docs/elasticsearch.md, "Sizing"):
#: steady = vectors, graph, _source and keywords; _recovery_source measured by
#: ``python -P bench/es_source_size.py`` (zstd, as best_compression stores fields)
EXPECTED_BYTES_PER_DIMENSION = {"steady": 9.9, "recovery_source": 10.3}
EXCLUDES_LAYOUT = "_source.excludes"


def project_ram(index_options: str, dims: int, n: int, m: int = 16) -> int:
    """Bytes of RAM (page cache) the HNSW search structures of ``n`` vectors want, by Elastic's
    published estimates ("Tune approximate kNN search: ensure data nodes have enough memory"):

    - vectors: ``hnsw`` (float) n*dims*4; ``int8_hnsw`` n*(dims+4); ``int4_hnsw`` n*(dims/2+4);
      ``bbq_hnsw`` n*(dims/8+14);
    - graph: n*4*m.

    Quantized types keep the float vectors on disk too, read only when rescoring.
    """
    if index_options not in INDEX_OPTION_TYPES:
        raise ConfigError(f"unknown index_options {index_options!r}", field="es_index_options")
    if dims <= 0 or n < 0 or m <= 0:
        raise ConfigError("project_ram needs dims > 0, n >= 0 and m > 0", field="es_index_options")
    per_vector = {
        "hnsw": dims * 4,
        "int8_hnsw": dims + 4,
        "int4_hnsw": math.ceil(dims / 2) + 4,
        "bbq_hnsw": math.ceil(dims / 8) + 14,
    }[index_options]
    return n * per_vector + n * 4 * m


def build_stats(
    collection: str,
    model: ModelInfo,
    facts: Mapping[str, int],
    mapping: Mapping[str, Any],
    disk_usage: dict[str, Any],
    details: dict[str, Any],
) -> StoreStats:
    """StoreStats from the cluster's facts (``IndexHandle.size_facts``) and the index mapping."""
    docs, store_bytes, dim = facts["docs"], facts["store"], model.dim
    vector = (mapping.get("properties") or {}).get("vector") or {}
    opts = dict(vector.get("index_options") or {})
    details.update(
        {
            "index_options": opts,
            "similarity": vector.get("similarity", "cosine"),
            "deleted_documents": facts["deleted"],
            "bytes_per_document": store_bytes / docs if docs else None,
            "bytes_per_dimension": store_bytes / (docs * dim) if docs else None,
            "ram_projection": ram_projection(
                dim, docs, int(opts.get("m", 16)), str(opts.get("type", "int8_hnsw"))
            ),
            "disk_usage": disk_usage,
        }
    )
    return StoreStats(
        "elasticsearch", collection, docs, dim, facts["image_bytes"], store_bytes, model, details
    )


def sizing(
    layout: str, usage: Mapping[str, Any], store_bytes: int, docs: int, dims: int
) -> dict[str, Any]:
    """Fresh and steady-state bytes per dimension for this index's layout, and the
    ``_recovery_source`` bytes the cluster measured, if any."""
    steady = EXPECTED_BYTES_PER_DIMENSION["steady"]
    if layout == EXCLUDES_LAYOUT:
        expected = {
            "fresh": round(steady + EXPECTED_BYTES_PER_DIMENSION["recovery_source"], 1),
            "steady_state": steady,
            "applies_to": "indexes created on Elasticsearch 8.14-9.1 (_source.excludes): "
            "_recovery_source holds the unfiltered document until merges prune it, after "
            "the retention lease (12 h by default)",
        }
    else:
        expected = {
            "fresh": steady,
            "steady_state": steady,
            "applies_to": "indexes created on Elasticsearch 9.2+ "
            "(index.mapping.exclude_source_vectors): no _recovery_source copy",
        }
    expected["basis"] = "512-d vectors, int8_hnsw, m 16 (docs/elasticsearch.md)"
    out: dict[str, Any] = {"vector_out_of_source": layout, "expected_bytes_per_dimension": expected}
    fields = usage.get("field_bytes") if usage.get("available") else None
    if isinstance(fields, Mapping) and docs and dims:
        recovery = int(fields.get("_recovery_source", 0))
        out["recovery_source_bytes"] = recovery
        out["bytes_per_dimension_without_recovery_source"] = (store_bytes - recovery) / (
            docs * dims
        )
    return out


def describe(index_type: str, version: tuple[int, int, int], rescoring: str) -> dict[str, Any]:
    """Who re-scores and which technical previews the collection uses, for ``stats``."""
    return {"rescoring": rescoring, "technical_previews": previews(index_type, version, rescoring)}


def sizing_details(
    mapping: Mapping[str, Any],
    usage: Mapping[str, Any],
    facts: Mapping[str, int],
    dims: int,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """``sizing`` for the index's layout (from its ``_meta``), and the notes that
    ``lookalike stats`` prints: the previews in use and the expected sizes."""
    meta = (mapping.get("_meta") or {}).get("lookalike") or {}
    layout = str(meta.get("vector_out_of_source") or EXCLUDES_LAYOUT)
    found = sizing(layout, usage, facts["store"], facts["docs"], dims)
    expected = found["expected_bytes_per_dimension"]
    notes = [
        *details.get("technical_previews", ()),
        f"expected about {expected['fresh']} bytes/dimension fresh and "
        f"{expected['steady_state']} in steady state for {expected['applies_to']}",
    ]
    return {"sizing": found, "notes": notes}


def previews(index_type: str, version: tuple[int, int, int], rescoring: str) -> list[str]:
    """The technical-preview features this collection uses on this server, in words."""
    out: list[str] = []
    until = PREVIEW_UNTIL.get(index_type)
    if until is not None and version[:2] < until:
        out.append(
            f"index_options {index_type} is a technical preview before Elasticsearch "
            f"{until[0]}.{until[1]}"
        )
    if rescoring == "cluster" and version[:2] < RESCORE_GA_SINCE:
        out.append(
            "knn.rescore_vector is a technical preview on Elasticsearch 8.18-9.0 "
            "(chosen with es_rescore = cluster)"
        )
    return out


def primaries(body: Mapping[str, Any]) -> dict[str, int]:
    """Documents, deleted documents and store bytes of the primary shards, over all indices."""
    out = {"docs": 0, "deleted": 0, "store": 0}
    for entry in (body.get("indices") or {}).values():
        prim = entry.get("primaries") or {}
        out["docs"] += int((prim.get("docs") or {}).get("count", 0))
        out["deleted"] += int((prim.get("docs") or {}).get("deleted", 0))
        out["store"] += int((prim.get("store") or {}).get("size_in_bytes", 0))
    return out


def ram_projection(dims: int, docs: int, m: int, current: str) -> dict[str, Any]:
    """RAM wanted for this many vectors, and 1M / 10M / 100M, by index_options type, and
    per dimension of one vector for the type in use."""
    sizes = sorted({docs, *PROJECTION_SIZES})
    known = current in INDEX_OPTION_TYPES and dims > 0
    return {
        "formula": "Elastic 'Tune approximate kNN search': vectors by type + graph n*4*m",
        "m": m,
        "this_index": current,
        "this_index_bytes_per_dimension": (
            project_ram(current, dims, 1, m) / dims if known else None
        ),
        "bytes": {
            t: {str(n): project_ram(t, dims, n, m) for n in sizes} for t in INDEX_OPTION_TYPES
        },
    }


def disk_usage_details(body: Mapping[str, Any], docs: int, dims: int) -> dict[str, Any]:
    """Bytes per field from a ``_disk_usage`` answer, with the per-dimension view of the vectors."""
    fields: dict[str, int] = {}
    for name, entry in body.items():
        if name.startswith("_") or not isinstance(entry, Mapping):
            continue
        for field, usage in (entry.get("fields") or {}).items():
            if isinstance(usage, Mapping):
                fields[field] = fields.get(field, 0) + int(usage.get("total_in_bytes", 0))
    vector_bytes = sum(b for f, b in fields.items() if f == "vector" or f.startswith("vector."))
    return {
        "available": True,
        "field_bytes": dict(sorted(fields.items(), key=lambda kv: -kv[1])),
        "vector_index_bytes_per_dimension": vector_bytes / (docs * dims) if docs and dims else None,
        "source_bytes_per_document": fields.get("_source", 0) / docs if docs else None,
    }
