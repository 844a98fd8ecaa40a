"""The text half of the fast runtime: tokenize with dynamic padding, encode, pool.

Two text encoders are known: CLIP's own text tower with its projection (``text_model
= "clip"``) and a Transformer + mean Pooling (+ Dense) stack such as the multilingual
model. ``FastTorchEmbedder`` runs them with torch, or exports them for ONNX Runtime
(``lookalike.models.onnx_text``); both use the same tokenization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CLIP_TEXT",
    "POOLED_TEXT",
    "TEXT_CHECKS",
    "TextRunner",
    "clip_text",
    "mean_pooled_denses",
    "pooled_text",
]

#: the text encoders' architectures, as named in their ONNX export cache
CLIP_TEXT, POOLED_TEXT = "clip-text", "mean-pooled"

CHECK_TEXTS = ["a photo of a cat on the beach", "Ein Foto einer Katze", "猫"]
# Checked with the above, in one padded batch and one at a time: empty-ish, accented,
# Cyrillic and one text long enough to be cut at every model's limit.
TEXT_CHECKS = [
    *CHECK_TEXTS,
    "",
    " ?! ",
    "une photo d'un chat roux sur la plage",
    "фото кошки",
    "a red car parked in front of a blue house at sunset, seen from the street " * 12,
]


class TextRunner:
    """Tokenize with dynamic padding, run the encoder, pool (CLIP: its own pooler)."""

    def __init__(
        self,
        tokenizer: Any,
        max_tokens: int | None,
        encode: Callable[[dict[str, Any]], Any],
        *,
        lower: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.encode = encode
        self.lower = lower

    def tokens(self, texts: list[str], tensors: str = "pt") -> Any:
        """The batch the model takes: padded to its longest text, cut at the model's limit."""
        if self.lower:
            texts = [t.lower() for t in texts]
        return self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors=tensors,
        )

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokens(texts)
        with torch.inference_mode():
            out: np.ndarray = self.encode(dict(batch)).float().numpy()
        return out


def clip_text(clip: Any) -> Callable[[dict[str, Any]], Any]:
    def encode(batch: dict[str, Any]) -> Any:
        pooled = clip.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).pooler_output
        return clip.text_projection(pooled)

    return encode


def pooled_text(model: Any, denses: list[Any]) -> Callable[[dict[str, Any]], Any]:
    accepted = ("input_ids", "attention_mask", "token_type_ids")

    def encode(batch: dict[str, Any]) -> Any:
        hidden = model(**{k: v for k, v in batch.items() if k in accepted}).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        for dense in denses:
            pooled = dense.activation_function(dense.linear(pooled))
        return pooled

    return encode


def mean_pooled_denses(modules: Sequence[Any]) -> list[Any] | None:
    """The Dense modules after a mean Pooling, or None for any other stack."""
    if not modules or type(modules[0]).__name__ != "Pooling":
        return None
    config = modules[0].get_config_dict()
    if config.get("pooling_mode", "mean") != "mean" and not config.get("pooling_mode_mean_tokens"):
        return None
    denses = []
    for module in modules[1:]:
        name = type(module).__name__
        if name == "Dense" and hasattr(module, "linear") and hasattr(module, "activation_function"):
            denses.append(module)
        elif name != "Normalize":
            return None
    return denses
