"""Embedding models: the Embedder contract, weight resolution and the runtimes.

Importing this package is cheap: torch and sentence-transformers load only
when a model does.
"""

from lookalike.models.base import Embedder, ModelStatus
from lookalike.models.factory import RUNTIMES, create_embedder, model_statuses, runtime_name
from lookalike.models.loading import (
    CLIP_TEXT,
    ResolvedModel,
    canonical_name,
    model_id_for,
    resolve_model,
)
from lookalike.models.sentence import SentenceTransformerEmbedder

__all__ = [
    "CLIP_TEXT",
    "RUNTIMES",
    "Embedder",
    "ModelStatus",
    "ResolvedModel",
    "SentenceTransformerEmbedder",
    "canonical_name",
    "create_embedder",
    "model_id_for",
    "model_statuses",
    "resolve_model",
    "runtime_name",
]
