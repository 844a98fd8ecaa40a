"""The int8 indexing tower loaded without the reference model: a warm start for int8 CPUs.

``vision_int8`` checks its export at every load against vectors that the reference
runtime (sentence-transformers) computes for the check images, so each index run
paid the full reference load (5-6 s) before its first batch, which is all of the
fixed cost a warm start (``vision_saved``) removes on bf16 CPUs. The reference's
vectors for those images depend only on the weights and the versions that key the
export's cache folder, so they are recorded beside the export (``WARM``) the first
time the ordinary load checks it, together with the pixel normalisation the export
expects. A later load opens the export with ONNX Runtime, runs the same check
images and compares them with the recorded vectors at the same bar: the same check,
without importing sentence-transformers, transformers or even torch.

Only 224x224 RGB batches (what the decode workers hand the indexer) run here; any
other input loads the ordinary tower, which has the model's own processor.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.models.onnx_cache import ExportCache
from lookalike.models.vision_fast import check_images, min_cosine
from lookalike.models.vision_int8 import FILES, VARIANTS, Int8Vision, rejected_note
from lookalike.models.vision_saved import all_rgb_squares, embed_batches

__all__ = ["WARM", "Int8Warm", "open_warm", "save_warm"]

log = logging.getLogger(__name__)

#: the recorded check: normalisation, dimension and the reference's vectors
WARM = "image-int8-warm.json"


@dataclass(frozen=True)
class _Pixels:
    """What ``Int8Vision`` reads of a processor, from the recorded check."""

    image_mean: list[float]
    image_std: list[float]
    rescale_factor: float
    side: int

    @property
    def crop_size(self) -> dict[str, int]:
        return {"height": self.side, "width": self.side}

    def __call__(self, **_: Any) -> Any:  # only reached for images of another size
        raise ValueError(f"the warm int8 tower takes {self.side}x{self.side} RGB images only")


@dataclass
class Int8Warm:
    """The int8 export, checked against the recorded vectors: embeds 224x224 RGB images."""

    runner: Int8Vision
    dim: int
    side: int
    cosine: float
    path: Path
    precision: str = "int8"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def takes(self, images: Sequence[Image.Image]) -> bool:
        return all_rgb_squares(images, self.side)

    def embed(self, images: Sequence[Image.Image], batch_size: int, name: str) -> np.ndarray:
        """L2-normalised vectors, as ``Embedder.embed_images`` returns them."""
        return embed_batches(self._run, images, batch_size, name, self.dim, self.path)

    def _run(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self.lock:
            return self.runner(list(images))


def save_warm(cache: ExportCache, processor: Any, reference: np.ndarray) -> None:
    """Record the reference runtime's vectors for ``check_images()`` and the processor's
    normalisation beside the int8 export (once; best effort: without it, loads stay
    ordinary)."""
    if cache.has(WARM):
        return
    crop = getattr(processor, "crop_size", None)
    height = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
    body = {
        "image_mean": [float(x) for x in processor.image_mean],
        "image_std": [float(x) for x in processor.image_std],
        "rescale_factor": float(getattr(processor, "rescale_factor", 1 / 255)),
        "side": int(height) if height else 224,
        "dim": int(reference.shape[1]),
        "check": np.asarray(reference, dtype=np.float64).tolist(),
    }

    def make(tmp: Path) -> dict[str, Path]:
        out = tmp / WARM
        out.write_text(json.dumps(body), encoding="utf-8")
        return {WARM: out}

    try:
        cache.ensure(WARM, make)
    except Exception as exc:  # a read-only or full cache: later loads stay ordinary
        log.info("int8 warm start not recorded: %s: %s", type(exc).__name__, exc)


def open_warm(cache: ExportCache | None, bar: float) -> tuple[Int8Warm | None, str]:
    """The first int8 variant made and not rejected whose vectors for the check images
    match the recorded reference at cosine >= ``bar``; or (None, why not). Never raises:
    the caller loads the ordinary way instead."""
    if cache is None or not cache.has(WARM):
        return None, "no recorded check for the int8 export yet"
    try:
        body = json.loads(cache.path(WARM).read_text(encoding="utf-8"))
        pixels = _Pixels(
            [float(x) for x in body["image_mean"]],
            [float(x) for x in body["image_std"]],
            float(body["rescale_factor"]),
            int(body["side"]),
        )
        reference = np.asarray(body["check"], dtype=np.float64)
        dim = int(body["dim"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        cache.discard(WARM)
        return None, f"recorded int8 check unreadable ({type(exc).__name__}: {exc})"
    images = check_images()
    if reference.shape != (len(images), dim):
        cache.discard(WARM)
        return None, "recorded int8 check does not match the check images"
    for variant in VARIANTS:
        if cache.note(rejected_note(variant)) or not cache.has(FILES[variant]):
            continue
        path = cache.path(FILES[variant])
        try:
            runner = Int8Vision(path, pixels)
            cosine = min_cosine(runner(images), reference)
        except Exception as exc:  # damaged: the ordinary load decides what to do with it
            return None, f"{variant} int8 export did not run ({type(exc).__name__}: {exc})"
        if cosine < bar:  # the ordinary load checks it again, and rejects it if it must
            return None, f"{variant} int8 export: cosine {cosine:.5f} < {bar} at the warm check"
        return Int8Warm(runner, dim, pixels.side, cosine, path), (
            f"{variant} int8 export in {cache.folder}, cosine {cosine:.5f} to the recorded "
            "reference vectors"
        )
    return None, "no int8 export made and unrejected"
