"""Choosing a runtime for the configured models, and reporting on them (``lookalike models``).

A runtime is a name (the ``runtime`` setting) mapped to a function that builds
an Embedder from Settings. To add one, write its builder and add it to ``RUNTIMES``.

* ``auto`` (the default) and ``torch-fast``: ``FastTorchEmbedder``, images in bf16
  where the CPU multiplies bf16 natively, fp32 elsewhere; text queries through ONNX
  Runtime in int8 (else fp32), exported once per model and version into
  ``<home>/onnx``, when onnxruntime is installed, else torch fp32; each fast path
  is checked against the reference at load and gives way when it disagrees;
* ``torch-fast-bf16``: the same with bf16 images forced; ``torch-fast-fp32``: fp32
  throughout (fp32 images, fp32 ONNX text);
* ``torch`` / ``sentence-transformers``: the reference runtime.

Every runtime reads the same weights and records the same ``ModelInfo``, so a
collection indexed with one can be searched with another.
"""

from __future__ import annotations

from collections.abc import Callable

from lookalike.config import Settings
from lookalike.errors import ConfigError, ModelError, ModelNotAvailableError
from lookalike.models.base import Embedder, ModelStatus
from lookalike.models.fast_torch import RUNTIME as FAST_RUNTIME, FastTorchEmbedder
from lookalike.models.loading import (
    ResolvedModel,
    canonical_name,
    hub_cache_dirs,
    is_hub_name,
    model_id_for,
    resolve_model,
)
from lookalike.models.sentence import (
    RUNTIME as ST_RUNTIME,
    SentenceTransformerEmbedder,
    uses_clip_text,
)

__all__ = ["ONNX_FOLDER", "RUNTIMES", "create_embedder", "model_statuses", "runtime_name"]

#: where, under the ``home`` setting, the text encoders' ONNX exports are cached
ONNX_FOLDER = "onnx"


def _sentence_transformers(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(
        settings.image_model,
        settings.text_model,
        cache_folder=settings.model_cache or None,
        batch_size=settings.batch_size,
    )


def _fast(precision: str) -> Callable[[Settings], Embedder]:
    def build(settings: Settings) -> Embedder:
        return FastTorchEmbedder(
            settings.image_model,
            settings.text_model,
            precision=precision,
            cache_folder=settings.model_cache or None,
            batch_size=settings.batch_size,
            onnx_cache=settings.home / ONNX_FOLDER,
            onnx_precision="fp32" if precision == "fp32" else "auto",
        )

    return build


#: runtime setting -> (runtime name reported to users, builder)
RUNTIMES: dict[str, tuple[str, Callable[[Settings], Embedder]]] = {
    "auto": (FAST_RUNTIME, _fast("auto")),
    "torch-fast": (FAST_RUNTIME, _fast("auto")),
    "torch-fast-bf16": (FAST_RUNTIME, _fast("bf16")),
    "torch-fast-fp32": (FAST_RUNTIME, _fast("fp32")),
    "torch": (ST_RUNTIME, _sentence_transformers),
    "sentence-transformers": (ST_RUNTIME, _sentence_transformers),
}


def _runtime(settings: Settings) -> tuple[str, Callable[[Settings], Embedder]]:
    key = settings.runtime.strip().lower()
    if key not in RUNTIMES:
        raise ConfigError(
            f"unknown runtime {settings.runtime!r}: use one of {', '.join(sorted(RUNTIMES))}",
            field="runtime",
        )
    return RUNTIMES[key]


def runtime_name(settings: Settings) -> str:
    """The runtime that ``settings.runtime`` selects (ConfigError when unknown)."""
    return _runtime(settings)[0]


def create_embedder(settings: Settings) -> Embedder:
    """The Embedder for the configured models and runtime. Nothing loads until first use."""
    from lookalike.models.families import family_embedder

    build = _runtime(settings)[1]  # an unknown runtime fails first, whatever the model
    return family_embedder(settings, ONNX_FOLDER) or build(settings)


def _locate(name: str, role: str, settings: Settings) -> tuple[ModelStatus, ResolvedModel | None]:
    """Where the weights are, looking on disk only (a report never downloads)."""
    cache = settings.model_cache or None
    try:
        resolved = resolve_model(name, cache_folder=cache, role=role, allow_download=False)
    except (ModelNotAvailableError, ConfigError) as exc:
        if is_hub_name(canonical_name(name)):
            location = ", ".join(str(d) for d in hub_cache_dirs(cache))
        else:
            location = name
        return ModelStatus(
            role=role, name=name, location=location, available=False, detail=exc.message
        ), None
    status = ModelStatus(
        role=role,
        name=name,
        location=str(resolved.path),
        available=True,
        extra={"source": resolved.source},
    )
    return status, resolved


def model_statuses(settings: Settings, *, try_load: bool = True) -> list[ModelStatus]:
    """One status per configured model, image then text: where, available, whether it loads.

    Never downloads. With ``try_load`` the available models are loaded (which
    takes a few seconds for real weights) and their dimensions compared.
    """
    runtime = runtime_name(settings)
    image, image_resolved = _locate(settings.image_model, "image", settings)
    from lookalike.models.families import family_of  # SigLIP answers text with its own tower

    shares = uses_clip_text(settings.image_model, settings.text_model) or (
        family_of(settings) == "siglip"
    )
    if shares:
        text = ModelStatus(
            role="text",
            name=settings.text_model,
            location=image.location,
            available=image.available,
            detail=image.detail or "the image model's own text tower (English)",
            extra={"source": image.extra.get("source")} if image.available else {},
        )
    else:
        text, _ = _locate(settings.text_model, "text", settings)
    for status in (image, text):
        status.runtime = runtime
        status.extra.setdefault("dim", None)
    if image_resolved is not None:
        try:
            image.extra["model_id"] = model_id_for(image_resolved)
        except ModelNotAvailableError as exc:
            image.available, image.detail = False, exc.message
    if not try_load:
        return [image, text]

    embedder = create_embedder(settings)
    for status, loader in ((image, embedder.load_images), (text, embedder.load_texts)):
        if not status.available:
            continue
        try:
            loader()
        except ModelError as exc:
            status.loads, status.detail = False, exc.message
            continue
        status.loads = True
        dim = embedder.text_dim if status.role == "text" else embedder.dim
        status.extra["dim"] = dim
    _describe_runtime(embedder, [image, text])
    return [image, text]


def _describe_runtime(embedder: Embedder, statuses: list[ModelStatus]) -> None:
    """Say which path runs each loaded tower and why (e.g. "torch-fast bf16: CPU has AMX-BF16")."""
    for status in statuses:
        described = embedder.runtime_for(status.role) if status.loads else None
        if described is None:
            continue
        active, why = described
        status.extra["active_runtime"], status.extra["runtime_reason"] = active, why
        line = f"{active}: {why}"
        status.detail = f"{status.detail}; {line}" if status.detail else line
