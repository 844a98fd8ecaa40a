"""Vector indexes derived from a store's truth: an exact matrix and a saved HNSW file.

Modules: ``derived`` (DerivedIndex: base + delta + removed, kept in step with the
change log), ``build`` (a full build of the graph in checkpointed steps), ``ann_file``
(the saved HNSW graph of compact codes, written to a temporary name and renamed),
``exact_matrix`` (a contiguous float32 matrix searched exactly) and ``types``
(parameters, status, the source protocol, the codes).
"""

from __future__ import annotations

from lookalike.store.vectorindex.derived import DerivedIndex
from lookalike.store.vectorindex.types import IndexParams, IndexStatus, VectorSource

__all__ = ["DerivedIndex", "IndexParams", "IndexStatus", "VectorSource"]
