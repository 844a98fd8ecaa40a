"""The SigLIP fast paths: bf16 images and ONNX Runtime text, each checked at load.

``SiglipEmbedder`` (``lookalike.models.siglip``) calls these with its reference
encoders; a path that fails its check is not used (the caller says why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.models import onnx_text
from lookalike.models.fast_torch import CHECK_COSINE
from lookalike.models.text_fast import TEXT_CHECKS
from lookalike.models.vision_fast import check_images, min_cosine

__all__ = ["SIGLIP_TEXT", "TEXT_TOKENS", "bf16_vision", "onnx_text_encoder"]

SIGLIP_TEXT = "siglip-text"  # the text graph's kind in the ONNX export cache
TEXT_TOKENS = 64  # SigLIP's and SigLIP 2's text length (the processor's max_length)


def bf16_vision(
    loaded: Any, side: int, reference: Callable[[list[Image.Image]], np.ndarray]
) -> tuple[Callable[[list[Image.Image]], np.ndarray] | None, str]:
    """The vision tower in bf16 on pixels normalised in torch, or (None, why not).

    The weights are converted in place; when the check fails they are restored.
    """
    import torch

    images = [im.resize((side, side)) for im in check_images()]
    with loaded.lock:
        expected = reference(images)
    vision = loaded.model.vision_model
    processor = loaded.processor.image_processor
    mean = torch.tensor(list(processor.image_mean), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(list(processor.image_std), dtype=torch.float32).view(1, 3, 1, 1)
    scale = float(getattr(processor, "rescale_factor", 1 / 255))

    def run(batch: list[Image.Image]) -> np.ndarray:
        if all(im.size == (side, side) and im.mode == "RGB" for im in batch):
            arr = np.stack([np.asarray(im, dtype=np.uint8) for im in batch])
            x = torch.from_numpy(arr).permute(0, 3, 1, 2).to(torch.float32)
            pixels = (x * scale - mean) / std
        else:  # the model's own processor: exact for any size
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = vision(pixel_values=pixels.to(torch.bfloat16)).pooler_output
            return np.asarray(out.float().numpy())

    original = {k: v.detach().clone() for k, v in vision.state_dict().items()}
    vision.to(torch.bfloat16)
    with loaded.lock:
        cosine = min_cosine(run(images), expected)
    if cosine >= CHECK_COSINE["bf16"]:
        return run, ""
    vision.to(torch.float32)
    vision.load_state_dict(original)  # the weights were rounded in place: restore them
    return None, f"bf16 load check: cosine {cosine:.5f} < {CHECK_COSINE['bf16']}; fp32 instead"


def onnx_text_encoder(
    loaded: Any,
    cache: Path,
    tokens: Callable[[list[str]], Any],
    reference: Callable[[list[str]], np.ndarray],
    *,
    precisions: Sequence[str],
    threads: int | None,
) -> tuple[onnx_text.OnnxTextEncoder | None, str]:
    """The text tower exported for ONNX Runtime, padded to 64 tokens, checked; or (None, why)."""
    assert loaded.resolved.path is not None
    text_model = loaded.model.text_model
    uses_mask = loaded.uses_mask

    def encode(batch: dict[str, Any]) -> Any:
        mask = batch["attention_mask"] if uses_mask else None
        return text_model(input_ids=batch["input_ids"], attention_mask=mask).pooler_output

    def tokenize(texts: list[str]) -> dict[str, Any]:
        batch = dict(tokens(texts))
        batch.setdefault("attention_mask", np.ones_like(batch["input_ids"]))
        return batch

    texts = list(TEXT_CHECKS)
    with loaded.lock:
        expected = reference(texts)

    def score(encoder: onnx_text.OnnxTextEncoder) -> float:
        with loaded.lock:
            together = encoder(texts)
            alone = np.concatenate([encoder([t]) for t in texts])
        return min(min_cosine(together, expected), min_cosine(alone, expected))

    encoder, why = onnx_text.attach(
        cache,
        loaded.resolved.path,
        onnx_text.TextGraph(SIGLIP_TEXT, encode, (text_model,)),
        tokenize,
        precisions=precisions,
        score=score,
        bars=CHECK_COSINE,
        threads=threads,
    )
    return encoder, why.replace("dynamic padding", f"padded to {TEXT_TOKENS} tokens")
