"""The fast runtime (``torch-fast``): the same sentence-transformers weights, run directly.

It loads exactly what the reference runtime loads (so model ids, ``ModelInfo`` and
every loading error are the same, and a store indexed with one runtime can be
searched with the other), then runs the towers itself:

* images: the CLIP vision tower and projection, batched, under ``inference_mode``,
  in bf16 where the CPU multiplies bf16 natively (``lookalike.models.cpu``) and in
  fp32 elsewhere. Pixels are normalised in torch from the 224x224 RGB images the
  decode workers send (rescale 1/255, CLIP mean/std, as ``CLIPImageProcessor``),
  skipping the processor's no-op resize and crop; any other size goes through the
  model's own processor, so the result never depends on which path ran.
* texts: the tokenizer with dynamic padding (pad to the longest text of the batch,
  not to the model's limit), then the CLIP text tower and projection, or a
  Transformer + mean Pooling (+ Dense) stack such as the multilingual text model.
  Text stays fp32: one short query is latency-bound and bf16 does not pay there.

Each fast path is checked once, at load, against the reference runtime on the same
weights (cosine >= 0.9999 in fp32, >= 0.999 in bf16); a path that fails, or a model
it does not recognise, runs through sentence-transformers instead, and
``runtime_for`` says which path is active and why (``lookalike models``).

ONNX Runtime and torch.compile are left out on purpose: the first needs an export
step and a dependency for a text query that takes milliseconds here already, the
second compiles for minutes on a laptop and fails on some CPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lookalike.models.cpu import CpuFeatures, Precision, choose_precision, cpu_features
from lookalike.models.sentence import SentenceTransformerEmbedder, _Tower

__all__ = ["RUNTIME", "FastTorchEmbedder"]

log = logging.getLogger(__name__)

RUNTIME = "torch-fast"
#: the load check's bar, per precision (the fidelity tests hold the same bars)
CHECK_COSINE: dict[str, float] = {"fp32": 0.9999, "bf16": 0.999}
_SIDE = 224


@dataclass
class _Path:
    """One modality's active path: a fast runner, or None (reference) with the reason."""

    run: Callable[[list[Any]], np.ndarray] | None
    runtime: str
    reason: str


class _Vision:
    """CLIP vision tower + projection on pre-sized pixels."""

    def __init__(self, vision: Any, projection: Any, processor: Any, dtype: Any) -> None:
        import torch

        self.vision = vision
        self.projection = projection
        self.processor = processor
        self.dtype = dtype
        mean = torch.tensor(list(processor.image_mean), dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(list(processor.image_std), dtype=torch.float32).view(1, 3, 1, 1)
        self.rescale = float(getattr(processor, "rescale_factor", 1 / 255))
        self.mean, self.std = mean, std

    def pixels(self, images: list[Image.Image]) -> Any:
        """(n, 3, 224, 224) float32, normalised as the model's processor does."""
        import torch

        out = torch.empty((len(images), 3, _SIDE, _SIDE), dtype=torch.float32)
        ready = [i for i, im in enumerate(images) if im.size == (_SIDE, _SIDE) and im.mode == "RGB"]
        if ready:
            stacked = np.stack([np.asarray(images[i], dtype=np.uint8) for i in ready])
            x = torch.from_numpy(stacked).permute(0, 3, 1, 2).to(torch.float32)
            out[ready] = (x * self.rescale - self.mean) / self.std
        others = sorted(set(range(len(images))) - set(ready))
        if others:
            done = self.processor(images=[images[i] for i in others], return_tensors="pt")
            out[others] = done["pixel_values"].to(torch.float32)
        return out

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        pixels = self.pixels(images).to(self.dtype)
        with torch.inference_mode():
            pooled = self.vision(pixel_values=pixels).pooler_output
            return self.projection(pooled).float().numpy()


class _Text:
    """Tokenize with dynamic padding, run the encoder, pool (CLIP: its own pooler)."""

    def __init__(
        self,
        tokenizer: Any,
        max_tokens: int | None,
        encode: Callable[[dict[str, Any]], Any],
        *,
        lower: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.encode = encode
        self.lower = lower

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        if self.lower:
            texts = [t.lower() for t in texts]
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode():
            return self.encode(dict(batch)).float().numpy()


def _clip_text(clip: Any) -> Callable[[dict[str, Any]], Any]:
    def encode(batch: dict[str, Any]) -> Any:
        pooled = clip.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).pooler_output
        return clip.text_projection(pooled)

    return encode


def _pooled_text(model: Any, denses: list[Any]) -> Callable[[dict[str, Any]], Any]:
    accepted = ("input_ids", "attention_mask", "token_type_ids")

    def encode(batch: dict[str, Any]) -> Any:
        hidden = model(**{k: v for k, v in batch.items() if k in accepted}).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        for dense in denses:
            pooled = dense.activation_function(dense.linear(pooled))
        return pooled

    return encode


def _check_images() -> list[Image.Image]:
    rng = np.random.default_rng(1234)
    noise = Image.fromarray(rng.integers(0, 256, (_SIDE, _SIDE, 3), dtype=np.uint8), "RGB")
    ramp = np.linspace(0, 255, _SIDE, dtype=np.float32)
    grad = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (_SIDE, 1)).T,
                     np.tile(ramp[::-1], (_SIDE, 1))], axis=-1)  # fmt: skip
    return [noise, Image.fromarray(grad.astype(np.uint8), "RGB")]


_CHECK_TEXTS = ["a photo of a cat on the beach", "Ein Foto einer Katze", "猫"]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    if not np.isfinite(num).all() or (den == 0).any():
        return -1.0
    return float((num / den).min())


class FastTorchEmbedder(SentenceTransformerEmbedder):
    """Embedder that runs the sentence-transformers weights directly (see the module doc).

    ``precision`` is "auto" (bf16 where the CPU has AMX-BF16 or AVX512-BF16, else
    fp32), "bf16" or "fp32"; ``features`` replaces the CPU check (tests).
    """

    runtime = RUNTIME

    def __init__(
        self,
        image_model: str,
        text_model: str,
        *,
        precision: str = "auto",
        features: Callable[[], CpuFeatures] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_model, text_model, **kwargs)
        self.requested_precision = precision
        choose_precision(precision, CpuFeatures())  # a wrong value fails now, not at load
        self._features = features or cpu_features
        self._vision_path: _Path | None = None
        self._text_path: _Path | None = None

    # -- reporting -------------------------------------------------------------------------

    @property
    def precision(self) -> Precision:
        """The image tower's planned (before load) or active precision."""
        path = self._vision_path
        if path is not None and path.run is not None:
            return "bf16" if path.runtime.endswith("bf16") else "fp32"
        return choose_precision(self.requested_precision, self._features())[0]

    def runtime_for(self, role: str) -> tuple[str, str]:
        """(runtime, why) for the "image" or "text" tower: what runs now, or would at load."""
        path = self._vision_path if role == "image" else self._text_path
        if path is not None:
            return path.runtime, path.reason
        if role == "image":
            precision, why = choose_precision(self.requested_precision, self._features())
            return f"{RUNTIME} {precision}", f"{why} (checked against the reference at load)"
        return f"{RUNTIME} fp32", "dynamic padding (checked against the reference at load)"

    # -- loading: the reference loader, then the fast paths ------------------------------------

    def _image_tower(self) -> _Tower:
        tower = super()._image_tower()
        if self._vision_path is None:
            with self._lock:
                if self._vision_path is None:
                    self._vision_path = _guarded(self._attach_vision, tower)
        return tower

    def _text_tower(self) -> _Tower:
        tower = super()._text_tower()
        if self._text_path is None:
            with self._lock:
                if self._text_path is None:
                    self._text_path = _guarded(self._attach_text, tower)
        return tower

    def _attach_vision(self, tower: _Tower) -> _Path:
        import torch

        module = tower.model[0]
        first: Any = getattr(module, "auto_model", None)
        processor = getattr(getattr(module, "processor", None), "image_processor", None)
        if not all(hasattr(first, a) for a in ("vision_model", "visual_projection")) or not all(
            hasattr(processor, a) for a in ("image_mean", "image_std")
        ):
            return _Path(
                None, "sentence-transformers", "not a CLIP vision tower the fast runtime knows"
            )
        precision, why = choose_precision(self.requested_precision, self._features())
        images = _check_images()
        reference = super()._encode(tower, list(images))
        attempts: list[Precision] = ["bf16", "fp32"] if precision == "bf16" else ["fp32"]
        failures: list[str] = []
        for attempt in attempts:
            clip: Any = getattr(tower.model[0], "auto_model", None)
            # Release the CLIP text tower when another model answers text queries (~250 MB).
            if not self.shares_clip_text and hasattr(clip, "text_model"):
                clip.text_model = None
            dtype = torch.bfloat16 if attempt == "bf16" else torch.float32
            # In place, one tensor at a time: no second copy of the weights, ever.
            vision, projection = clip.vision_model.to(dtype), clip.visual_projection.to(dtype)
            runner = _Vision(vision, projection, processor, dtype)
            with tower.lock:
                cosine = _min_cosine(runner(images), reference)
            if cosine >= CHECK_COSINE[attempt]:
                reason = why if attempt == precision else f"{failures[-1]}; fp32 instead"
                return _Path(runner, f"{RUNTIME} {attempt}", reason)
            failures.append(f"{attempt} load check: cosine {cosine:.5f} < {CHECK_COSINE[attempt]}")
            log.warning("fast image path off in %s: %s", attempt, failures[-1])
            if attempt == "bf16":  # the weights were rounded in place: read them again
                tower.model = self._load(self.image_model, "image").model
        return _Path(None, "sentence-transformers", "; ".join(failures))

    def _attach_text(self, tower: _Tower) -> _Path:
        modules = list(tower.model.children())
        first = modules[0] if modules else None
        inner = getattr(first, "auto_model", None)
        tokenizer = getattr(first, "tokenizer", None)
        if inner is None or tokenizer is None:
            return _Path(None, "sentence-transformers", "not a text model the fast runtime knows")
        if self.shares_clip_text:
            if not all(hasattr(inner, a) for a in ("text_model", "text_projection")):
                return _Path(None, "sentence-transformers", "not a CLIP text tower it knows")
            encode = _clip_text(inner)
        else:
            denses = _mean_pooled_denses(modules[1:])
            if denses is None:
                return _Path(
                    None,
                    "sentence-transformers",
                    "only Transformer + mean Pooling (+ Dense, Normalize) text models run fast",
                )
            encode = _pooled_text(inner, denses)
        runner = _Text(
            tokenizer, tower.max_tokens, encode, lower=bool(getattr(first, "do_lower_case", False))
        )
        reference = super()._encode(tower, list(_CHECK_TEXTS))
        with tower.lock:
            cosine = _min_cosine(runner(list(_CHECK_TEXTS)), reference)
        if cosine < CHECK_COSINE["fp32"]:
            reason = f"fp32 load check: cosine {cosine:.5f} < {CHECK_COSINE['fp32']}"
            log.warning("fast text path off: %s", reason)
            return _Path(None, "sentence-transformers", reason)
        return _Path(runner, f"{RUNTIME} fp32", "dynamic padding")

    # -- encoding ---------------------------------------------------------------------------

    def _encode(self, tower: _Tower, inputs: list[Any]) -> np.ndarray:
        """The fast path for this modality when it is attached, else the reference one."""
        if not inputs:
            return super()._encode(tower, inputs)
        is_image = isinstance(inputs[0], Image.Image)
        path = self._vision_path if is_image else self._text_path
        if path is None or path.run is None:
            return super()._encode(tower, inputs)
        parts = []
        with tower.lock:
            for start in range(0, len(inputs), self.batch_size):
                parts.append(path.run(inputs[start : start + self.batch_size]))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _guarded(attach: Callable[[_Tower], _Path], tower: _Tower) -> _Path:
    """Attach a fast path; any surprise leaves the tower on the reference path, with why."""
    try:
        return attach(tower)
    except Exception as exc:  # an unforeseen model variant must not stop a working model
        log.warning("fast path off: %s: %s", type(exc).__name__, exc)
        return _Path(
            None, "sentence-transformers", f"fast path failed ({type(exc).__name__}: {exc})"
        )


def _mean_pooled_denses(modules: Sequence[Any]) -> list[Any] | None:
    """The Dense modules after a mean Pooling, or None for any other stack."""
    if not modules or type(modules[0]).__name__ != "Pooling":
        return None
    config = modules[0].get_config_dict()
    if config.get("pooling_mode", "mean") != "mean" and not config.get("pooling_mode_mean_tokens"):
        return None
    denses = []
    for module in modules[1:]:
        name = type(module).__name__
        if name == "Dense" and hasattr(module, "linear") and hasattr(module, "activation_function"):
            denses.append(module)
        elif name != "Normalize":
            return None
    return denses
