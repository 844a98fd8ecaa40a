"""The decode spec read from a model folder's processor config (real JSON files on disk)."""

from __future__ import annotations

import json
from pathlib import Path

from lookalike.image_prep import CLIP_PREP, ImagePrep, read_image_prep
from lookalike.images import PREPROCESS_VERSION


def write(folder: Path, name: str, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_the_seed_clip_keeps_the_historical_preprocessing_id(tmp_path: Path) -> None:
    """sentence-transformers/clip-ViT-B-32 keeps a transformers-4.6 config in 0_CLIPModel/."""
    write(tmp_path, "modules.json", [{"idx": 0, "name": "0", "path": "0_CLIPModel"}])  # type: ignore[arg-type]
    old = {"size": 224, "crop_size": 224, "do_center_crop": True, "resample": 3,
           "image_mean": [0.48145466, 0.4578275, 0.40821073]}  # fmt: skip
    write(tmp_path / "0_CLIPModel", "preprocessor_config.json", old)
    prep = read_image_prep(tmp_path)
    assert prep == CLIP_PREP and prep.version == PREPROCESS_VERSION


def test_siglip_and_256_px_clip_configs(tmp_path: Path) -> None:
    siglip = {"image_processor": {"size": {"height": 384, "width": 384}, "resample": 2}}
    assert read_image_prep(write(tmp_path / "s", "processor_config.json", siglip)) == ImagePrep(
        384, crop=False, resample="bilinear"
    )
    clip = {"size": {"shortest_edge": 256}, "crop_size": {"height": 256, "width": 256},
            "do_center_crop": True, "resample": 3}  # fmt: skip
    prep = read_image_prep(write(tmp_path / "c", "preprocessor_config.json", clip))
    assert prep.version == "rgb-on-white/short256-bicubic/center-crop/v1"


def test_no_or_broken_config_means_clip_224(tmp_path: Path) -> None:
    assert read_image_prep(None) == CLIP_PREP
    (tmp_path / "preprocessor_config.json").write_text("{not json", encoding="utf-8")
    assert read_image_prep(tmp_path) == CLIP_PREP
