"""SigLIP and fixed-resolution SigLIP 2 models through ``transformers.SiglipModel``.

The reference path is transformers' own: the model's ``AutoProcessor`` (images
squashed to the square the config names, mean/std 0.5; text padded to a fixed
64 tokens, as SigLIP was trained) and ``get_image_features`` /
``get_text_features``. SigLIP's text tower pools its last position, so the
padding is part of the model: dynamic padding would change every vector.

The fast path (``fast=True``, the ``auto``/``torch-fast`` runtimes) runs the vision
tower in bf16 where the CPU multiplies bf16 natively, on pixels normalised in torch
from images the decoder already sized, and the text tower through ONNX Runtime
(int8, else fp32; exported once per model and version, ``lookalike.models.onnx_text``).
Each is checked at load against the reference on the same weights (cosine >= 0.999
in bf16/int8, >= 0.9999 in fp32) and gives way to the reference when it fails;
``runtime_for`` says which path runs and why. NaFlex SigLIP 2 checkpoints
(``Siglip2Model``: variable patches) are refused with a clear message.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ConfigError, ImageError, LookalikeError, ModelError, QueryError
from lookalike.image_prep import ImagePrep, read_image_prep
from lookalike.models import onnx_text, siglip_fast
from lookalike.models.base import Embedder
from lookalike.models.cpu import CpuFeatures, choose_precision, cpu_features
from lookalike.models.loading import (
    ResolvedModel,
    canonical_name,
    is_hub_name,
    model_id_for,
    resolve_model,
)
from lookalike.models.sentence import (
    _LOAD_LOCK,
    _clean_text,
    _normalise,
    _quiet_loading,
    _ready_image,
    uses_clip_text,
)
from lookalike.models.siglip_fast import SIGLIP_TEXT, TEXT_TOKENS
from lookalike.records import ModelInfo

__all__ = ["RUNTIME", "SIGLIP_TEXT", "TEXT_TOKENS", "SiglipEmbedder", "is_siglip_folder"]

log = logging.getLogger(__name__)

RUNTIME = "transformers-siglip"
_SIGLIP_TYPES = ("siglip", "siglip2")


def is_siglip_folder(folder: Path | None) -> bool:
    """Whether ``folder`` holds a transformers SigLIP model (its config.json says so)."""
    if folder is None:
        return False
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") in _SIGLIP_TYPES


def _features(out: Any) -> Any:
    """transformers 5 returns an output object from get_*_features; 4.x a tensor."""
    pooled = getattr(out, "pooler_output", None)
    return pooled if pooled is not None else out


class _Loaded:
    def __init__(self, resolved: ResolvedModel, model: Any, processor: Any) -> None:
        self.resolved = resolved
        self.model = model
        self.processor = processor
        self.lock = threading.Lock()  # the tokenizer and a forward pass: one at a time
        self.dim = 0
        self.uses_mask = True  # whether the processor hands the text tower a mask


class SiglipEmbedder(Embedder):
    """Embedder over a SigLIP model folder or Hub name (see the module docstring).

    ``text_model`` must be ``"clip"`` (the model's own text tower) or the image
    model itself. ``lowercase`` lower-cases queries (SigLIP 2 was trained on
    lower-cased text). ``fast`` turns on the checked fast paths.
    """

    def __init__(
        self,
        image_model: str,
        text_model: str = "clip",
        *,
        cache_folder: str | None = None,
        batch_size: int = 32,
        fast: bool = True,
        precision: str = "auto",
        features: Callable[[], CpuFeatures] | None = None,
        onnx_cache: Path | None = None,
        onnx_precision: str = "auto",
        onnx_threads: int | None = None,
        lowercase: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError("batch_size must be a positive number", field="batch_size")
        if not uses_clip_text(image_model, text_model):
            raise ConfigError(
                f"the SigLIP model {image_model} answers text queries with its own text tower: "
                f"set text_model=clip instead of {text_model!r}",
                field="text_model",
            )
        choose_precision(precision, CpuFeatures())  # a wrong value fails now
        self.image_model = canonical_name(image_model)
        self.text_model = self.image_model
        self.shares_clip_text = True
        self.cache_folder = cache_folder or None
        self.batch_size = batch_size
        self.fast = fast
        self.requested_precision = precision
        self._features = features or cpu_features
        self.onnx_cache = Path(onnx_cache) if onnx_cache is not None and fast else None
        self.onnx_precision = onnx_precision
        self.onnx_threads = onnx_threads
        self.lowercase = lowercase
        self.runtime = "torch-fast" if fast else RUNTIME
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._vision: tuple[Callable[[list[Image.Image]], np.ndarray] | None, str, str] | None = (
            None
        )
        self._text: tuple[Callable[[list[str]], np.ndarray] | None, str, str] | None = None
        self.load_count = 0

    # -- identity -------------------------------------------------------------------------

    def _on_disk(self) -> ResolvedModel:
        return resolve_model(
            self.image_model, cache_folder=self.cache_folder, role="image", allow_download=False
        )

    @property
    def model_id(self) -> str:
        if self._loaded is not None:
            return model_id_for(self._loaded.resolved)
        if is_hub_name(self.image_model):
            return self.image_model
        return model_id_for(self._on_disk())

    def weights_on_disk(self) -> bool:
        try:
            self._on_disk()
        except LookalikeError:
            return False
        return True

    @property
    def image_prep(self) -> ImagePrep:
        default = ImagePrep(size=224, crop=False, resample="bilinear")
        if self._loaded is not None:
            return read_image_prep(self._loaded.resolved.path, default)
        try:
            return read_image_prep(self._on_disk().path, default)
        except LookalikeError:
            return default

    @property
    def preprocess(self) -> str:
        return self.image_prep.version

    @property
    def dim(self) -> int:
        return self._model().dim

    @property
    def text_dim(self) -> int:
        return self.dim

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(model_id=self.model_id, dim=self.dim, preprocess=self.preprocess)

    def runtime_for(self, role: str) -> tuple[str, str]:
        """(runtime, why) for the "image" or "text" tower."""
        path = self._vision if role == "image" else self._text
        if path is not None:
            return path[1], path[2]
        if not self.fast:
            return RUNTIME, "the reference runtime (transformers SiglipModel, fp32)"
        if role == "image":
            precision, why = choose_precision(self.requested_precision, self._features())
            return f"torch-fast {precision}", f"{why} (checked against the reference at load)"
        if self.onnx_cache is not None and onnx_text.onnx_missing() is None:
            return "onnx", f"padded to {TEXT_TOKENS} tokens, exported once to {self.onnx_cache}"
        return RUNTIME, "text through transformers (fp32)"

    def text_export_pending(self) -> bool:
        """Whether the first text query will export the text tower for ONNX Runtime first."""
        if self._text is not None or self.onnx_cache is None:
            return False
        if onnx_text.onnx_missing() is not None:
            return False
        try:
            resolved = self._on_disk()
        except LookalikeError:
            return False
        if resolved.path is None:
            return False
        cache = onnx_text.text_cache(self.onnx_cache, resolved.path, SIGLIP_TEXT)
        return not any(cache.has(f) for f in onnx_text.FILES.values())

    # -- loading --------------------------------------------------------------------------

    def load(self) -> None:
        self.load_images()
        self.load_texts()

    def load_images(self) -> None:
        loaded = self._model()
        if self._vision is None:
            with self._lock:
                if self._vision is None:
                    self._vision = self._guard(self._attach_vision, loaded)

    def load_texts(self) -> None:
        loaded = self._model()
        if self._text is None:
            with self._lock:
                if self._text is None:
                    self._text = self._guard(self._attach_text, loaded)

    def _model(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
                loaded = self._loaded
        return loaded

    def _load(self) -> _Loaded:
        resolved = resolve_model(self.image_model, cache_folder=self.cache_folder, role="image")
        assert resolved.path is not None
        config = _read_config(resolved.path)
        if config.get("model_type") == "siglip2":
            raise ModelError(
                f"{self.image_model} is a NaFlex SigLIP 2 model (variable patches), which "
                "lookalike does not run: use a fixed-resolution one such as "
                "google/siglip2-base-patch16-224 (preset siglip2-b16)",
                field="image_model",
            )
        try:
            from transformers import AutoProcessor, SiglipModel

            with _LOAD_LOCK, _quiet_loading():
                model = SiglipModel.from_pretrained(str(resolved.path), local_files_only=True)
                processor = AutoProcessor.from_pretrained(str(resolved.path), local_files_only=True)
            model.eval()
        except ImportError as exc:  # SigLIP 1's SentencePiece tokenizer
            raise ModelError(
                f"the SigLIP model {self.image_model} needs a package that is not installed "
                f"({exc}): pip install 'lookalike[siglip]'",
                field="image_model",
            ) from exc
        except Exception as exc:  # the loaders raise anything from OSError to KeyError
            raise ModelError(
                f"cannot load the SigLIP model {self.image_model} from {resolved.path} "
                f"({exc.__class__.__name__}: {exc}); check that the folder holds a complete "
                "transformers SigLIP model (config.json, weights, processor and tokenizer files)",
                field="image_model",
            ) from exc
        loaded = _Loaded(resolved, model, processor)
        loaded.uses_mask = "attention_mask" in self._tokens(loaded, ["a"], "pt")
        probe = self._reference_images(loaded, [Image.new("RGB", (224, 224), (255, 255, 255))])
        loaded.dim = int(probe.shape[1])
        self.load_count += 1
        return loaded

    # -- the reference path ---------------------------------------------------------------

    def _tokens(self, loaded: _Loaded, texts: list[str], tensors: str) -> Any:
        if self.lowercase:
            texts = [t.lower() for t in texts]
        return loaded.processor(
            text=texts,
            padding="max_length",
            max_length=TEXT_TOKENS,
            truncation=True,
            return_tensors=tensors,
        )

    def _reference_images(self, loaded: _Loaded, images: list[Image.Image]) -> np.ndarray:
        import torch

        batch = loaded.processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            out = loaded.model.get_image_features(pixel_values=batch["pixel_values"])
        return np.asarray(_features(out).float().numpy())

    def _reference_texts(self, loaded: _Loaded, texts: list[str]) -> np.ndarray:
        import torch

        batch = dict(self._tokens(loaded, texts, "pt"))
        with torch.inference_mode():
            out = loaded.model.get_text_features(**batch)
        return np.asarray(_features(out).float().numpy())

    # -- the fast paths -------------------------------------------------------------------

    def _guard(
        self, attach: Callable[[_Loaded], tuple[Any, str, str]], loaded: _Loaded
    ) -> tuple[Any, str, str]:
        if not self.fast:
            return None, RUNTIME, "the reference runtime (transformers SiglipModel, fp32)"
        try:
            return attach(loaded)
        except Exception as exc:  # an unforeseen variant must not stop a working model
            log.warning("SigLIP fast path off: %s: %s", type(exc).__name__, exc)
            return None, RUNTIME, f"fast path failed ({type(exc).__name__}: {exc})"

    def _attach_vision(self, loaded: _Loaded) -> tuple[Any, str, str]:
        precision, why = choose_precision(self.requested_precision, self._features())
        if precision != "bf16":
            return None, f"{RUNTIME} fp32", f"{why}; the reference path is the fp32 path"
        run, reason = siglip_fast.bf16_vision(
            loaded, self.image_prep.size, lambda b: self._reference_images(loaded, b)
        )
        if run is None:
            log.warning("SigLIP bf16 image path off: %s", reason)
            return None, f"{RUNTIME} fp32", reason
        return run, "torch-fast bf16", why

    def _attach_text(self, loaded: _Loaded) -> tuple[Any, str, str]:
        if self.onnx_cache is None:
            return None, f"{RUNTIME} fp32", "no ONNX cache folder: text through transformers"
        precisions = ["int8", "fp32"] if self.onnx_precision == "auto" else [self.onnx_precision]
        encoder, why = siglip_fast.onnx_text_encoder(
            loaded,
            self.onnx_cache,
            lambda texts: self._tokens(loaded, texts, "np"),
            lambda texts: self._reference_texts(loaded, texts),
            precisions=precisions,
            threads=self.onnx_threads,
        )
        if encoder is None:
            return None, f"{RUNTIME} fp32", why
        return encoder, f"onnx {encoder.precision}", why

    # -- embedding ------------------------------------------------------------------------

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows, for decoded RGB PIL images."""
        if isinstance(images, Image.Image) or not isinstance(images, Sequence):
            raise ImageError(
                "embed_images takes a list of PIL images, not one image", field="image"
            )
        self.load_images()
        loaded = self._model()
        if not images:
            return np.zeros((0, loaded.dim), dtype=np.float32)
        prepared = [_ready_image(img) for img in images]
        assert self._vision is not None
        fast = self._vision[0]
        parts = []
        try:
            with loaded.lock:
                for start in range(0, len(prepared), self.batch_size):
                    chunk = prepared[start : start + self.batch_size]
                    run = fast or (lambda b: self._reference_images(loaded, b))
                    parts.append(run(chunk))
        except Exception as exc:
            raise ModelError(
                f"the image model {self.image_model} failed on a batch of {len(prepared)} images "
                f"({exc.__class__.__name__}: {exc}); check the model folder and retry",
                field="image_model",
            ) from exc
        return _normalise(np.concatenate(parts), len(prepared), loaded.dim, self.image_model)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows in the image space."""
        if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
            raise QueryError("embed_texts takes a list of strings, not one string", field="text")
        self.load_texts()
        loaded = self._model()
        if not texts:
            return np.zeros((0, loaded.dim), dtype=np.float32)
        prepared = [_clean_text(t, 4096) for t in texts]
        assert self._text is not None
        fast = self._text[0]
        parts = []
        try:
            with loaded.lock:
                for start in range(0, len(prepared), self.batch_size):
                    chunk = prepared[start : start + self.batch_size]
                    parts.append(fast(chunk) if fast else self._reference_texts(loaded, chunk))
        except Exception as exc:
            raise ModelError(
                f"the text model {self.text_model} failed on {len(prepared)} texts "
                f"({exc.__class__.__name__}: {exc}); check the model folder and retry",
                field="text_model",
            ) from exc
        return _normalise(np.concatenate(parts), len(prepared), loaded.dim, self.text_model)


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
