"""The sizing report: the seed's sizing analysis, done for the user.

From a backend's raw ``StoreStats`` it derives bytes per document and per
dimension, and projects index size for larger collections. Projections scale
the measured bytes per document; while a collection is too small to measure
(< 100 documents, where fixed overheads dominate) they fall back to a
per-vector estimate of float32 vector plus metadata, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lookalike.records import StoreStats

__all__ = ["PROJECTION_SIZES", "SizingReport", "sizing_report"]

PROJECTION_SIZES = (10_000, 1_000_000, 10_000_000)
# float32 vector + ~300 bytes of metadata (path, hash, numbers) + row/index overhead
_ESTIMATE_OVERHEAD = 400
_MIN_MEASURED_DOCS = 100


@dataclass
class SizingReport:
    backend: str
    collection: str
    model_id: str | None
    documents: int
    dimensions: int
    image_bytes: int
    index_bytes: int
    bytes_per_document: float | None
    bytes_per_dimension: float | None
    projection_basis: str
    projections: dict[int, int]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "collection": self.collection,
            "model_id": self.model_id,
            "documents": self.documents,
            "dimensions": self.dimensions,
            "image_bytes": self.image_bytes,
            "index_bytes": self.index_bytes,
            "bytes_per_document": self.bytes_per_document,
            "bytes_per_dimension": self.bytes_per_dimension,
            "projection_basis": self.projection_basis,
            "projections": {str(n): b for n, b in self.projections.items()},
            "details": self.details,
        }


def sizing_report(stats: StoreStats) -> SizingReport:
    docs, dims = stats.documents, stats.dimensions
    per_doc = stats.index_bytes / docs if docs else None
    per_dim = stats.index_bytes / (docs * dims) if docs and dims else None
    found = stats.details.get("search")
    search: dict[str, Any] = found if isinstance(found, dict) else {}
    scale_per_dim = search.get("scale_disk_bytes_per_dim")
    if isinstance(scale_per_dim, (int, float)) and scale_per_dim > 0 and dims:
        # the backend knows what the structure at scale costs (the embedded store's HNSW
        # graph, absent from a small collection): project with that, as `search` does
        at_scale = scale_per_dim * dims
        basis = f"{at_scale:,.0f} bytes per document at scale: {search.get('scale_basis', '')}"
        projections = {n: round(at_scale * n) for n in PROJECTION_SIZES}
    elif per_doc is not None and docs >= _MIN_MEASURED_DOCS:
        basis = f"measured: {per_doc:,.0f} bytes per document in this collection"
        projections = {n: round(per_doc * n) for n in PROJECTION_SIZES}
    else:
        width = dims or 512
        estimate = 4 * width + _ESTIMATE_OVERHEAD
        basis = (
            f"estimated: {estimate:,} bytes per document "
            f"(float32 vector of {width} dims plus metadata); "
            f"index at least {_MIN_MEASURED_DOCS} images to measure it"
        )
        projections = {n: estimate * n for n in PROJECTION_SIZES}
    return SizingReport(
        backend=stats.backend,
        collection=stats.collection,
        model_id=stats.model.model_id if stats.model else None,
        documents=docs,
        dimensions=dims,
        image_bytes=stats.image_bytes,
        index_bytes=stats.index_bytes,
        bytes_per_document=per_doc,
        bytes_per_dimension=per_dim,
        projection_basis=basis,
        projections=projections,
        details=dict(stats.details),
    )


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"
