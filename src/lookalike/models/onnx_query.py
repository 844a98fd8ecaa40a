"""Queries without torch: a checked ONNX export, its tokenizer and ONNX Runtime, nothing else.

Why: a cold ``lookalike search`` spent most of its 9 s importing torch and
sentence-transformers (and ~1 GB) to embed one short text. Once the fast runtime
has exported a tower and checked the export against the reference
(``lookalike.models.onnx_text`` for text, ``lookalike.models.onnx_image`` for
images), it records (``lookalike.models.onnx_record``), in the export's cache folder,
what a later process needs to answer queries alone:

* text: ``query-text.json`` (file, precision, the check's cosine, width, token
  limit, lowercasing) and ``tokenizer.json``: the model's own fast tokenizer with
  its truncation and padding set, written only after it gave the same ids and masks
  as the transformers tokenizer on the check texts;
* images: ``query-image.json`` (file, precision, cosine, width, CLIP mean/std and
  rescale factor) for the vision tower, run on 224x224 RGB images.

A manifest is written last, after its files, so its presence means a complete,
checked export. The cache folder's key holds the weights' fingerprint and the
tools' versions (see ``onnx_text.text_cache``): changed weights or versions mean
another folder, no manifest, and the full runtime (which exports and checks anew).
A manifest whose files will not load gives way to the full runtime with the reason
(``QueryExports.reason``); that runtime re-checks the cached file, makes it again
when it fails, and rewrites the manifest.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ImageError, LookalikeError, QueryError

__all__ = [
    "IMAGE_MANIFEST",
    "PROBE_TEXT",
    "TEXT_MANIFEST",
    "TOKENIZER_FILE",
    "QueryExports",
    "QueryImage",
    "QueryText",
    "probe_image",
]

log = logging.getLogger(__name__)

TEXT_MANIFEST = "query-text.json"
IMAGE_MANIFEST = "query-image.json"
TOKENIZER_FILE = "tokenizer.json"
_SIDE = 224
#: the text whose vector a recorded text export keeps, to be checked on every open
PROBE_TEXT = "a photo of a red car parked by the sea"
#: the same file in the same runtime gives the same vector; anything below is another file
PROBE_COSINE = 0.9999
# The reference runtime's text cleaning allows this many characters per token of context.
_CHARS_PER_TOKEN = 32


def _read_manifest(folder: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{folder / name} is not a JSON object")
    return data


def probe_image() -> Image.Image:
    """A fixed 224x224 image (seeded noise) whose vector a recorded image export keeps."""
    rng = np.random.default_rng(4321)
    return Image.fromarray(rng.integers(0, 256, (_SIDE, _SIDE, 3), dtype=np.uint8), "RGB")


def _probe(encoder: Callable[[Any], np.ndarray], query: Any, manifest: Mapping[str, Any]) -> None:
    """Raise unless the export still gives the vector recorded when it was checked."""
    want = np.asarray(manifest["probe"], dtype=np.float64).reshape(1, -1)
    got = np.asarray(encoder(query), dtype=np.float64).reshape(1, -1)
    if want.shape != got.shape:
        raise ValueError(f"it makes {got.shape[1]}-d vectors, not the recorded {want.shape[1]}-d")
    den = float(np.linalg.norm(want) * np.linalg.norm(got))
    cosine = float((want * got).sum()) / den if den > 0 and np.isfinite(den) else -1.0
    if not cosine >= PROBE_COSINE:
        raise ValueError(f"it no longer gives its recorded vector (cosine {cosine:.5f})")


class TokenizerRunner:
    """Texts -> {"input_ids", "attention_mask"} int64 arrays, padded to the longest text."""

    def __init__(self, tokenizer: Any, lower: bool) -> None:
        self.tokenizer = tokenizer
        self.lower = lower

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.lower:
            texts = [t.lower() for t in texts]
        encoded = self.tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }


@dataclass
class QueryText:
    """A recorded text export, loaded: (n, dim) unnormalised vectors for texts."""

    path: Path
    precision: str
    dim: int
    max_tokens: int | None
    session: Any
    tokenize: TokenizerRunner
    lock: threading.Lock

    @classmethod
    def open(
        cls, folder: Path, precisions: Sequence[str], threads: int | None = None
    ) -> QueryText | None:
        """The export recorded in ``folder`` when it is in one of ``precisions``, else None;
        raises when it will not load or no longer gives its recorded probe vector."""
        manifest = _read_manifest(folder, TEXT_MANIFEST)
        if manifest is None or manifest.get("precision") not in precisions:
            return None
        from tokenizers import Tokenizer

        from lookalike.models.onnx_text import _session

        path = folder / str(manifest["file"])
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        limit = manifest.get("max_tokens")
        opened = cls(
            path=path,
            precision=str(manifest["precision"]),
            dim=int(manifest["dim"]),
            max_tokens=int(limit) if limit is not None else None,
            session=_session(path, threads),
            tokenize=TokenizerRunner(tokenizer, bool(manifest.get("lower"))),
            lock=threading.Lock(),
        )
        _probe(opened, [PROBE_TEXT], manifest)
        return opened

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self.lock:  # a tokenizer is not safe to share between threads mid-call
            batch = self.tokenize(texts)
            (out,) = self.session.run(None, batch)
        return np.asarray(out, dtype=np.float32)


@dataclass
class QueryImage:
    """A recorded image export, loaded: (n, dim) unnormalised vectors for 224x224 RGB images."""

    path: Path
    precision: str
    dim: int
    session: Any
    mean: np.ndarray
    std: np.ndarray
    rescale: float
    lock: threading.Lock

    @classmethod
    def open(
        cls, folder: Path, precisions: Sequence[str], threads: int | None = None
    ) -> QueryImage | None:
        """As ``QueryText.open``, for the recorded image export."""
        manifest = _read_manifest(folder, IMAGE_MANIFEST)
        if manifest is None or manifest.get("precision") not in precisions:
            return None
        from lookalike.models.onnx_text import _session

        path = folder / str(manifest["file"])
        opened = cls.at(path, manifest, _session(path, threads))
        _probe(opened, [probe_image()], manifest)
        return opened

    @classmethod
    def at(cls, path: Path, manifest: Mapping[str, Any], session: Any) -> QueryImage:
        return cls(
            path=path,
            precision=str(manifest["precision"]),
            dim=int(manifest["dim"]),
            session=session,
            mean=np.asarray(manifest["mean"], dtype=np.float32).reshape(1, 3, 1, 1),
            std=np.asarray(manifest["std"], dtype=np.float32).reshape(1, 3, 1, 1),
            rescale=float(manifest["rescale"]),
            lock=threading.Lock(),
        )

    @staticmethod
    def takes(images: Sequence[Image.Image]) -> bool:
        """Whether every image is already 224x224 RGB (what queries are made into)."""
        return all(
            isinstance(i, Image.Image) and i.size == (_SIDE, _SIDE) and i.mode == "RGB"
            for i in images
        )

    def pixels(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, 3, 224, 224) float32, normalised as CLIP's image processor does."""
        stacked = np.stack([np.asarray(i, dtype=np.uint8) for i in images]).astype(np.float32)
        x = stacked.transpose(0, 3, 1, 2)
        return np.ascontiguousarray((x * self.rescale - self.mean) / self.std, dtype=np.float32)

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        pixels = self.pixels(images)
        with self.lock:
            (out,) = self.session.run(None, {self.session.get_inputs()[0].name: pixels})
        return np.asarray(out, dtype=np.float32)


class QueryExports:
    """The recorded exports of one embedder's towers, opened on first use, each at most once.

    ``text_folder`` and ``image_folder`` are called (once) for the cache folder where
    each tower's export would be; they return None when it cannot be located
    without loading anything (the weights are missing: the full runtime reports it).
    """

    def __init__(
        self,
        text_folder: Callable[[], Path | None],
        image_folder: Callable[[], Path | None],
        *,
        text_precisions: Sequence[str] = ("int8", "fp32"),
        image_precisions: Sequence[str] = ("int8", "fp32"),
        threads: int | None = None,
    ) -> None:
        self._folders = {"text": text_folder, "image": image_folder}
        self._precisions = {"text": tuple(text_precisions), "image": tuple(image_precisions)}
        self._threads = threads
        self._opened: dict[str, QueryText | QueryImage | None] = {}
        self.reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def text(self) -> QueryText | None:
        found = self._open("text")
        return found if isinstance(found, QueryText) else None

    def image(self) -> QueryImage | None:
        found = self._open("image")
        return found if isinstance(found, QueryImage) else None

    def fail(self, role: str, exc: BaseException) -> None:
        """Stop using a recorded export that failed on a query; the full runtime answers."""
        why = f"recorded {role} export failed ({type(exc).__name__}: {_short(exc)})"
        log.warning("torch-free %s queries off: %s", role, why)
        with self._lock:
            self._opened[role] = None
            self.reasons[role] = why

    def reason(self, role: str) -> str | None:
        """Why a recorded export of this tower was not used (None: used, or none recorded)."""
        return self.reasons.get(role)

    def _open(self, role: str) -> QueryText | QueryImage | None:
        if role in self._opened:
            return self._opened[role]
        with self._lock:
            if role not in self._opened:
                self._opened[role] = self._try(role)
            return self._opened[role]

    def _try(self, role: str) -> QueryText | QueryImage | None:
        from lookalike.models.onnx_text import onnx_missing

        try:
            folder = self._folders[role]()
            if folder is None or not (folder / _manifest(role)).is_file():
                return None
            if onnx_missing() is not None:
                return None
            opener = QueryText if role == "text" else QueryImage
            return opener.open(folder, self._precisions[role], self._threads)
        except LookalikeError:
            return None  # the weights cannot be located: the full runtime says what to do
        except Exception as exc:  # a broken export: the full runtime checks and remakes it
            why = f"recorded {role} export does not load ({type(exc).__name__}: {_short(exc)})"
            log.warning("torch-free %s queries off: %s", role, why)
            self.reasons[role] = why
            return None


def _manifest(role: str) -> str:
    return TEXT_MANIFEST if role == "text" else IMAGE_MANIFEST


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def embed_query_texts(
    exports: QueryText, texts: Sequence[str], name: str, batch_size: int
) -> np.ndarray:
    """What ``SentenceTransformerEmbedder.embed_texts`` returns, on a recorded export."""
    from lookalike.models.sentence import _clean_text, _normalise

    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise QueryError("embed_texts takes a list of strings, not one string", field="text")
    if len(texts) == 0:
        return np.zeros((0, exports.dim), dtype=np.float32)
    max_chars = max(2048, _CHARS_PER_TOKEN * (exports.max_tokens or 512))
    prepared = [_clean_text(t, max_chars) for t in texts]
    parts = [
        exports(prepared[start : start + batch_size])
        for start in range(0, len(prepared), batch_size)
    ]
    return _normalise(np.concatenate(parts), len(prepared), exports.dim, name)


def embed_query_images(
    exports: QueryImage, images: Sequence[Image.Image], name: str, batch_size: int
) -> np.ndarray:
    """What ``SentenceTransformerEmbedder.embed_images`` returns, for 224x224 RGB images."""
    from lookalike.models.sentence import _normalise

    if not QueryImage.takes(images):
        raise ImageError("torch-free image queries take 224x224 RGB images", field="image")
    parts = [
        exports(images[start : start + batch_size]) for start in range(0, len(images), batch_size)
    ]
    return _normalise(np.concatenate(parts), len(images), exports.dim, name)
