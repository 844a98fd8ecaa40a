"""The Embedder contract: one batch method per modality, L2-normalised float32 out.

Images handed to ``embed_images`` are RGB PIL images, already decoded by
``lookalike.images`` (usually 224-ready: shortest side 224, centre-cropped).
Loading is lazy and thread-safe; ``load()`` forces it so that missing weights
fail before any work starts (ModelNotAvailableError).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from lookalike.records import ModelInfo

__all__ = ["Embedder", "ModelStatus"]


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """The image model's id (what a store records)."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def info(self) -> ModelInfo:
        """Model id, dimension and preprocessing version of the image vectors."""
        ...

    def load(self) -> None:
        """Load both towers now (idempotent, thread-safe); raises ModelNotAvailableError."""
        ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, each row L2-normalised."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, each row L2-normalised, in the image vectors' space."""
        ...


@dataclass
class ModelStatus:
    """What ``lookalike models`` reports about one configured model."""

    role: str  # "image" or "text"
    name: str  # as configured: a hub name or a folder path
    location: str | None  # where the weights are (or were looked for)
    available: bool
    loads: bool | None = None  # None when loading was not tried
    runtime: str = "sentence-transformers"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "location": self.location,
            "available": self.available,
            "loads": self.loads,
            "runtime": self.runtime,
            "detail": self.detail,
            **self.extra,
        }
