"""Each preset family against its reference library, on the same random weights.

The reference is the library's own forward pass, called here directly: the
transformers ``CLIPModel`` / ``SiglipModel`` with its ``AutoProcessor``
(``get_image_features`` / ``get_text_features``). Bars: cosine >= 0.9999 in fp32,
>= 0.999 in bf16 and int8. The CPU's flags are injected (``CpuFeatures``) to force
the bf16 path on any machine; nothing else is mocked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.image_prep import ImagePrep, read_image_prep
from lookalike.images import model_ready
from lookalike.models.cpu import CpuFeatures
from lookalike.models.fast_torch import FastTorchEmbedder
from lookalike.models.sentence import SentenceTransformerEmbedder
from lookalike.models.siglip import TEXT_TOKENS, SiglipEmbedder

AMX = CpuFeatures(frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "x86_64")
TEXTS = ["a photo of a cat", "Ein Foto einer Katze", "фото кошки", "猫", "", "dog " * 200]


def photos(n: int, side: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(coarse, "RGB").resize((side, side), Image.Resampling.BICUBIC)
        grain = rng.integers(-8, 9, (side, side, 1))
        out.append(Image.fromarray(np.clip(np.asarray(img, np.int16) + grain, 0, 255).astype("u1")))
    return out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def transformers_reference(folder: Path, images: list[Image.Image], texts: list[str], **tok):
    """The library's own pipeline: AutoProcessor, then get_*_features."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    with torch.inference_mode():
        img = torch.zeros((0, 1))
        if images:
            pix = processor(images=images, return_tensors="pt")["pixel_values"]
            img = model.get_image_features(pixel_values=pix)
        batch = processor(text=texts, return_tensors="pt", truncation=True, **tok)
        txt = model.get_text_features(**batch)
    pooled = [getattr(o, "pooler_output", o) for o in (img, txt)]
    return pooled[0].numpy(), pooled[1].numpy()


# -- CLIP in transformers' layout (laion-b32, a converted datacomp-b32-256) ---------------------


@pytest.mark.parametrize("fixture", ["tiny_hf_clip_dir", "tiny_hf_clip256_dir"])
def test_hf_clip_matches_transformers(fixture: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(fixture)
    side = read_image_prep(folder).size
    images = photos(4, side) + [Image.new("RGB", (300, 200), (20, 90, 200))]
    ref_img, ref_txt = transformers_reference(folder, images, TEXTS, padding=True, max_length=77)
    embedder = SentenceTransformerEmbedder(str(folder), "clip", batch_size=4)
    assert min_cosine(embedder.embed_images(images), ref_img) >= 0.9999
    assert min_cosine(embedder.embed_texts(TEXTS), ref_txt) >= 0.9999


def test_hf_clip_fast_runtime_in_bf16_and_onnx(tmp_path: Path, tiny_hf_clip256_dir: Path) -> None:
    images = photos(4, 256)
    ref_img, ref_txt = transformers_reference(
        tiny_hf_clip256_dir, images, TEXTS, padding=True, max_length=77
    )
    fast = FastTorchEmbedder(
        str(tiny_hf_clip256_dir), "clip", precision="bf16", features=lambda: AMX,
        onnx_cache=tmp_path / "onnx", batch_size=4,
    )  # fmt: skip
    fast.load()
    assert fast.runtime_for("image")[0] == "torch-fast bf16"
    assert fast.runtime_for("text")[0].startswith("onnx")
    assert min_cosine(fast.embed_images(images), ref_img) >= 0.999
    assert min_cosine(fast.embed_texts(TEXTS), ref_txt) >= 0.999
    assert fast.preprocess == "rgb-on-white/short256-bicubic/center-crop/v1"


def test_clip256_is_decoded_at_256(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    photos(1, 400)[0].resize((640, 400)).save(path)
    decoded = model_ready(path, max_pixels=10**8, prep=ImagePrep(size=256))
    assert decoded.image.size == (256, 256)


# -- SigLIP (siglip-b16, siglip2-b16) -------------------------------------------------------------


def siglip_reference(folder: Path, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    return transformers_reference(
        folder, images, TEXTS, padding="max_length", max_length=TEXT_TOKENS
    )


def test_siglip_reference_runtime_matches_transformers(tiny_siglip_dir: Path) -> None:
    images = photos(3, 224) + [Image.new("RGB", (300, 120), (200, 30, 30))]
    ref_img, ref_txt = siglip_reference(tiny_siglip_dir, images)
    embedder = SiglipEmbedder(str(tiny_siglip_dir), "clip", fast=False, batch_size=2)
    assert min_cosine(embedder.embed_images(images), ref_img) >= 0.9999
    assert min_cosine(embedder.embed_texts(TEXTS), ref_txt) >= 0.9999
    # The fixed padding is part of the model: padding to the longest text changes vectors.
    _, dynamic = transformers_reference(tiny_siglip_dir, [], TEXTS[:2], padding=True)
    assert min_cosine(dynamic, ref_txt[:2]) < 0.9999


def test_siglip_fast_runtime_bf16_images_and_onnx_text(
    tmp_path: Path, tiny_siglip_dir: Path
) -> None:
    images = photos(4, 224, seed=7)
    ref_img, ref_txt = siglip_reference(tiny_siglip_dir, images)
    for precision, bar in (("int8", 0.999), ("fp32", 0.9999)):
        fast = SiglipEmbedder(
            str(tiny_siglip_dir), "clip", precision="bf16", features=lambda: AMX,
            onnx_cache=tmp_path / "onnx", onnx_precision=precision, batch_size=4,
        )  # fmt: skip
        fast.load()
        assert fast.runtime_for("image")[0] == "torch-fast bf16"
        assert fast.runtime_for("text")[0] == f"onnx {precision}"
        assert min_cosine(fast.embed_images(images), ref_img) >= 0.999
        assert min_cosine(fast.embed_texts(TEXTS), ref_txt) >= bar


def test_siglip_decodes_the_whole_image_squashed(tmp_path: Path, tiny_siglip_dir: Path) -> None:
    """The decoder does what SigLIP's processor does to the full picture: no crop."""
    picture = photos(1, 300, seed=3)[0].resize((600, 200), Image.Resampling.BICUBIC)
    path = tmp_path / "wide.png"
    picture.save(path)
    embedder = SiglipEmbedder(str(tiny_siglip_dir), "clip", fast=False)
    prep = embedder.image_prep
    assert prep == ImagePrep(size=224, crop=False, resample="bilinear")
    decoded = model_ready(path, max_pixels=10**8, prep=prep).image
    assert decoded.size == (224, 224)
    ref_img, _ = siglip_reference(tiny_siglip_dir, [picture])
    assert min_cosine(embedder.embed_images([decoded]), ref_img) >= 0.9999


def test_siglip1_sentencepiece_layout_matches_transformers(
    tmp_path: Path, tiny_siglip1_dir: Path
) -> None:
    """google/siglip-base-patch16-224 ships spiece.model (SiglipTokenizer), not tokenizer.json."""
    assert (tiny_siglip1_dir / "spiece.model").is_file()
    images = photos(2, 224, seed=9)
    ref_img, ref_txt = siglip_reference(tiny_siglip1_dir, images)
    fast = SiglipEmbedder(
        str(tiny_siglip1_dir), "clip", precision="fp32", onnx_cache=tmp_path / "onnx",
        onnx_precision="fp32",
    )  # fmt: skip
    fast.load()
    assert fast.runtime_for("text")[0] == "onnx fp32"
    assert min_cosine(fast.embed_images(images), ref_img) >= 0.9999
    assert min_cosine(fast.embed_texts(TEXTS), ref_txt) >= 0.9999
