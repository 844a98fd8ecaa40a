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
  Given an ``onnx_cache`` folder and ONNX Runtime, that encoder is exported once
  per model and version (``lookalike.models.onnx_text``) and run by ONNX Runtime in
  int8, else fp32; otherwise by torch in fp32 (one short query is latency-bound:
  bf16 does not pay there).

Each fast path is checked once, at load, against the reference runtime on the same
weights (cosine >= 0.9999 in fp32, >= 0.999 in bf16 and int8); a path that fails, or
a model it does not recognise, gives way to the next (ONNX int8, ONNX fp32, torch
fp32, sentence-transformers), and ``runtime_for`` says which path is active and why
(``lookalike models``).

torch.compile is left out on purpose: it compiles for minutes on a laptop and fails
on some CPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ConfigError, LookalikeError
from lookalike.models import onnx_image, onnx_query, onnx_text, vision_int8, vision_int8_warm
from lookalike.models.cpu import (
    CpuFeatures,
    Precision,
    choose_precision,
    cpu_features,
    prefers_int8,
)
from lookalike.models.onnx_cache import ExportCache
from lookalike.models.onnx_query import (
    QueryExports,
    embed_query_images,
    embed_query_texts,
)
from lookalike.models.onnx_record import record_text
from lookalike.models.query_prep import export_image_tower, locate_cache, pending_exports
from lookalike.models.sentence import SentenceTransformerEmbedder, _Tower
from lookalike.models.text_fast import (
    CLIP_TEXT,
    POOLED_TEXT,
    TEXT_CHECKS,
    TextRunner,
    clip_text,
    mean_pooled_denses,
    pooled_text,
)
from lookalike.models.vision_fast import Vision, check_images, min_cosine
from lookalike.models.vision_int8_warm import Int8Warm
from lookalike.models.vision_saved import MODULE, SavedVision, load_saved, save_vision, saved_cache

__all__ = ["RUNTIME", "FastTorchEmbedder"]

log = logging.getLogger(__name__)

RUNTIME = "torch-fast"
#: the load check's bar, per precision (the fidelity tests hold the same bars)
CHECK_COSINE: dict[str, float] = {"fp32": 0.9999, "bf16": 0.999, "int8": 0.999}
ONNX_PRECISIONS = ("auto", "int8", "fp32")


@dataclass
class _Path:
    """One modality's active path: a fast runner, or None (reference) with the reason."""

    run: Callable[[list[Any]], np.ndarray] | None
    runtime: str
    reason: str


class FastTorchEmbedder(SentenceTransformerEmbedder):
    """Embedder that runs the sentence-transformers weights directly (see the module doc).

    ``precision`` is "auto" (bf16 where the CPU has AMX-BF16 or AVX512-BF16, else
    fp32), "bf16" or "fp32"; ``features`` replaces the CPU check (tests).
    ``onnx_cache`` is the folder for the text encoder's ONNX exports (None: no
    ONNX); ``onnx_precision`` "auto" (int8, else fp32), "int8" or "fp32";
    ``onnx_threads`` ONNX Runtime's threads (None: ``onnx_text.default_threads``).
    """

    runtime = RUNTIME

    def __init__(
        self,
        image_model: str,
        text_model: str,
        *,
        precision: str = "auto",
        features: Callable[[], CpuFeatures] | None = None,
        onnx_cache: Path | None = None,
        onnx_precision: str = "auto",
        onnx_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_model, text_model, **kwargs)
        self.requested_precision = precision
        choose_precision(_torch_request(precision), CpuFeatures())  # a wrong value fails now
        if onnx_precision not in ONNX_PRECISIONS:
            raise ConfigError(
                f"unknown ONNX precision {onnx_precision!r}: use auto, int8 or fp32",
                field="runtime",
            )
        if onnx_threads is not None and onnx_threads < 1:
            raise ConfigError("onnx_threads must be 1 or more", field="runtime")
        self.onnx_cache = Path(onnx_cache) if onnx_cache is not None else None
        self.onnx_precision = onnx_precision
        self.onnx_threads = onnx_threads
        self._features = features or cpu_features
        self._vision_path: _Path | None = None
        self._text_path: _Path | None = None
        # a tower that loads without the reference model (vision_saved, vision_int8_warm)
        self._saved: SavedVision | Int8Warm | None = None
        self._vision_cosine: float | None = None  # the image fast path's load check
        self.image_export_note = ""  # how the image export went (prepare_queries)
        self.int8_export_note = ""  # how the int8 indexing export went (prepare_queries)
        # Exports recorded by an earlier process answer queries without loading torch.
        self._queries = (
            QueryExports(
                self._text_folder,
                self._image_folder,
                text_precisions=("int8", "fp32") if onnx_precision == "auto" else (onnx_precision,),
                threads=onnx_threads,
            )
            if self.onnx_cache is not None
            else None
        )

    # -- reporting -------------------------------------------------------------------------

    @property
    def precision(self) -> Precision:
        """The image tower's planned (before load) or active precision."""
        path = self._vision_path
        if path is not None and path.run is not None:
            last = path.runtime.split()[-1]
            return "int8" if last == "int8" else "bf16" if last == "bf16" else "fp32"
        if self._saved is not None:
            saved = self._saved.precision
            return "int8" if saved == "int8" else "bf16" if saved == "bf16" else "fp32"
        if self._int8_ready():
            return "int8"
        return choose_precision(_torch_request(self.requested_precision), self._features())[0]

    def runtime_for(self, role: str) -> tuple[str, str]:
        """(runtime, why) for the "image" or "text" tower: what runs now, or would at load."""
        path = self._vision_path if role == "image" else self._text_path
        failed = self._queries.reason(role) if self._queries is not None else None
        if path is not None:
            return path.runtime, f"{path.reason}; {failed}" if failed else path.reason
        saved = self._saved if role == "image" else None
        if isinstance(saved, Int8Warm):
            return "onnx int8", (
                f"int8 export {saved.path.name}, checked at load against the reference's "
                f"recorded vectors (cosine {saved.cosine:.5f})"
            )
        if saved is not None:
            return f"{RUNTIME} {saved.precision}", (
                f"saved tower in {saved.path.parent} (traced from the checked fast path; "
                f"cosine {saved.cosine:.5f} to the reference when saved)"
            )
        light = self._light(role)
        if light is not None:
            return f"onnx {light.precision}", (
                f"torch-free query path: export recorded in {light.path.parent}, "
                "checked against the reference when made"
            )
        if role == "image":
            int8, int8_why = self._int8_planned()
            if int8 and self._int8_ready():
                return "onnx int8", f"{int8_why} (checked against the reference at load)"
            precision, why = choose_precision(
                _torch_request(self.requested_precision), self._features()
            )
            later = "; int8 once its export is made (after an index run)" if int8 else ""
            return f"{RUNTIME} {precision}", f"{why} (checked against the reference at load){later}"
        if self.onnx_cache is not None and onnx_text.onnx_missing() is None:
            first = "int8" if self.onnx_precision == "auto" else self.onnx_precision
            return f"onnx {first}", (
                f"dynamic padding, exported once to {self.onnx_cache} "
                "(checked against the reference at load)"
            )
        return f"{RUNTIME} fp32", "dynamic padding (checked against the reference at load)"

    def text_export_pending(self) -> bool:
        """Whether loading the text tower will first export it for ONNX Runtime (once per
        model and version; tens of seconds for the multilingual model), so that callers
        can say so, or do it ahead of the first query. True too while the export is not
        yet recorded for torch-free queries (``lookalike.models.onnx_query``)."""
        if self._text_path is not None or self.onnx_cache is None:
            return False
        if onnx_text.onnx_missing() is not None:
            return False
        return pending_exports({"text": self._text_folder()}) == ["text"]

    def query_exports_pending(self) -> list[str]:
        """The towers ("text", "image") whose torch-free query export, or the image tower's
        int8 indexing export (``vision_int8``, where the CPU prefers int8), is not made yet
        (``prepare_queries`` makes them); empty without ONNX Runtime or an export folder."""
        if self.onnx_cache is None or onnx_text.onnx_missing() is not None:
            return []
        pending = pending_exports({"text": self._text_folder(), "image": self._image_folder()})
        if "image" not in pending and self._int8_pending():
            pending.append("image")
        return pending

    def prepare_queries(self) -> None:
        """Make, once per model and version, the checked exports that let later processes
        answer text and image queries without torch (``lookalike index`` calls this), and,
        where the CPU prefers int8, the int8 image tower later index runs use.

        Raises what loading the text tower raises; an image export that fails or misses
        its check only leaves image queries on torch (``image_export_note`` says why),
        or indexing on bf16/fp32 (``int8_export_note``).
        """
        if self.onnx_cache is None or onnx_text.onnx_missing() is not None:
            return
        pending = pending_exports({"text": self._text_folder(), "image": self._image_folder()})
        if "text" in pending:
            self.load_texts()
        cache = self._image_cache()
        int8 = self._int8_pending()
        if ("image" in pending and cache is not None) or int8:
            path, loaded = self._vision_path, self._image
            rounded = path is not None and path.run is not None and path.runtime.endswith("bf16")
            # The exports need fp32 weights: a tower rounded to bf16 in place is read again.
            tower = (
                loaded
                if loaded is not None and not rounded
                else self._load(self.image_model, "image")
            )
            if "image" in pending and cache is not None:
                self.image_export_note = export_image_tower(
                    cache, tower, super()._encode, bars=CHECK_COSINE, threads=self.onnx_threads
                )
            if int8:
                self.int8_export_note = self._make_int8(tower)

    def _int8_planned(self) -> tuple[bool, str]:
        """Whether the image tower is to run in int8 here (CPU and ONNX Runtime), and why."""
        wanted, why = prefers_int8(self.requested_precision, self._features())
        if wanted and (self.onnx_cache is None or onnx_text.onnx_missing() is not None):
            return False, "int8 needs ONNX Runtime and an export folder"
        return wanted, why

    def _int8_cache(self) -> ExportCache | None:
        return locate_cache(
            self.onnx_cache, self.image_model, "image", self.cache_folder,
            lambda folder: vision_int8.int8_cache(self.onnx_cache, folder),  # type: ignore[arg-type]
        )  # fmt: skip

    def _int8_ready(self) -> bool:
        """Whether a load would find the int8 export made (it is checked then)."""
        if not self._int8_planned()[0]:
            return False
        return vision_int8.ready(self._int8_cache())

    def _int8_pending(self) -> bool:
        return self._int8_planned()[0] and vision_int8.pending(self._int8_cache())

    def _make_int8(self, tower: _Tower) -> str:
        """Make and check the int8 indexing export from an fp32 tower; what happened."""
        cache = self._int8_cache()
        module = tower.model[0]
        clip: Any = getattr(module, "auto_model", None)
        processor = getattr(getattr(module, "processor", None), "image_processor", None)
        parts = ("vision_model", "visual_projection")
        if cache is None or not all(hasattr(clip, a) for a in parts):
            return "int8 not used: not a CLIP vision tower the export knows"
        reference = super()._encode(tower, vision_int8.held_out_images())
        with tower.lock:
            note = vision_int8.ensure_int8(
                cache, clip.vision_model, clip.visual_projection, processor, reference,
                CHECK_COSINE["int8"],
            )  # fmt: skip
        if vision_int8.ready(cache):  # the next index run starts without this model
            vision_int8_warm.save_warm(cache, processor, super()._encode(tower, check_images()))
        return note

    def _text_cache(self) -> ExportCache | None:
        """Where the text encoder's exports are, found without loading anything."""
        shared = self.shares_clip_text
        name, role = (self.image_model, "image") if shared else (self.text_model, "text")
        kind = CLIP_TEXT if shared else POOLED_TEXT
        return locate_cache(
            self.onnx_cache, name, role, self.cache_folder,
            lambda folder: onnx_text.text_cache(self.onnx_cache, folder, kind),  # type: ignore[arg-type]
        )  # fmt: skip

    def _text_folder(self) -> Path | None:
        cache = self._text_cache()
        return cache.folder if cache is not None else None

    def _image_cache(self) -> ExportCache | None:
        return locate_cache(
            self.onnx_cache, self.image_model, "image", self.cache_folder,
            lambda folder: onnx_image.image_cache(self.onnx_cache, folder),  # type: ignore[arg-type]
        )  # fmt: skip

    def _image_folder(self) -> Path | None:
        cache = self._image_cache()
        return cache.folder if cache is not None else None

    def _light(self, role: str) -> Any:
        """The recorded torch-free export for queries of this tower, when no torch path is
        loaded and one is recorded (None otherwise)."""
        if self._queries is None:
            return None
        if role == "text":
            return self._queries.text() if self._text_path is None else None
        return self._queries.image() if self._image is None and self._saved is None else None

    # -- the saved image tower (vision_saved): a warm start without sentence-transformers -------

    def _saved_cache(self) -> ExportCache | None:
        planned = choose_precision(_torch_request(self.requested_precision), self._features())[0]
        return locate_cache(
            self.onnx_cache, self.image_model, "image", self.cache_folder,
            lambda folder: saved_cache(self.onnx_cache, folder, planned),  # type: ignore[arg-type]
        )  # fmt: skip

    def load_images(self) -> None:
        """A tower that loads without the reference model when one is recorded for this
        model and version (a fraction of a second): the int8 export where this CPU takes
        int8 and its recorded check passes (``vision_int8_warm``), else the saved torch
        tower; otherwise the ordinary load with its checks."""
        if self._image is None and self._saved is None and self._int8_ready():
            warm, note = vision_int8_warm.open_warm(self._int8_cache(), CHECK_COSINE["int8"])
            with self._lock:
                if self._saved is None and warm is not None:
                    self._saved = warm
            if warm is None:
                log.info("int8 warm start off: %s", note)
        if self._image is None and self._saved is None:
            cache = self._saved_cache()
            if cache is not None and cache.has(MODULE):
                with self._lock:
                    if self._saved is None:
                        self._saved = load_saved(cache)
        if self._image is None and self._saved is not None:
            return
        super().load_images()

    @property
    def dim(self) -> int:
        saved = self._saved
        if saved is not None and self._image is None:
            return saved.dim
        return super().dim

    def warm_start_pending(self) -> bool:
        """Whether no saved image tower exists yet for this model and version (none is
        needed where the int8 export starts warm)."""
        if self._int8_ready():
            int8 = self._int8_cache()
            if int8 is not None and int8.has(vision_int8_warm.WARM):
                return False
        cache = self._saved_cache()
        return cache is not None and not cache.has(MODULE)

    def prepare_warm_start(self) -> str:
        """Load the image tower the ordinary way (checks included) and save its fast path
        for later processes (once per model and version)."""
        cache = self._saved_cache()
        if cache is None or cache.has(MODULE):
            return ""
        tower = self._image_tower()  # the ordinary load: the fast path and its check
        path, cosine = self._vision_path, self._vision_cosine
        if path is None or not isinstance(path.run, Vision) or cosine is None:
            return "image tower not saved: no fast path to save"
        precision = "bf16" if path.runtime.endswith("bf16") else "fp32"
        return save_vision(cache, path.run, precision, cosine, tower.dim)

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
        precision, why = choose_precision(
            _torch_request(self.requested_precision), self._features()
        )
        images = check_images()
        reference = super()._encode(tower, list(images))
        clip0: Any = getattr(tower.model[0], "auto_model", None)
        # Release the CLIP text tower when another model answers text queries (~250 MB).
        if not self.shares_clip_text and hasattr(clip0, "text_model"):
            clip0.text_model = None
        int8, int8_why = self._int8_planned()
        if int8:
            cache = self._int8_cache()
            runner8, note = (
                vision_int8.open_int8(cache, processor, images, reference, CHECK_COSINE["int8"])
                if cache is not None
                else (None, "no export folder for the int8 tower")
            )
            if runner8 is not None:
                if cache is not None:  # later loads check against these, without this model
                    vision_int8_warm.save_warm(cache, processor, reference)
                return _Path(runner8, "onnx int8", f"{int8_why}; {note}")
            why = f"{why}; int8 not used: {note}"
        attempts: list[Precision] = ["bf16", "fp32"] if precision == "bf16" else ["fp32"]
        failures: list[str] = []
        for attempt in attempts:
            clip: Any = getattr(tower.model[0], "auto_model", None)
            if not self.shares_clip_text and hasattr(clip, "text_model"):  # a reloaded tower
                clip.text_model = None
            dtype = torch.bfloat16 if attempt == "bf16" else torch.float32
            # In place, one tensor at a time: no second copy of the weights, ever.
            vision, projection = clip.vision_model.to(dtype), clip.visual_projection.to(dtype)
            runner = Vision(vision, projection, processor, dtype)
            with tower.lock:
                cosine = min_cosine(runner(images), reference)
            if cosine >= CHECK_COSINE[attempt]:
                self._vision_cosine = cosine
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
            encode = clip_text(inner)
            graph = onnx_text.TextGraph(
                CLIP_TEXT, encode, (inner.text_model, inner.text_projection)
            )
        else:
            denses = mean_pooled_denses(modules[1:])
            if denses is None:
                return _Path(
                    None,
                    "sentence-transformers",
                    "only Transformer + mean Pooling (+ Dense, Normalize) text models run fast",
                )
            encode = pooled_text(inner, denses)
            graph = onnx_text.TextGraph(POOLED_TEXT, encode, (inner, *denses))
        runner = TextRunner(
            tokenizer, tower.max_tokens, encode, lower=bool(getattr(first, "do_lower_case", False))
        )
        texts = list(TEXT_CHECKS)
        reference = super()._encode(tower, texts)
        onnx_path, onnx_note = self._attach_onnx(tower, runner, graph, texts, reference)
        if onnx_path is not None:
            _release(graph.modules)
            return onnx_path
        with tower.lock:
            cosine = min_cosine(runner(texts), reference)
        if cosine < CHECK_COSINE["fp32"]:
            reason = f"fp32 load check: cosine {cosine:.5f} < {CHECK_COSINE['fp32']}"
            log.warning("fast text path off: %s", reason)
            return _Path(None, "sentence-transformers", _joined(reason, onnx_note))
        return _Path(runner, f"{RUNTIME} fp32", _joined("dynamic padding", onnx_note))

    def _attach_onnx(
        self,
        tower: _Tower,
        runner: TextRunner,
        graph: onnx_text.TextGraph,
        texts: list[str],
        reference: np.ndarray,
    ) -> tuple[_Path | None, str]:
        """The ONNX text path when it is on and passes its check, else (None, why not)."""
        if self.onnx_cache is None:
            return None, ""
        assert tower.resolved.path is not None

        scores: list[float] = []

        def score(encoder: onnx_text.OnnxTextEncoder) -> float:
            with tower.lock:  # the tokenizer is not thread-safe
                together = encoder(texts)
                alone = np.concatenate([encoder([t]) for t in texts])
            scores.append(min(min_cosine(together, reference), min_cosine(alone, reference)))
            return scores[-1]

        encoder, why = onnx_text.attach(
            self.onnx_cache,
            tower.resolved.path,
            graph,
            lambda batch: runner.tokens(batch, "np"),
            precisions=["int8", "fp32"] if self.onnx_precision == "auto" else [self.onnx_precision],
            score=score,
            bars=CHECK_COSINE,
            threads=self.onnx_threads,
        )
        if encoder is None:
            return None, why
        cache = self._text_cache()
        if cache is not None:  # let later processes answer text queries without torch
            with tower.lock:
                note = record_text(
                    cache, encoder.path, encoder.precision, scores[-1], int(reference.shape[1]),
                    tokenizer=runner.tokenizer, max_tokens=runner.max_tokens, lower=runner.lower,
                    tokens=lambda batch: runner.tokens(batch, "np"), texts=texts,
                    probe_vector=[float(v) for v in encoder([onnx_query.PROBE_TEXT])[0]],
                    again=self._queries is not None and self._queries.reason("text") is not None,
                )  # fmt: skip
            why = f"{why}; {note}" if note else why
        return _Path(encoder, f"onnx {encoder.precision}", why), ""

    # -- encoding ---------------------------------------------------------------------------

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """As the reference runtime; on a recorded export (torch never loads) when there is one."""
        light = self._light("text")
        if light is not None:
            try:
                return embed_query_texts(light, texts, self.text_model, self.batch_size)
            except LookalikeError:
                raise
            except Exception as exc:  # a damaged export: the full runtime checks and remakes it
                self._queries.fail("text", exc)  # type: ignore[union-attr]
        return super().embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """As the reference runtime. Queries of 224x224 images (what ``lookalike.images``
        makes) run on a recorded export while no torch image tower is loaded; indexing
        loads the tower first (``load_images``) and so always runs on torch."""
        saved = self._saved
        if saved is not None and self._image is None and _image_list(images) and images:
            if saved.takes(images):
                return saved.embed(images, self.batch_size, self.image_model)
            super().load_images()  # input the saved tower does not take: the ordinary one
        light = self._light("image") if images and not isinstance(images, Image.Image) else None
        if light is not None and onnx_query.QueryImage.takes(images):
            try:
                return embed_query_images(light, images, self.image_model, self.batch_size)
            except LookalikeError:
                raise
            except Exception as exc:
                self._queries.fail("image", exc)  # type: ignore[union-attr]
        return super().embed_images(images)

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


def _torch_request(precision: str) -> str:
    """The torch precision behind a request: "int8" falls back as "auto" does."""
    return "auto" if precision.strip().lower() == "int8" else precision


def _guarded(attach: Callable[[_Tower], _Path], tower: _Tower) -> _Path:
    """Attach a fast path; any surprise leaves the tower on the reference path, with why."""
    try:
        return attach(tower)
    except Exception as exc:  # an unforeseen model variant must not stop a working model
        log.warning("fast path off: %s: %s", type(exc).__name__, exc)
        return _Path(
            None, "sentence-transformers", f"fast path failed ({type(exc).__name__}: {exc})"
        )


def _image_list(images: Any) -> bool:
    return isinstance(images, Sequence) and not isinstance(images, Image.Image)


def _release(modules: Sequence[Any]) -> None:
    """Free the torch weights of a text encoder that ONNX Runtime now runs (~540 MB for
    the multilingual model): they were needed only as the load check's reference. The
    modules keep their shapes on the "meta" device, so a stray call fails loudly."""
    for module in modules:
        module.to("meta")


def _joined(reason: str, note: str) -> str:
    return f"{reason}; {note}" if note else reason
