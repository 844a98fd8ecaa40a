"""Finding and making the fast runtime's query exports (see ``lookalike.models.onnx_query``).

Kept apart from ``fast_torch`` so that the embedder only asks: where would each
tower's export be (without loading anything), which exports are still to be made,
and make the image one from a loaded tower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.models import onnx_image, onnx_query
from lookalike.models.loading import resolve_model
from lookalike.models.onnx_cache import ExportCache
from lookalike.models.vision_fast import check_images

__all__ = ["export_image_tower", "locate_cache", "pending_exports"]


def locate_cache(
    root: Path | None,
    name: str,
    role: str,
    cache_folder: str | None,
    cache_for: Callable[[Path], ExportCache],
) -> ExportCache | None:
    """The export cache of model ``name`` under ``root``, found without loading or
    downloading anything; None when there is no root or the weights are not on disk
    (loading the model is what reports that)."""
    if root is None:
        return None
    try:
        resolved = resolve_model(name, cache_folder=cache_folder, role=role, allow_download=False)
    except LookalikeError:
        return None
    return cache_for(resolved.path) if resolved.path is not None else None


def pending_exports(folders: Mapping[str, Path | None]) -> list[str]:
    """The roles ("text", "image") whose folder has no recorded export yet. An image
    export that failed its check in every precision is not pending: it is not retried."""
    pending = []
    for role, folder in folders.items():
        manifest = onnx_query.TEXT_MANIFEST if role == "text" else onnx_query.IMAGE_MANIFEST
        if folder is None or (folder / manifest).is_file():
            continue
        tried = [folder / f"image-{p}.rejected" for p in onnx_image.PRECISIONS]
        if role == "text" or not all(note.is_file() for note in tried):
            pending.append(role)
    return pending


def export_image_tower(
    cache: ExportCache,
    tower: Any,
    reference: Callable[[Any, list[Any]], np.ndarray],
    *,
    bars: Mapping[str, float],
    threads: int | None,
) -> str:
    """Export a loaded fp32 CLIP image tower for torch-free queries; why, or which file.

    ``reference`` is the reference runtime's encoder (tower, images) -> vectors.
    """
    module = tower.model[0]
    clip: Any = getattr(module, "auto_model", None)
    processor = getattr(getattr(module, "processor", None), "image_processor", None)
    if not all(hasattr(clip, a) for a in ("vision_model", "visual_projection")) or not all(
        hasattr(processor, a) for a in ("image_mean", "image_std")
    ):
        return "not a CLIP vision tower the ONNX export knows"
    images = check_images()
    vectors = reference(tower, list(images))
    with tower.lock:
        _, why = onnx_image.export_image(
            cache, clip.vision_model, clip.visual_projection, processor, images, vectors,
            bars=bars, threads=threads,
        )  # fmt: skip
    return why
