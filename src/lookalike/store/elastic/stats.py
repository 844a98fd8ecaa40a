"""Sizing facts of an Elasticsearch collection, read from the cluster's own answers.

``_stats`` gives documents and store size of the primaries (replicas would double
it); ``_disk_usage`` (a technical preview that reads every segment, so it needs
the 'manage' privilege and time) splits the bytes by field; the RAM projection
applies Elastic's published formulas (``project_ram``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lookalike.errors import ConfigError
from lookalike.records import ModelInfo, StoreStats
from lookalike.store.elastic.mapping import INDEX_OPTION_TYPES

__all__ = [
    "PROJECTION_SIZES",
    "build_stats",
    "disk_usage_details",
    "primaries",
    "project_ram",
    "ram_projection",
]

PROJECTION_SIZES = (1_000_000, 10_000_000)


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
    """RAM wanted for this many vectors, and 1M / 10M, by index_options type."""
    sizes = sorted({docs, *PROJECTION_SIZES})
    return {
        "formula": "Elastic 'Tune approximate kNN search': vectors by type + graph n*4*m",
        "m": m,
        "this_index": current,
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
