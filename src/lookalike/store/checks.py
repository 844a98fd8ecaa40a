"""The checks every backend and the Searcher share, written once.

A search window, a query vector and a stored vector are checked here, so the
embedded store, Elasticsearch and the Searcher accept and refuse the same
requests with the same errors (pinned by ``tests/store/test_contract.py``):

- ``check_window``: ``k`` a whole number from 1, ``offset`` from 0,
  ``offset + k`` at most ``MAX_WINDOW``, ``min_score`` a finite number in [-1, 1]
  (QueryError naming the field);
- ``unit_query_vector``: a 1-d, finite, non-zero vector of the collection's
  dimension, returned at unit length (QueryError, or ModelMismatchError for a
  vector of another dimension);
- ``mismatch_message``: the one wording of "this vector is not from this
  collection's model" and what to do about it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from lookalike.errors import ModelMismatchError, QueryError
from lookalike.records import ModelInfo

__all__ = [
    "MAX_K",
    "MAX_WINDOW",
    "check_window",
    "mismatch_message",
    "unit_query_vector",
]

#: the most results one search returns (the Searcher's limit; a store may be asked for more
#: internally, up to the window)
MAX_K = 1000
#: the deepest a search can page: offset + k (Elasticsearch caps num_candidates at 10,000)
MAX_WINDOW = 10_000


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_window(
    k: Any, offset: Any = 0, min_score: Any = None, *, max_k: int = MAX_WINDOW
) -> None:
    """QueryError unless ``k``, ``offset`` and ``min_score`` make a valid search window."""
    if not _whole(k) or not 1 <= int(k) <= max_k:
        raise QueryError(f"k must be a whole number from 1 to {max_k}, got {k!r}", field="k")
    if not _whole(offset) or int(offset) < 0:
        raise QueryError(
            f"offset must be a whole number, 0 or more, got {offset!r}", field="offset"
        )
    if int(offset) + int(k) > MAX_WINDOW:
        raise QueryError(f"offset + k must be at most {MAX_WINDOW}", field="offset")
    if min_score is not None and (
        isinstance(min_score, bool)
        or not isinstance(min_score, numbers.Real)
        or not math.isfinite(float(min_score))
        or not -1.0 <= float(min_score) <= 1.0
    ):
        raise QueryError(
            f"min_score must be a number between -1 and 1, got {min_score!r}",
            field="min_score",
        )


def mismatch_message(what: str, shape: tuple[int, ...], model: ModelInfo, collection: str) -> str:
    """``what`` (e.g. "the query vector") has ``shape`` but the collection holds another model's."""
    return (
        f"{what} has shape {shape}, but collection {collection!r} holds {model.dim}-d vectors "
        f"of {model.model_id}; embed with that model, or index into a new collection "
        "(`lookalike index --collection NEW ...`)"
    )


def unit_query_vector(vector: Any, model: ModelInfo | None, collection: str) -> np.ndarray:
    """``vector`` as a float32 unit vector, or a QueryError / ModelMismatchError saying why not.

    ``model`` None (an empty, unbound collection) skips the dimension check.
    """
    try:
        q = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise QueryError("the query vector is not numeric", field="vector") from exc
    if q.ndim != 1:
        raise QueryError(f"the query vector must be 1-d, got shape {q.shape}", field="vector")
    if model is not None and q.shape[0] != model.dim:
        raise ModelMismatchError(
            mismatch_message("the query vector", tuple(q.shape), model, collection)
        )
    if not np.isfinite(q).all():
        raise QueryError("the query vector contains NaN or infinite values", field="vector")
    norm = float(np.linalg.norm(q.astype(np.float64)))
    if norm == 0.0:
        raise QueryError("the query vector is all zeros", field="vector")
    return (q.astype(np.float64) / norm).astype(np.float32)
