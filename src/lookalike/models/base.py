"""The Embedder contract: one batch method per modality, L2-normalised float32 out.

Images handed to ``embed_images`` are RGB PIL images, already decoded by
``lookalike.images`` (usually 224-ready: shortest side 224, centre-cropped).
Loading is lazy and thread-safe; ``load()`` forces it so that missing weights
fail before any work starts (ModelNotAvailableError).

Optional abilities are declared here with defaults, never probed with
``hasattr``: a runtime that can do more (load one tower alone, tell whether its
weights are on disk without loading them, say which path runs and why, export
its text tower ahead of the first query) overrides them. Subclass ``Embedder``
to inherit the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from lookalike.image_prep import CLIP_PREP, ImagePrep
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

    # -- optional abilities, with defaults -------------------------------------------------

    @property
    def preprocess(self) -> str | None:
        """The image preprocessing version the vectors depend on; None when unknown."""
        return None

    @property
    def text_dim(self) -> int:
        """Width of the text vectors (the image vectors' unless a runtime says otherwise)."""
        return self.dim

    def load_images(self) -> None:
        """Load what indexing needs (by default: everything)."""
        self.load()

    def load_texts(self) -> None:
        """Load what text queries need (by default: everything)."""
        self.load()

    def weights_on_disk(self) -> bool:
        """Whether the image weights are here without loading or downloading them; False when
        the runtime cannot tell (callers then load to find out)."""
        return False

    def runtime_for(self, role: str) -> tuple[str, str] | None:
        """(runtime, why) for the "image" or "text" tower, or None when there is one path."""
        return None

    def text_export_pending(self) -> bool:
        """Whether loading the text tower will first export it (a one-off cost worth saying)."""
        return False

    @property
    def image_prep(self) -> ImagePrep:
        """How images are resized and cropped for this model (CLIP's by default)."""
        return CLIP_PREP

    def query_exports_pending(self) -> list[str]:
        """The towers ("text", "image") whose torch-free query export is still to be made."""
        return []

    def prepare_queries(self) -> None:
        """Make the query exports now (after indexing), so the first query is fast."""
        return None

    def warm_start_pending(self) -> bool:
        """Whether ``prepare_warm_start`` has something to save for the next process."""
        return False

    def prepare_warm_start(self) -> str:
        """Save what lets the next process load the image tower fast; says what it did."""
        return ""


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
