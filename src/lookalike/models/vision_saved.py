"""The checked image tower, saved for the next process: a warm ``index`` starts in a second.

Loading the image tower the ordinary way imports sentence-transformers (and with it
transformers, scikit-learn...: about 5 s on a 2-core machine), reads the weights,
rounds them to bf16 and checks the fast path against the reference runtime, every
run. Yet none of it changes between runs of the same model on the same install.

So, once per model and version, the fast path that passed its load check (the CLIP
vision tower and projection, in the precision the CPU runs best) is traced with
TorchScript and saved, with its verdict (the precision, the cosine it reached
against the reference, the vector width and the pixel normalisation), in an
``ExportCache`` folder keyed by the weights' fingerprint, the torch version and the
planned precision. A later process loads that file with ``torch.jit.load`` (no
sentence-transformers, no transformers: about 0.2 s after importing torch) and
embeds 224x224 RGB images with it; the verdict is not recomputed, as the ONNX
query records are not (``lookalike.models.onnx_record``). Any other input, and any
file that does not load, goes back to the ordinary tower.

The traced module is the very computation that passed the check (same weights,
same dtype, same operations); ``check`` holds it to the same bar when it is made.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.models.onnx_cache import ExportCache, folder_fingerprint

__all__ = [
    "SavedVision",
    "all_rgb_squares",
    "embed_batches",
    "load_saved",
    "save_vision",
    "saved_cache",
]

log = logging.getLogger(__name__)

SAVE_VERSION = 1
MODULE = "vision.pt"
VERDICT = "vision.json"
AGREE = 0.9999  # the traced module against the fast path it was traced from


def saved_cache(root: Path, model_folder: Path, precision: str) -> ExportCache:
    """The cache folder of this model's saved tower for the planned ``precision``."""
    from lookalike.models.onnx_export import package_version

    folder = Path(model_folder).resolve()
    key = {
        "model": str(folder),
        "files": folder_fingerprint(folder),
        "kind": "clip-vision-torchscript",
        "version": SAVE_VERSION,
        "torch": package_version("torch"),
        "precision": precision,
    }
    name = folder.parent.parent.name if folder.parent.name == "snapshots" else folder.name
    return ExportCache(root, f"{name}-vision-saved", key)


@dataclass
class SavedVision:
    """A saved tower, loaded: embeds lists of ``side`` x ``side`` RGB images."""

    module: Any
    precision: str
    dim: int
    side: int
    mean: list[float]
    std: list[float]
    rescale: float
    cosine: float
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)

    def takes(self, images: Sequence[Image.Image]) -> bool:
        return all_rgb_squares(images, self.side)

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        stacked = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
        x = torch.from_numpy(stacked).permute(0, 3, 1, 2).to(torch.float32)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        pixels = ((x * self.rescale - mean) / std).to(dtype)
        with self.lock, torch.inference_mode():
            out: np.ndarray = self.module(pixels).float().numpy()
        return out

    def embed(self, images: Sequence[Image.Image], batch_size: int, name: str) -> np.ndarray:
        """L2-normalised vectors, as ``Embedder.embed_images`` returns them."""
        return embed_batches(self, images, batch_size, name, self.dim, self.path)


def all_rgb_squares(images: Sequence[Image.Image], side: int) -> bool:
    """Whether every image is ``side`` x ``side`` RGB: what the towers that load without the
    reference model take (the decode workers' output); anything else needs its processor."""
    return all(
        isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (side, side)
        for im in images
    )


def embed_batches(
    run: Callable[[Sequence[Image.Image]], np.ndarray],
    images: Sequence[Image.Image],
    batch_size: int,
    name: str,
    dim: int,
    path: Path,
) -> np.ndarray:
    """``run`` over ``images`` in batches, L2-normalised as ``Embedder.embed_images`` returns
    them; a failure is a ModelError naming the model and the file to delete (``path``), for
    the towers that load without the reference model (this one, ``vision_int8_warm``)."""
    from lookalike.errors import ModelError
    from lookalike.models.sentence import _normalise

    try:
        parts = [
            run(images[start : start + batch_size]) for start in range(0, len(images), batch_size)
        ]
    except Exception as exc:
        raise ModelError(
            f"the image model {name} failed on a batch of {len(images)} images "
            f"({exc.__class__.__name__}: {exc}); delete {path.parent} and retry",
            field="image_model",
        ) from exc
    return _normalise(np.concatenate(parts), len(images), dim, name)


def save_vision(cache: ExportCache, runner: Any, precision: str, cosine: float, dim: int) -> str:
    """Trace ``runner`` (a ``vision_fast.Vision`` that passed its load check) and save it
    with its verdict; says what it did. A tower that cannot be traced, or whose trace
    disagrees, is not saved: every run then loads the ordinary way, as before."""
    try:
        path = _save(cache, runner, precision, cosine, dim)
    except Exception as exc:  # an unforeseen model variant
        log.warning("image tower not saved: %s: %s", type(exc).__name__, exc)
        return f"image tower not saved ({type(exc).__name__}: {exc})"
    return f"image tower saved in {path.parent} ({precision}, cosine {cosine:.5f})"


def _save(cache: ExportCache, runner: Any, precision: str, cosine: float, dim: int) -> Path:
    import torch

    class _Tower(torch.nn.Module):
        def __init__(self, vision: Any, projection: Any) -> None:
            super().__init__()
            self.vision, self.projection = vision, projection

        def forward(self, pixels: Any) -> Any:
            return self.projection(self.vision(pixel_values=pixels).pooler_output)

    tower = _Tower(runner.vision, runner.projection).eval()
    sample = torch.zeros((2, 3, runner.side, runner.side), dtype=runner.dtype)
    verdict = {
        "precision": precision,
        "cosine": cosine,
        "dim": dim,
        "side": runner.side,
        "mean": [float(v) for v in runner.mean.flatten()],
        "std": [float(v) for v in runner.std.flatten()],
        "rescale": runner.rescale,
    }

    def make(tmp: Path) -> dict[str, Path]:
        from lookalike.models.vision_fast import check_images, min_cosine

        images = check_images()
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks it fixes
            traced = torch.jit.trace(tower, sample, check_trace=False)
            agree = min_cosine(
                traced(runner.pixels(images).to(runner.dtype)).float().numpy(), runner(images)
            )
        if agree < AGREE:
            raise RuntimeError(f"the traced tower disagrees with the checked one ({agree:.6f})")
        traced.save(str(tmp / MODULE))
        (tmp / VERDICT).write_text(json.dumps(verdict), encoding="utf-8")
        return {VERDICT: tmp / VERDICT, MODULE: tmp / MODULE}  # the module last: it marks done

    path, _ = cache.ensure(MODULE, make)
    return path


def load_saved(cache: ExportCache) -> SavedVision | None:
    """The saved tower of this cache folder, or None (none saved, or it does not load:
    then it is discarded, and the ordinary tower saves a new one)."""
    module_path, verdict_path = cache.path(MODULE), cache.path(VERDICT)
    if not (module_path.is_file() and verdict_path.is_file()):
        return None
    try:
        import torch

        verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
        module = torch.jit.load(str(module_path), map_location="cpu").eval()
        return SavedVision(
            module,
            str(verdict["precision"]),
            int(verdict["dim"]),
            int(verdict["side"]),
            [float(v) for v in verdict["mean"]],
            [float(v) for v in verdict["std"]],
            float(verdict["rescale"]),
            float(verdict["cosine"]),
            module_path,
        )
    except Exception as exc:  # a damaged file: the ordinary tower answers and saves again
        log.warning("saved image tower %s does not load (%s); loading the model", module_path, exc)
        cache.discard(MODULE)
        return None
