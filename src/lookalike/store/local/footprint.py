"""What a local collection's search keeps in memory, what it stores on disk, and both
projected to larger collections (``lookalike stats``).

Search keeps resident the derived index only: below ``exact_threshold`` documents a
float32 matrix of every vector; from it on the HNSW graph with its codes (one sign bit
per dimension from 384 dimensions, memory-mapped from its saved file) and the small
float32 delta of vectors added since it was saved. The vectors themselves stay in
``store.db`` and each search reads its few hundred candidates from there through the
page cache (shared and reclaimable, not counted). Disk is everything in the folder
but the thumbnail cache: the database (documents, vectors, change log, SQLite indexes)
and the saved graph.

Projections scale the measured per-vector bytes (database, graph). The database's are
SQLite's own accounting (pages in use, write-ahead log included, free pages and each
table's first page left out), measured once the collection has 2,000 documents: below
that the file is mostly fixed overhead and a write-ahead log that a checkpoint will fold
in, and dividing it by the documents overstated 10M-image projections up to 2x. Smaller
collections (and graphs not saved yet) use the estimates below and say so.
"""

from __future__ import annotations

from typing import Any

from lookalike.store.vectorindex.types import IndexParams, IndexStatus

__all__ = ["SCALE_SIZES", "footprint", "graph_bytes_per_vector", "vector_row_bytes"]

SCALE_SIZES = (10_000_000, 100_000_000)
_MIN_MEASURED = 100  # the graph's bytes per vector (a saved graph has no fixed overhead)
_MIN_MEASURED_DB = 2_000
#: a document's metadata row, its change-log row and SQLite's indexes on them, measured
#: with bench/search.py's records (paths of ~30 characters, a sha256): about 380 bytes
_META_ESTIMATE = 380
#: SQLite's bytes around a vectors row: cell pointer, payload and rowid varints, record
#: header, the CRC; and a table leaf page's header
_ROW_OVERHEAD, _LEAF_HEADER = 18, 8


def vector_row_bytes(dim: int, precision: str, page_size: int) -> float:
    """What one row of the vectors table takes in store.db: whole rows fit in a page, so
    a 16 KiB page holds 7 float32 rows of 512-d (2,341 B each, not 2,048)."""
    row = dim * (2 if precision == "float16" else 4) + _ROW_OVERHEAD
    per_page = max(1, (page_size - _LEAF_HEADER) // row)
    return page_size / per_page if row <= page_size - _LEAF_HEADER else float(row)


def graph_bytes_per_vector(dim: int, kind: str, connectivity: int) -> int:
    """An HNSW node in usearch: its code, 2M base-layer links of 4 bytes, key and level
    overhead (measured at 512-d, M=10: b1 165 bytes, int8 613 bytes)."""
    per_dim = {"b1": 1 / 8, "i8": 1, "f16": 2, "bf16": 2, "f32": 4}.get(kind, 4)
    return int(-(-dim * per_dim // 1)) + 8 * connectivity + 24


def footprint(
    *,
    documents: int,
    dim: int,
    params: IndexParams,
    status: IndexStatus,
    db_bytes: int,
    graph_bytes: int,
    other_bytes: int,
    precision: str = "float32",
    db_used_bytes: int | None = None,
    page_size: int = 16384,
) -> dict[str, Any]:
    """RAM and disk per dimension now, and projected for SCALE_SIZES documents;
    ``precision`` is how store.db keeps the vectors (float32, or float16: 2 bytes),
    ``db_used_bytes`` the database's pages in use less each table's first (default: its
    files' size), ``page_size`` its page size."""
    p = params.resolved(dim)
    hnsw = status.kind == "hnsw" or (
        status.kind == "none" and documents >= max(1, p.exact_threshold)
    )
    cells = documents * dim
    graph_per_vec: float = graph_bytes_per_vector(dim, p.dtype, p.connectivity)
    graph_basis = "estimated"
    if hnsw and graph_bytes and status.base_size >= _MIN_MEASURED:
        graph_per_vec, graph_basis = graph_bytes / status.base_size, "measured"
    elif hnsw and graph_bytes and status.kind == "none" and documents >= _MIN_MEASURED:
        graph_per_vec, graph_basis = graph_bytes / documents, "measured"
    delta_ram = status.delta_size * dim * 4
    ram = (graph_bytes + delta_ram) if hnsw else documents * dim * 4
    disk = db_bytes + graph_bytes + other_bytes
    db_per_vec = vector_row_bytes(dim, precision, page_size) + _META_ESTIMATE
    db_basis = "estimated"
    if documents >= _MIN_MEASURED_DB:
        used = db_bytes if db_used_bytes is None else db_used_bytes
        db_per_vec, db_basis = used / documents, "measured"
    over = p.overfetch or 1
    picked = (
        f"the best {over} of {over * p.rerank} codes per hit by the query"
        if p.dtype == "b1" and p.rerank > 1
        else f"{over} candidates per hit"
    )
    structure = (
        f"HNSW graph of {p.dtype} codes (M={p.connectivity}), {picked} rescored exactly "
        f"from the {precision} vectors in store.db"
        if hnsw
        else f"exact search over a float32 matrix (under {p.exact_threshold:,} documents)"
    )
    scale = {
        str(n): {
            "ram_bytes": round(graph_per_vec * n),
            "disk_bytes": round((db_per_vec + graph_per_vec) * n),
        }
        for n in SCALE_SIZES
    }
    return {
        "structure": structure,
        "ram_bytes": ram,
        "ram_bytes_per_dim": ram / cells if cells else None,
        "disk_bytes": disk,
        "disk_bytes_per_dim": disk / cells if cells else None,
        "scale": scale,
        "scale_ram_bytes_per_dim": graph_per_vec / dim if dim else None,
        "scale_disk_bytes_per_dim": (db_per_vec + graph_per_vec) / dim if dim else None,
        "scale_basis": (
            f"HNSW graph {graph_per_vec:,.0f} B per vector ({graph_basis}), database "
            f"{db_per_vec:,.0f} B per vector ({db_basis})"
        ),
    }
