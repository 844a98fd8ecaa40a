"""Random-weight SigLIP models in the Hub's transformers layout (tests, benchmarks).

Like ``lookalike.models.testing`` for CLIP: offline, seeded, the real architecture
(``transformers.SiglipModel``) and the real processor (``SiglipProcessor``: images
squashed to the square, bilinear, mean/std 0.5), with a Gemma-like tokenizer
generated here (byte-fallback BPE over "▁"-marked words, ``<pad>`` 0, ``<eos>`` 1,
``<bos>`` 2, ``<unk>`` 3) as SigLIP 2's. ``"base"`` is ViT-B/16 at 224 px with
SigLIP 2's 256,000-token vocabulary (``vocab_size=32_000`` for SigLIP 1's size):
about 375M parameters; the tokenizer only reaches the generated words, which is
all a benchmark needs.
"""

from __future__ import annotations

import itertools
import string
from pathlib import Path
from typing import Any

from lookalike.models.sentence import _quiet_loading
from lookalike.models.testing import _WORDS, Size, _check_size

__all__ = ["SIGLIP_VOCAB", "build_random_siglip", "gemma_like_vocab"]

SIGLIP_VOCAB = 256_000  # SigLIP 2 (Gemma's tokenizer)
_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]


def gemma_like_vocab(size: int | None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Specials, 256 byte-fallback tokens, characters, merges for the sample words, then
    (``size`` given) generated letter sequences up to ``size`` tokens."""
    vocab = {t: i for i, t in enumerate(_SPECIALS)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    chars = ["▁", *string.ascii_letters, *string.digits, *".,!?'-"]
    chars += list("éèêàâäöüßçñ") + [chr(c) for c in range(0x0410, 0x0450)] + list("猫狗的照片")
    for c in chars:
        vocab.setdefault(c, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in sorted(set(_WORDS)):
        parts = list("▁" + word)
        while len(parts) > 1:
            joined = parts[0] + parts[1]
            if joined not in vocab:
                merges.append((parts[0], parts[1]))
                vocab[joined] = len(vocab)
            parts = [joined, *parts[2:]]
    if size is not None:
        for n in itertools.count(2):
            for combo in itertools.product(string.ascii_lowercase, repeat=n):
                if len(vocab) >= size:
                    return vocab, merges
                vocab.setdefault("▁" + "".join(combo), len(vocab))
    return vocab, merges


def build_random_siglip(
    folder: Path,
    *,
    size: Size = "tiny",
    seed: int = 0,
    image_size: int = 224,
    vocab_size: int | None = None,
    sentencepiece: bool = False,
) -> Path:
    """Write a random ``SiglipModel`` with its ``SiglipProcessor`` into ``folder``.

    ``sentencepiece``: a tiny trained SentencePiece tokenizer (``SiglipTokenizer``, which
    needs the ``sentencepiece`` package) as SigLIP 1 ships, instead of the Gemma-like one.
    """
    _check_size(size)
    import torch
    from transformers import GemmaTokenizer, SiglipConfig, SiglipModel, SiglipProcessor

    try:
        from transformers import SiglipImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4: the PIL processor is the only one
        from transformers import SiglipImageProcessor as ImageProcessor  # type: ignore[assignment]

    if sentencepiece:  # SigLIP 1's layout: a T5-style SentencePiece model (spiece.model)
        tokenizer = _sentencepiece_tokenizer(folder)
        vocab_len = len(tokenizer)
    else:
        target = vocab_size or (SIGLIP_VOCAB if size == "base" else None)
        vocab, merges = gemma_like_vocab(target)
        tokenizer = GemmaTokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]
        vocab_len = len(vocab)
    image_processor = ImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=2,  # bilinear, as the Hub's SigLIP configs
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    ids = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2 if not sentencepiece else 1}
    if size == "tiny":
        width = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 2}  # fmt: skip
    else:
        width = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                 "num_attention_heads": 12}  # fmt: skip
    config = SiglipConfig(
        text_config={**width, **ids, "vocab_size": vocab_len, "max_position_embeddings": 64},
        vision_config={**width, "image_size": image_size, "patch_size": 16},
    )
    folder.mkdir(parents=True, exist_ok=True)
    with _quiet_loading(), torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SiglipModel(config).eval()
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return folder


def _sentencepiece_tokenizer(folder: Path) -> Any:
    """A unigram SentencePiece model trained here on the sample words (T5's special ids)."""
    import io

    import sentencepiece as spm
    from transformers import SiglipTokenizer

    words = sorted(set(_WORDS))
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=48, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spiece.model"
    path.write_bytes(model.getvalue())
    return SiglipTokenizer(vocab_file=str(path))
