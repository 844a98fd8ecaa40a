"""What a model's image preprocessing wants from the decoder: size, crop or squash, filter.

CLIP models resize the shortest side and crop the centre; SigLIP models squash the
whole image to a square. The decode workers produce exactly that (``images.model_ready``),
so the model's own processor then only rescales and normalises. The spec is read
from the model folder's processor config (cheap: JSON only, no model load), and
its ``version`` is what a store records as the vectors' preprocessing, so vectors
made with different preprocessing are never mixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["CLIP_PREP", "ImagePrep", "read_image_prep"]

Resample = Literal["bicubic", "bilinear"]
_RESAMPLE_CODES: dict[int, Resample] = {3: "bicubic", 2: "bilinear"}
_CONFIG_FILES = ("preprocessor_config.json", "processor_config.json")


@dataclass(frozen=True)
class ImagePrep:
    """``size`` pixels square; ``crop``: shortest side then centre crop (CLIP), else the
    whole image resized to the square (SigLIP); ``resample``: the resize filter."""

    size: int = 224
    crop: bool = True
    resample: Resample = "bicubic"

    @property
    def version(self) -> str:
        """The preprocessing id stored with the vectors (CLIP 224's is the historical one)."""
        if self.crop:
            return f"rgb-on-white/short{self.size}-{self.resample}/center-crop/v1"
        return f"rgb-on-white/square{self.size}-{self.resample}/v1"


#: CLIP ViT-B/32 at 224 px: what every collection before presets was made with
CLIP_PREP = ImagePrep()


def _image_processor_config(folder: Path) -> dict[str, Any] | None:
    for name in _CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        inner = data.get("image_processor")
        return inner if isinstance(inner, dict) else data
    return None


def _model_folders(folder: Path) -> list[Path]:
    """The folder, then (sentence-transformers layout) its modules' folders in order."""
    out = [folder]
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return out
    if isinstance(modules, list):
        for module in modules:
            path = module.get("path") if isinstance(module, dict) else None
            if isinstance(path, str) and path:
                out.append(folder / path)
    return out


def read_image_prep(folder: Path | None, default: ImagePrep = CLIP_PREP) -> ImagePrep:
    """The decode spec for the model in ``folder``, from its image processor config."""
    if folder is None:
        return default
    for candidate in _model_folders(Path(folder)):
        config = _image_processor_config(candidate)
        if config is None:
            continue
        return _from_config(config, default)
    return default


def _from_config(config: dict[str, Any], default: ImagePrep) -> ImagePrep:
    size = config.get("size")
    crop_size = config.get("crop_size")
    resample = _RESAMPLE_CODES.get(config.get("resample", 3), default.resample)
    do_crop = bool(config.get("do_center_crop", False))
    if isinstance(crop_size, dict):
        crop_size = crop_size.get("height")
    if isinstance(size, dict) and "shortest_edge" in size:
        side = int(size["shortest_edge"])
        if do_crop and isinstance(crop_size, int):
            side = crop_size
        return ImagePrep(size=side, crop=True, resample=resample)
    if isinstance(size, dict) and "height" in size and size.get("height") == size.get("width"):
        return ImagePrep(size=int(size["height"]), crop=do_crop, resample=resample)
    if isinstance(size, int):  # transformers 4.6 configs, as sentence-transformers' CLIPs
        side = crop_size if do_crop and isinstance(crop_size, int) else size
        return ImagePrep(size=side, crop=True, resample=resample)
    return default
