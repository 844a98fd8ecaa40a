"""The CLIP image tower in int8 for indexing: ONNX Runtime, statically quantised, checked.

Why: on a CPU with VNNI but no AMX (AMD Zen 4, Intel Ice Lake / Cascade Lake) int8
matrix products run about twice as many operations per cycle as bf16 ones. Measured
on the 2-core AMD EPYC (AVX512-BF16 and VNNI), random-weight ViT-B/32, batch 32:
torch bf16 74 images/s, ONNX Runtime dynamic int8 84, static int8 100; at batch 1,
42, 59 and 70. On AMX, torch bf16 is faster than either (125 against 101 images/s),
so ``lookalike.models.cpu.choose_precision`` takes int8 only where VNNI is and AMX is
not.

* Two variants, from one fp32 export: static quantisation (activation ranges fixed
  from calibration images, QOperator format, int8 weights per channel) beats dynamic
  (ranges measured at every call) because nothing is measured at run time, but it is
  the more fragile: ranges that do not fit an image clip it (on the tiny test CLIP,
  static reached cosine 0.994, dynamic 0.9999; on random ViT-B/32, 0.9991 and 0.9998).
  The calibration images are fixed and deterministic (``calibration_images``), so the
  same weights always give the same file, whatever images a collection holds.
* Trained CLIP models have activation outliers that int8 may not survive. When the
  files are made, each variant is checked against the reference runtime on held-out
  images (``held_out_images``, cosine >= the int8 bar); one that fails is discarded and
  noted as rejected in its cache folder (not tried again for these weights and
  versions). At every load the first variant left (static, then dynamic) is checked
  again on the check images, and the fast runtime falls back to bf16 or fp32, saying
  why, when none is left or passes.
* Making the export (torch's ONNX export, then calibration) takes seconds, so it is
  never made on the critical path of an index run: the fast runtime makes it after
  a run (``FastTorchEmbedder.prepare_queries``, which ``lookalike index`` calls) and
  the next run picks it up.
* ONNX Runtime fixes a session's threads when it opens it; the runner keeps one
  session per thread count, following torch's intra-op threads, which the indexer's
  core split sets per batch (``lookalike.core_split``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.models.onnx_cache import ExportCache
from lookalike.models.vision_fast import SIDE, check_images, min_cosine

__all__ = [
    "FILE",
    "FILES",
    "KIND",
    "VARIANTS",
    "Int8Vision",
    "calibration_images",
    "held_out_images",
    "ready",
    "rejected_note",
    "ceiling_sessions",
    "ensure_int8",
    "int8_cache",
    "make_int8",
    "open_int8",
    "pending",
]

log = logging.getLogger(__name__)

KIND = "clip-vision-int8"
#: tried in this order at load; both made at once, each kept only if it passes its check
VARIANTS = ("static", "dynamic")
FILES = {v: f"image-int8-{v}.onnx" for v in VARIANTS}
FILE = FILES["static"]
_FP32 = "image-fp32.onnx"
_INPUT = "pixel_values"
_CALIBRATION_SEED = 20240601
_HELD_OUT_SEED = 4099
_CALIBRATION_COUNT = 14


def rejected_note(variant: str) -> str:
    return f"image-int8-{variant}.rejected"


def int8_cache(root: Path, model_folder: Path) -> ExportCache:
    """The indexing int8 export's folder under ``root`` (keyed as the other exports are)."""
    from lookalike.models.onnx_text import text_cache

    return text_cache(root, model_folder, KIND)


def calibration_images(count: int = _CALIBRATION_COUNT) -> list[Image.Image]:
    """Fixed, photo-like 224x224 images (smooth colour fields with grain) and the check
    images: the activation ranges come from these, never from the user's files."""
    return list(check_images()) + _photo_like(count, _CALIBRATION_SEED)


def held_out_images(count: int = 24) -> list[Image.Image]:
    """Fixed images the calibration never saw, for the check when the files are made."""
    return _photo_like(count, _HELD_OUT_SEED)


def _photo_like(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        cells = int(rng.integers(2, 9))
        coarse = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), "RGB")
        base = np.asarray(coarse.resize((SIDE, SIDE), Image.Resampling.BICUBIC), np.int16)
        grain = rng.integers(-16, 17, (SIDE, SIDE, 1))
        out.append(Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB"))
    return out


class _Normalise:
    """CLIP's pixel normalisation in numpy: (n, 3, side, side) float32 from 224x224 RGB."""

    def __init__(self, processor: Any) -> None:
        self.mean = np.asarray(processor.image_mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(processor.image_std, dtype=np.float32).reshape(1, 3, 1, 1)
        self.rescale = float(getattr(processor, "rescale_factor", 1 / 255))
        # (x * rescale - mean) / std == x * scale + shift: one multiply-add per pixel
        self.scale = (self.rescale / self.std).astype(np.float32)
        self.shift = (-self.mean / self.std).astype(np.float32)

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        stacked = np.stack([np.asarray(i, dtype=np.uint8) for i in images])
        n, height, width, _ = stacked.shape
        # One pass from the (n, h, w, 3) bytes into the contiguous (n, 3, h, w) floats:
        # 4 ms per 32 images, against 18-46 ms converting, then transposing with a copy.
        x = np.empty((n, 3, height, width), dtype=np.float32)
        np.multiply(stacked.transpose(0, 3, 1, 2), self.scale, out=x)
        x += self.shift
        return x


def make_int8(vision: Any, projection: Any, processor: Any) -> Callable[[Path], dict[str, Path]]:
    """The cache's maker: export the fp32 tower to ONNX, then quantise it both ways
    (statically on the calibration images, and dynamically). ``vision``/``projection``
    are the fp32 torch modules."""

    def make(tmp: Path) -> dict[str, Path]:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        from lookalike.models.onnx_export import _quiet
        from lookalike.models.onnx_image import export_vision

        fp32 = tmp / _FP32
        export_vision(vision, projection, fp32)
        pixels = _Normalise(processor)(calibration_images())

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.batches = iter([{_INPUT: pixels[i : i + 4]} for i in range(0, len(pixels), 4)])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.batches, None)

        from lookalike.models.onnx_export import quantize_int8

        quantize_int8(fp32, tmp / FILES["dynamic"])
        target = tmp / FILES["static"]
        with _quiet():
            quantize_static(
                str(fp32),
                str(target),
                Reader(),
                quant_format=QuantFormat.QOperator,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gemm", "Conv"],
            )
        return {FILES["static"]: target, FILES["dynamic"]: tmp / FILES["dynamic"]}

    return make


class Int8Vision:
    """Runs the int8 export on 224x224 RGB images: (n, dim) float32, unnormalised.

    One ONNX Runtime session per thread count, opened when first needed; the count
    follows torch's intra-op threads (the indexer's core split sets them)."""

    def __init__(
        self, path: Path, processor: Any, threads: Callable[[], int] | None = None
    ) -> None:
        self.path = path
        self.processor = processor
        self.normalise = _Normalise(processor)
        crop = getattr(processor, "crop_size", None)
        height = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
        self.side = int(height) if height else SIDE
        self._threads = threads or _torch_threads
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def session(self, threads: int) -> Any:
        with self._lock:
            found = self._sessions.get(threads)
            if found is None:
                from lookalike.models.onnx_text import _session

                found = self._sessions[threads] = _session(self.path, threads)
            return found

    def run(self, pixels: np.ndarray) -> np.ndarray:
        (out,) = self.session(max(1, self._threads())).run(None, {_INPUT: pixels})
        return np.asarray(out, dtype=np.float32)

    def pixels(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Normalised pixels; images not at the model's size go through its processor."""
        side = self.side
        if all(i.size == (side, side) and i.mode == "RGB" for i in images):
            return self.normalise(images)
        parts = [
            self.normalise([i])
            if i.size == (side, side) and i.mode == "RGB"
            else np.asarray(self.processor(images=[i], return_tensors="np")["pixel_values"])
            for i in images
        ]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        return self.run(self.pixels(images))


def _torch_threads() -> int:
    """The split's inference threads: torch's when torch is loaded, else the count the
    core split last chose, else every core this process may use."""
    import os
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    from lookalike.core_split import planned_threads

    return planned_threads() or max(1, len(os.sched_getaffinity(0)))


def open_int8(
    cache: ExportCache,
    processor: Any,
    images: Sequence[Image.Image],
    reference: np.ndarray,
    bar: float,
) -> tuple[Int8Vision | None, str]:
    """The first int8 variant made and not rejected, checked against ``reference`` (the
    reference runtime's vectors for ``images``) at cosine >= ``bar``; or (None, why not).
    Never raises. A variant that fails is discarded (and, on a low cosine, rejected)."""
    notes = []
    for variant in VARIANTS:
        rejected = cache.note(rejected_note(variant))
        if rejected:
            notes.append(rejected)
            continue
        if not cache.has(FILES[variant]):
            continue
        try:
            runner = Int8Vision(cache.path(FILES[variant]), processor)
            cosine = min_cosine(runner(list(images)), reference)
        except Exception as exc:  # a damaged file or a runtime surprise: made again later
            log.warning("int8 %s image path off: %s: %s", variant, type(exc).__name__, exc)
            cache.discard(FILES[variant])
            notes.append(f"{variant} int8 export unusable ({type(exc).__name__}: {exc})")
            continue
        if cosine < bar:
            notes.append(_reject(cache, variant, f"int8 load check: cosine {cosine:.5f} < {bar}"))
            continue
        return runner, f"{variant} int8 export in {cache.folder}, cosine {cosine:.5f}"
    if not notes:
        return None, "int8 export not made yet (lookalike index makes it after a run)"
    return None, "; ".join(notes)


def _reject(cache: ExportCache, variant: str, why: str) -> str:
    why = f"{variant} {why}"
    log.warning("int8 image path off: %s", why)
    cache.discard(FILES[variant])
    cache.write_note(rejected_note(variant), why)
    return why


def pending(cache: ExportCache | None) -> bool:
    """Whether ``ensure_int8`` has work to do: no variant made, and not all rejected."""
    if cache is None:
        return False
    made = any(cache.has(FILES[v]) for v in VARIANTS)
    refused = all(cache.note(rejected_note(v)) for v in VARIANTS)
    return not made and not refused


def ready(cache: ExportCache | None) -> bool:
    """Whether a variant is made and not rejected (the load checks it once more)."""
    return cache is not None and any(
        cache.has(FILES[v]) and not cache.note(rejected_note(v)) for v in VARIANTS
    )


def ensure_int8(
    cache: ExportCache,
    vision: Any,
    projection: Any,
    processor: Any,
    reference: np.ndarray,
    bar: float,
) -> str:
    """Make the int8 variants when none is there, and check each against ``reference``
    (the reference runtime's vectors for ``held_out_images()``); returns what happened.
    Never raises: indexing keeps bf16 or fp32 when anything fails."""
    if not pending(cache):
        return "int8 export already made" if ready(cache) else "int8 not used: all rejected"
    try:
        from lookalike.models.onnx_text import onnx_missing

        missing = onnx_missing()
        if missing is not None:
            return f"int8 not used: {missing}"
        cache.ensure(FILES["static"], make_int8(vision, projection, processor))
    except Exception as exc:
        log.warning("int8 image export failed: %s: %s", type(exc).__name__, exc)
        return f"int8 export failed ({type(exc).__name__}: {exc})"
    images = held_out_images()
    notes = []
    for variant in VARIANTS:
        try:
            runner = Int8Vision(cache.path(FILES[variant]), processor)
            cosine = min_cosine(runner(images), reference)
        except Exception as exc:
            notes.append(_reject(cache, variant, f"int8 export unusable ({exc})"))
            continue
        if cosine < bar:
            notes.append(_reject(cache, variant, f"int8 check: cosine {cosine:.5f} < {bar}"))
        else:
            notes.append(f"{variant} int8 cosine {cosine:.5f}")
    return "int8 for indexing: " + "; ".join(notes)


def ceiling_sessions(
    vision: Any, projection: Any, folder: Path, threads: int | None = None
) -> dict[str, Callable[[np.ndarray], Any]]:
    """For benchmarks (``bench/steady.py``, a ceiling table): name -> run(pixels) for each
    int8 variant ONNX Runtime offers here, made from fp32 ``vision``/``projection`` in
    ``folder``. Empty without ONNX Runtime."""
    from lookalike.models.onnx_text import _session, default_threads, onnx_missing

    if onnx_missing() is not None:
        return {}

    class _Processor:
        image_mean = (0.48145466, 0.4578275, 0.40821073)
        image_std = (0.26862954, 0.26130258, 0.27577711)

    made = make_int8(vision, projection, _Processor())(folder)
    count = threads or default_threads()
    out: dict[str, Callable[[np.ndarray], Any]] = {}
    for name, path in (
        ("onnx int8 dynamic", made[FILES["dynamic"]]),
        ("onnx int8 static", made[FILES["static"]]),
    ):
        out[name] = functools.partial(_run_session, _session(path, count))
    return out


def _run_session(session: Any, pixels: np.ndarray) -> Any:
    return session.run(None, {_INPUT: pixels})
