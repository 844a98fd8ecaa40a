"""Weighted parts of a composed query and how they combine (Rocchio-style).

A query is positives minus negatives: each side is the weighted mean of its
parts' unit vectors, the negative side is scaled by ``negative_weight``, and the
difference is re-normalised. That is Rocchio relevance feedback with
alpha = 1 and beta = ``negative_weight``: "more like these, less like those".

Any part of a ``Query`` may be given plainly (weight 1) or wrapped in
``Weighted(value, weight)``; a heavier part pulls the query towards itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from lookalike.errors import QueryError

__all__ = ["MAX_PARTS", "MAX_WEIGHT", "Weighted", "check_weight", "rocchio", "unweight"]

T = TypeVar("T")

#: the most parts one query may have (all kinds, positive and negative together)
MAX_PARTS = 64
MAX_WEIGHT = 100.0


@dataclass(frozen=True)
class Weighted(Generic[T]):
    """A query part with a weight other than 1: ``Weighted("night", 2.0)``."""

    value: T
    weight: float = 1.0


def check_weight(weight: Any, field: str = "weight") -> float:
    """A weight must be a finite number above 0 and at most ``MAX_WEIGHT``."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise QueryError(f"a weight must be a number, got {weight!r}", field=field)
    value = float(weight)
    if not math.isfinite(value) or not 0.0 < value <= MAX_WEIGHT:
        raise QueryError(
            f"a weight must be above 0 and at most {MAX_WEIGHT:g}, got {weight!r}", field=field
        )
    return value


def unweight(parts: Sequence[Any], field: str) -> tuple[list[Any], list[float]]:
    """Split parts into their values and weights (plain parts weigh 1)."""
    values: list[Any] = []
    weights: list[float] = []
    for part in parts:
        if isinstance(part, Weighted):
            values.append(part.value)
            weights.append(check_weight(part.weight, field))
        else:
            values.append(part)
            weights.append(1.0)
    return values, weights


def weighted_mean(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    return np.asarray((w[:, None] * matrix).sum(axis=0) / w.sum(), dtype=np.float32)


def rocchio(
    positives: Sequence[np.ndarray],
    positive_weights: Sequence[float],
    negatives: Sequence[np.ndarray],
    negative_weights: Sequence[float],
    negative_weight: float,
) -> np.ndarray:
    """The query vector: weighted mean of positives minus ``negative_weight`` times that of
    negatives, normalised. Raises ``QueryError`` when the two cancel out."""
    vec = weighted_mean(positives, positive_weights)
    if negatives:
        vec = vec - negative_weight * weighted_mean(negatives, negative_weights)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm < 1e-6:
        raise QueryError("the query cancels itself out; use fewer negatives", field="negative")
    return np.asarray(vec / norm, dtype=np.float32)
