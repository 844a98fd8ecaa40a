"""Which library runs the configured image model: its preset, else its folder's config.

sentence-transformers runs its own folders and plain transformers ``CLIPModel``
folders (``lookalike.models.factory``); transformers' ``SiglipModel`` runs SigLIP
folders (``lookalike.models.siglip``). Checkpoints published only in open_clip's
format are refused with what to do instead (see ``lookalike.presets``).
"""

from __future__ import annotations

from lookalike.config import DEFAULT_TEXT_MODEL, Settings
from lookalike.errors import LookalikeError, ModelNotAvailableError
from lookalike.models.base import Embedder
from lookalike.models.loading import canonical_name, resolve_model
from lookalike.models.siglip import SiglipEmbedder, is_siglip_folder
from lookalike.presets import preset_for_model

__all__ = ["family_of", "family_embedder"]

#: runtime setting -> (fast paths on, image precision)
_SIGLIP_RUNTIMES: dict[str, tuple[bool, str]] = {
    "auto": (True, "auto"),
    "torch-fast": (True, "auto"),
    "torch-fast-bf16": (True, "bf16"),
    "torch-fast-fp32": (True, "fp32"),
    "torch": (False, "fp32"),
    "sentence-transformers": (False, "fp32"),
}


def family_of(settings: Settings) -> str:
    """ "sentence-transformers", "siglip" or "open_clip" for the configured image model.

    Looks on disk only: a Hub name that is neither a preset nor downloaded yet is
    taken for a sentence-transformers model, as before presets, unless its name
    says SigLIP.
    """
    name = canonical_name(settings.image_model)
    preset = preset_for_model(name)
    if preset is not None:
        return preset.family
    try:
        resolved = resolve_model(
            name, cache_folder=settings.model_cache or None, role="image", allow_download=False
        )
    except LookalikeError:
        # Not here yet: sentence-transformers would run a SigLIP with the wrong padding.
        return "siglip" if "siglip" in name.lower() else "sentence-transformers"
    return "siglip" if is_siglip_folder(resolved.path) else "sentence-transformers"


def family_embedder(settings: Settings, onnx_folder: str) -> Embedder | None:
    """The Embedder for a model that sentence-transformers does not run, else None.

    Raises ModelNotAvailableError for open_clip-only checkpoints.
    """
    family = family_of(settings)
    if family == "open_clip":
        preset = preset_for_model(canonical_name(settings.image_model))
        advice = preset.notes if preset is not None else ""
        raise ModelNotAvailableError(
            f"{settings.image_model} is published in open_clip's format only, which lookalike "
            "does not load (open_clip needs torchvision, which does not install beside the CPU "
            f"build of torch): {advice or 'convert it to a transformers folder first'}",
            field="image_model",
        )
    if family != "siglip":
        return None
    fast, precision = _SIGLIP_RUNTIMES.get(settings.runtime.strip().lower(), (True, "auto"))
    preset = preset_for_model(canonical_name(settings.image_model))
    # SigLIP answers text with its own tower: the default (multilingual CLIP) text model
    # cannot pair with it, so only another explicit choice is passed on (and refused).
    text = "clip" if settings.text_model == DEFAULT_TEXT_MODEL else settings.text_model
    return SiglipEmbedder(
        settings.image_model,
        text,
        cache_folder=settings.model_cache or None,
        batch_size=settings.batch_size,
        fast=fast,
        precision=precision,
        onnx_cache=settings.home / onnx_folder,
        onnx_precision="fp32" if precision == "fp32" and fast else "auto",
        lowercase=bool(preset and preset.lowercase_text),
    )
