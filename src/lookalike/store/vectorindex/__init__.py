"""Vector indexes derived from a store's truth: an exact matrix and a saved HNSW file.

Modules: ``derived`` (DerivedIndex: base + delta + removed, kept in step with the
change log), ``ann_file`` (the saved HNSW and its float32 rescoring rows, written
to a temporary name and renamed), ``exact_matrix`` (a contiguous float32 matrix
searched exactly) and ``types`` (parameters, status, the source protocol).
"""

from __future__ import annotations

from lookalike.store.vectorindex.derived import DerivedIndex
from lookalike.store.vectorindex.types import IndexParams, IndexStatus, VectorSource

__all__ = ["DerivedIndex", "IndexParams", "IndexStatus", "VectorSource"]
