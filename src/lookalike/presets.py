"""Model presets: one name for an image model, its text model and how to run them.

``--model laion-b32`` (or ``LOOKALIKE_MODEL=laion-b32``) picks both towers at once;
Hub names and folders keep working as before. ``lookalike models --available``
prints this table. Facts here were checked against the Hugging Face repositories'
configs and model cards where the search tools could reach them; ``unverified``
says where they could not.

Families (the library that loads and runs the weights):

* ``sentence-transformers``: a sentence-transformers folder, or a plain Hugging Face
  ``CLIPModel`` folder (sentence-transformers 6 loads both); runtimes in
  ``lookalike.models.sentence`` and ``lookalike.models.fast_torch``;
* ``siglip``: ``transformers.SiglipModel`` (SigLIP, and SigLIP 2 at a fixed
  resolution, whose configs say ``model_type: siglip``); ``lookalike.models.siglip``;
* ``open_clip``: checkpoints published only in open_clip's format. ``open_clip``
  imports torchvision, which does not install beside the CPU build of torch used
  here, so lookalike does not load them: it says so and how to convert them.

Quality: Flickr30k text->image R@1 (zero-shot) from open_clip's published results
table (``docs/openclip_retrieval_results.csv``) and, for the multilingual model,
average R@1 on Crossmodal-3600 from the NLLB-CLIP paper (arXiv 2309.01859).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lookalike.errors import ConfigError

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Preset",
    "expand_model",
    "get_preset",
    "preset_for_model",
]

OPEN_CLIP_TABLE = "open_clip docs/openclip_retrieval_results.csv (Flickr30k text->image R@1)"


@dataclass(frozen=True)
class Preset:
    """One selectable model pairing and what is known about it."""

    name: str
    title: str
    image_model: str  # a Hub name
    text_model: str  # a Hub name, or "clip": the image model's own text tower
    family: str  # "sentence-transformers", "siglip" or "open_clip"
    library: str  # the library and class that run it, in words
    dim: int
    image_size: int
    preprocessing: str  # in words: resize, crop, mean/std
    text: str  # tokenizer and padding, languages
    licence: str
    research_only: bool = False
    multilingual: bool = False
    quality: dict[str, float] = field(default_factory=dict)
    quality_source: str = ""
    notes: str = ""
    lowercase_text: bool = False  # the model was trained on lower-cased captions

    @property
    def loadable(self) -> bool:
        """Whether lookalike loads it (open_clip-only checkpoints are not)."""
        return self.family != "open_clip"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loadable": self.loadable}


_CLIP_PREP = "shortest side {size} bicubic, centre crop {size}, CLIP mean/std"
_SIGLIP_PREP = "whole image squashed to {size}x{size} bilinear (no crop), mean/std 0.5"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="seed",
            title="OpenAI CLIP ViT-B/32 images, multilingual DistilBERT text (the default)",
            image_model="sentence-transformers/clip-ViT-B-32",
            text_model="sentence-transformers/clip-ViT-B-32-multilingual-v1",
            family="sentence-transformers",
            library="sentence-transformers (CLIPModel + Transformer/Pooling/Dense)",
            dim=512,
            image_size=224,
            preprocessing=_CLIP_PREP.format(size=224),
            text="WordPiece, dynamic padding, 50+ languages (distilled from CLIP's text tower)",
            licence="image: MIT (OpenAI CLIP); text: Apache-2.0 (model card)",
            multilingual=True,
            quality={"flickr30k_t2i_r1": 58.8},
            quality_source=f"{OPEN_CLIP_TABLE}, OpenAI B/32 with its own text tower; "
            "the distilled multilingual text tower is not in that table",
        ),
        Preset(
            name="openai-b32",
            title="OpenAI CLIP ViT-B/32 with its own English text tower",
            image_model="sentence-transformers/clip-ViT-B-32",
            text_model="clip",
            family="sentence-transformers",
            library="sentence-transformers (CLIPModel)",
            dim=512,
            image_size=224,
            preprocessing=_CLIP_PREP.format(size=224),
            text="CLIP byte-level BPE, 77 tokens, English",
            licence="MIT (OpenAI CLIP)",
            quality={"flickr30k_t2i_r1": 58.8},
            quality_source=OPEN_CLIP_TABLE,
            notes="same image vectors as the seed preset: switching between the two "
            "needs no re-indexing",
        ),
        Preset(
            name="laion-b32",
            title="LAION-2B CLIP ViT-B/32 (open_clip, published in Hugging Face format)",
            image_model="laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
            text_model="clip",
            family="sentence-transformers",
            library="transformers CLIPModel, loaded by sentence-transformers",
            dim=512,
            image_size=224,
            preprocessing=_CLIP_PREP.format(size=224),
            text="CLIP byte-level BPE, 77 tokens, English",
            licence="MIT (model card)",
            quality={"flickr30k_t2i_r1": 66.8},
            quality_source=OPEN_CLIP_TABLE,
        ),
        Preset(
            name="datacomp-b32-256",
            title="DataComp CLIP ViT-B/32 at 256 px (rclip's default)",
            image_model="laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K",
            text_model="clip",
            family="open_clip",
            library="open_clip only (open_clip_model.safetensors, open_clip_config.json)",
            dim=512,
            image_size=256,
            preprocessing=_CLIP_PREP.format(size=256),
            text="CLIP byte-level BPE, 77 tokens, English",
            licence="MIT (model card)",
            quality={"flickr30k_t2i_r1": 64.9},
            quality_source=OPEN_CLIP_TABLE,
            notes="the repository holds open_clip weights only (a community config.json "
            "came without weights in transformers' layout); convert them to a "
            "transformers CLIPModel folder (transformers' convert_clip_original_pytorch_to_hf "
            "script) and give that folder to --model: it then loads as a CLIP folder, "
            "at 256 px",
        ),
        Preset(
            name="siglip-b16",
            title="SigLIP ViT-B/16 224 px (English)",
            image_model="google/siglip-base-patch16-224",
            text_model="clip",
            family="siglip",
            library="transformers SiglipModel",
            dim=768,
            image_size=224,
            preprocessing=_SIGLIP_PREP.format(size=224),
            text="SentencePiece (T5, 32k), padded to 64 tokens, English",
            licence="Apache-2.0 (model card)",
            quality={"flickr30k_t2i_r1": 74.7},
            quality_source=f"{OPEN_CLIP_TABLE}, ViT-B-16-SigLIP (the same weights as timm)",
        ),
        Preset(
            name="siglip2-b16",
            title="SigLIP 2 ViT-B/16 224 px (multilingual)",
            image_model="google/siglip2-base-patch16-224",
            text_model="clip",
            family="siglip",
            library="transformers SiglipModel (fixed-resolution SigLIP 2 configs say "
            "model_type siglip)",
            dim=768,
            image_size=224,
            preprocessing=_SIGLIP_PREP.format(size=224),
            text="Gemma SentencePiece (256k), lower-cased, padded to 64 tokens, multilingual",
            licence="Apache-2.0 (model card)",
            multilingual=True,
            quality_source="no SigLIP 2 B/16 figure in open_clip's table was checked here "
            "(SigLIP B/16: 74.7); unverified",
            notes="SigLIP 2's documentation asks for lower-cased text, padding to 64 tokens",
            lowercase_text=True,
        ),
        Preset(
            name="nllb-siglip-b",
            title="NLLB-CLIP: SigLIP ViT-B/16 images, NLLB text (201 languages)",
            image_model="visheratin/nllb-clip-base-siglip",
            text_model="clip",
            family="open_clip",
            library="open_clip only (open_clip_pytorch_model.bin, open_clip_config.json)",
            dim=768,
            image_size=384,
            preprocessing="as SigLIP (squash, mean/std 0.5) at the size in open_clip_config.json "
            "(unverified here)",
            text="NLLB SentencePiece tokenizer, 201 languages",
            licence="CC-BY-NC-4.0 (model card): non-commercial use only",
            research_only=True,
            multilingual=True,
            quality={"xm3600_avg_r1": 50.7},
            quality_source="NLLB-CLIP paper (arXiv 2309.01859), Crossmodal-3600 average R@1; "
            "OpenAI B/32: 4.1",
            notes="non-commercial licence: never a default; open_clip format only",
        ),
    ]
}

DEFAULT_PRESET = "seed"


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (ConfigError listing the names otherwise)."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise ConfigError(
            f"unknown model preset {name!r}: use one of {', '.join(PRESETS)} "
            "(`lookalike models --available`), a Hugging Face name or a model folder",
            field="image_model",
        )
    return PRESETS[key]


def expand_model(image_model: str, text_model: str, default_text: str) -> tuple[str, str]:
    """(image, text) with a preset name in ``image_model`` replaced by its models.

    The preset's text model applies unless another one than ``default_text`` was
    chosen (then the choice stands: a user's own pairing).
    """
    key = image_model.strip().lower()
    if key not in PRESETS:
        return image_model, text_model
    preset = PRESETS[key]
    text = preset.text_model if text_model.strip() == default_text else text_model
    return preset.image_model, text


def preset_for_model(image_model: str) -> Preset | None:
    """The first preset whose image model is ``image_model`` (a Hub name), if any."""
    for preset in PRESETS.values():
        if preset.image_model == image_model:
            return preset
    return None
