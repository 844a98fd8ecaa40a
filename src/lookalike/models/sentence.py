"""The reference runtime: sentence-transformers models on PyTorch.

An image tower (a sentence-transformers CLIP model) and a text tower (a
multilingual sentence-transformers model aligned to the CLIP image space, or
the CLIP model's own English text tower) are loaded lazily, each at most once,
under a lock. torch and sentence-transformers are imported only when a tower
loads, so importing this module is cheap; torch's global thread settings are
left as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from lookalike.errors import (
    ConfigError,
    ImageError,
    LookalikeError,
    ModelError,
    ModelNotAvailableError,
    QueryError,
)
from lookalike.image_prep import CLIP_PREP, ImagePrep, read_image_prep
from lookalike.models.base import Embedder
from lookalike.models.loading import (
    CLIP_TEXT,
    ResolvedModel,
    canonical_name,
    is_hub_name,
    model_id_for,
    resolve_model,
)
from lookalike.records import ModelInfo

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["RUNTIME", "SentenceTransformerEmbedder", "uses_clip_text"]

RUNTIME = "sentence-transformers"
# An image whose long side exceeds this many times its short side is first
# cropped around its centre: the CLIP centre crop keeps only the middle square,
# and resizing a 1x100000 strip to a 224-pixel short side would allocate gigabytes.
_MAX_ASPECT = 3
# Text beyond this many characters per token of context cannot reach the model.
_CHARS_PER_TOKEN = 32
# Loads are serialised process-wide: they are rare, they would fight over the
# cores anyway, and the quieting below saves and restores global logger state.
_LOAD_LOCK = threading.Lock()


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Keep transformers' progress bars and notices off stderr while a model loads.

    The library never prints; the loaders' own warnings (a missing torchvision, a
    deprecated module class) are noise to a user who can do nothing about them.
    """
    from transformers.utils import logging as hf_logging

    st_logger = logging.getLogger("sentence_transformers")
    verbosity, bars, st_level = (
        hf_logging.get_verbosity(),
        hf_logging.is_progress_bar_enabled(),
        st_logger.level,
    )
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    st_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        st_logger.setLevel(st_level)


def uses_clip_text(image_model: str, text_model: str) -> bool:
    """True when the text queries go through the CLIP image model's own text tower."""
    text = text_model.strip()
    return text.lower() == CLIP_TEXT or canonical_name(text) == canonical_name(image_model)


@dataclass
class _Tower:
    """One loaded sentence-transformers model."""

    resolved: ResolvedModel
    model: SentenceTransformer
    dim: int
    max_tokens: int | None = None
    # Fast tokenizers are not safe to call from two threads at once ("Already
    # borrowed"), and two forward passes would fight over the same CPU cores.
    lock: threading.Lock = field(default_factory=threading.Lock)


class SentenceTransformerEmbedder(Embedder):
    """Embedder over sentence-transformers models (see ``lookalike.models.base.Embedder``).

    ``image_model`` and ``text_model`` are Hugging Face names (short names such as
    ``clip-ViT-B-32`` are expanded to ``sentence-transformers/...``) or local
    sentence-transformers folders. ``text_model="clip"``, or the image model's
    own name, uses the CLIP model's English text tower.
    """

    runtime = RUNTIME

    def __init__(
        self,
        image_model: str,
        text_model: str,
        *,
        cache_folder: str | None = None,
        device: str = "cpu",
        preprocess: str | None = None,
        batch_size: int = 32,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError("batch_size must be a positive number", field="batch_size")
        self.image_model = canonical_name(image_model)
        self.shares_clip_text = uses_clip_text(image_model, text_model)
        self.text_model = self.image_model if self.shares_clip_text else canonical_name(text_model)
        self.cache_folder = cache_folder or None
        self.device = device
        self._preprocess = preprocess  # None: the image model's own (``image_prep``)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._image: _Tower | None = None
        self._text: _Tower | None = None
        self._model_id: str | None = None
        self._mismatch: str | None = None  # set once both towers loaded and disagree
        self.load_count = 0  # towers actually loaded, for tests and diagnostics

    # -- identity ------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """The image model's id, without loading it (see ``lookalike.models.loading``)."""
        if self._model_id is None:
            with self._lock:
                if self._model_id is None:
                    self._model_id = self._compute_model_id()
        return self._model_id

    def _compute_model_id(self) -> str:
        if self._image is not None:
            return model_id_for(self._image.resolved)
        if is_hub_name(self.image_model):
            return self.image_model  # a Hub name is its own id, cached or not
        # A folder (checked on the way), or an error that says what to do.
        resolved = resolve_model(
            self.image_model, cache_folder=self.cache_folder, role="image", allow_download=False
        )
        return model_id_for(resolved)

    def weights_on_disk(self) -> bool:
        """Whether the image model's weights are here, without loading or downloading them."""
        if self._image is not None:
            return True
        try:
            resolve_model(
                self.image_model, cache_folder=self.cache_folder, role="image", allow_download=False
            )
        except LookalikeError:
            return False
        return True

    @property
    def image_prep(self) -> ImagePrep:
        """What the decoder must hand ``embed_images``: read from the model's processor
        config on disk (no load); CLIP's 224 px crop while the weights are not here."""
        if self._image is not None:
            return read_image_prep(self._image.resolved.path)
        try:
            resolved = resolve_model(
                self.image_model, cache_folder=self.cache_folder, role="image", allow_download=False
            )
        except LookalikeError:
            return CLIP_PREP
        return read_image_prep(resolved.path)

    @property
    def preprocess(self) -> str:
        """The preprocessing id recorded with the image vectors."""
        return self._preprocess or self.image_prep.version

    @property
    def dim(self) -> int:
        """Vector width; loads the image tower if needed."""
        return self._image_tower().dim

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(model_id=self.model_id, dim=self.dim, preprocess=self.preprocess)

    @property
    def text_dim(self) -> int:
        return self._text_tower().dim

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        """Load both towers now and check they share one space (idempotent, thread-safe)."""
        self.load_images()
        self.load_texts()

    def load_images(self) -> None:
        """Load the image tower only (enough for indexing)."""
        self._image_tower()

    def load_texts(self) -> None:
        """Load the text tower only (and the image tower when it is the same CLIP model)."""
        self._text_tower()

    def _image_tower(self) -> _Tower:
        tower = self._image
        if tower is None:
            with self._lock:
                if self._image is None:
                    self._image = self._load(self.image_model, "image")
                    self._check_dims()
                tower = self._image
        return tower

    def _text_tower(self) -> _Tower:
        text = self._text
        if text is None:
            image = self._image_tower() if self.shares_clip_text else None
            with self._lock:
                if self._text is None:
                    loaded = image if image is not None else self._load(self.text_model, "text")
                    self._prepare_text(loaded)
                    self._text = loaded
                    self._check_dims()
                text = self._text
        self._raise_on_mismatch()
        return text

    def _raise_on_mismatch(self) -> None:
        """Text vectors from a model of another width are useless; image vectors stay valid."""
        if self._mismatch is not None:
            raise ModelError(self._mismatch, field="text_model")

    def _check_dims(self) -> None:
        """Record (once) whether the two loaded towers disagree on the vector width."""
        image, text = self._image, self._text
        if image is None or text is None or image.dim == text.dim:
            return
        self._mismatch = (
            f"the image model {self.image_model} makes {image.dim}-dimensional vectors but the "
            f"text model {self.text_model} makes {text.dim}-dimensional ones: they must share one "
            "embedding space. Use a text model trained for this image model (for "
            "sentence-transformers/clip-ViT-B-32: "
            "sentence-transformers/clip-ViT-B-32-multilingual-v1), "
            "or set text_model=clip to use the image model's own English text tower"
        )

    def _load(self, name: str, role: str) -> _Tower:
        resolved = resolve_model(name, cache_folder=self.cache_folder, role=role)
        assert resolved.path is not None
        try:
            from sentence_transformers import SentenceTransformer

            with _LOAD_LOCK, _quiet_loading():
                model = SentenceTransformer(
                    str(resolved.path),
                    device=self.device,
                    local_files_only=True,
                    trust_remote_code=False,
                )
            model.eval()
        except (ModelError, ModelNotAvailableError):
            raise
        except Exception as exc:  # the loaders raise anything from OSError to KeyError
            raise ModelError(
                f"cannot load the {role} model {name} from {resolved.path} "
                f"({exc.__class__.__name__}: {exc}); check that the folder holds a complete "
                "sentence-transformers model (modules.json and its module folders), or delete "
                "it from the cache and fetch it again",
                field=f"{role}_model",
            ) from exc
        tower = _Tower(resolved=resolved, model=model, dim=0)
        tower.dim = self._probe(tower, name, role)
        self.load_count += 1
        return tower

    def _probe(self, tower: _Tower, name: str, role: str) -> int:
        """Embed one blank input to learn the width and prove the tower handles its modality."""
        probe: list[Any] = (
            [Image.new("RGB", (224, 224), (255, 255, 255))] if role == "image" else [""]
        )
        if role == "image":
            what, advice = "images", "use a CLIP model such as sentence-transformers/clip-ViT-B-32"
        else:
            what, advice = (
                "text",
                "use a sentence-transformers text model aligned to the image model",
            )
        try:
            out = self._encode(tower, probe)
        except Exception as exc:
            raise ModelError(
                f"the {role} model {name} ({tower.resolved.path}) cannot embed {what} "
                f"({exc.__class__.__name__}: {exc}); {advice}",
                field=f"{role}_model",
            ) from exc
        if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 1:
            raise ModelError(
                f"the {role} model {name} returned an output of shape {out.shape} instead of one "
                "vector; use a sentence-transformers model that makes one vector per input",
                field=f"{role}_model",
            )
        return int(out.shape[1])

    @staticmethod
    def _prepare_text(tower: _Tower) -> None:
        """Cap the tokenizer at the model's position limit so long text is truncated, not fatal."""
        modules = list(tower.model.children())
        first = modules[0] if modules else None
        tokenizer = getattr(first, "tokenizer", None)
        inner = getattr(first, "model", None) or getattr(first, "auto_model", None)
        config = getattr(inner, "config", None)
        if config is not None and hasattr(config, "get_text_config"):
            config = config.get_text_config()
        limit = getattr(config, "max_position_embeddings", None)
        if tokenizer is None:
            return
        current = getattr(tokenizer, "model_max_length", None)
        if (
            isinstance(limit, int)
            and limit > 0
            and (not isinstance(current, int) or current > limit)
        ):
            tokenizer.model_max_length = limit
            current = limit
        tower.max_tokens = current if isinstance(current, int) and current < 1_000_000 else None

    def _encode(self, tower: _Tower, inputs: list[Any]) -> np.ndarray:
        import torch

        with tower.lock, torch.inference_mode():
            out = tower.model.encode(
                inputs,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        return np.asarray(out)

    # -- embedding -----------------------------------------------------------------------

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows, for decoded RGB PIL images."""
        if isinstance(images, Image.Image) or not isinstance(images, Sequence):
            raise ImageError(
                "embed_images takes a list of PIL images, not one image", field="image"
            )
        tower = self._image_tower()
        if len(images) == 0:
            return np.zeros((0, tower.dim), dtype=np.float32)
        prepared = [_ready_image(img) for img in images]
        try:
            out = self._encode(tower, prepared)
        except Exception as exc:
            raise ModelError(
                f"the image model {self.image_model} failed on a batch of {len(prepared)} images "
                f"({exc.__class__.__name__}: {exc}); check the model folder and retry",
                field="image_model",
            ) from exc
        return _normalise(out, len(prepared), tower.dim, self.image_model)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows in the image space; any string is accepted."""
        if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
            raise QueryError("embed_texts takes a list of strings, not one string", field="text")
        tower = self._text_tower()
        if len(texts) == 0:
            return np.zeros((0, tower.dim), dtype=np.float32)
        max_chars = max(2048, _CHARS_PER_TOKEN * (tower.max_tokens or 512))
        prepared = [_clean_text(t, max_chars) for t in texts]
        try:
            out = self._encode(tower, prepared)
        except Exception as exc:
            raise ModelError(
                f"the text model {self.text_model} failed on {len(prepared)} texts "
                f"({exc.__class__.__name__}: {exc}); check the model folder and retry",
                field="text_model",
            ) from exc
        return _normalise(out, len(prepared), tower.dim, self.text_model)


def _ready_image(img: Any) -> Image.Image:
    if not isinstance(img, Image.Image):
        raise ImageError(f"expected a decoded PIL image, got {type(img).__name__}", field="image")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"the image is empty ({width}x{height} pixels)", field="image")
    if img.mode != "RGB":
        img = img.convert("RGB")
    short, long = min(width, height), max(width, height)
    if long > _MAX_ASPECT * short:
        keep = _MAX_ASPECT * short
        if width > height:
            left = (width - keep) // 2
            img = img.crop((left, 0, left + keep, height))
        else:
            top = (height - keep) // 2
            img = img.crop((0, top, width, top + keep))
    cropped: Image.Image = img
    return cropped


def _clean_text(text: Any, max_chars: int) -> str:
    """Collapse whitespace (as the tokenizers do), cut overlong text, replace bad code points."""
    if not isinstance(text, str):
        raise QueryError(f"expected a string, got {type(text).__name__}", field="text")
    text = " ".join(text[: max_chars * 4].split())[:max_chars]
    # Lone surrogates cannot cross into the Rust tokenizer.
    cleaned: str = text.encode("utf-8", errors="replace").decode("utf-8")
    return cleaned


def _normalise(out: np.ndarray, n: int, dim: int, name: str) -> np.ndarray:
    if out.shape != (n, dim):
        raise ModelError(
            f"the model {name} returned shape {out.shape}, expected ({n}, {dim}); "
            "check that it is a sentence-transformers model with one vector per input"
        )
    wide = out.astype(np.float64)
    if not np.isfinite(wide).all():
        raise ModelError(
            f"the model {name} produced NaN or infinite values; its weights are probably "
            "damaged: delete them and fetch the model again"
        )
    norms = np.linalg.norm(wide, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ModelError(
            f"the model {name} produced an all-zero vector; its weights are probably damaged: "
            "delete them and fetch the model again"
        )
    return np.ascontiguousarray(wide / norms, dtype=np.float32)
