"""Fixtures that build tiny random CLIP / multilingual models (owned by the models work).

Pretrained weights cannot be downloaded here (no Hugging Face access), so the
tests run on tiny random models in the real sentence-transformers formats,
built offline and deterministically (seeded) in a second or two:

* ``tiny_clip_dir``: a ``CLIPModel`` (hidden 32, 2 layers, patch 32, image
  size 224 so the real resize/centre-crop preprocessing applies, projection 32)
  with a ``CLIPProcessor`` (CLIP mean/std, shortest edge 224 bicubic, centre
  crop 224) and a byte-level BPE tokenizer whose vocabulary and merges are
  generated here, laid out like the Hub's ``sentence-transformers/clip-ViT-B-32``
  (``modules.json`` naming ``sentence_transformers.models.CLIPModel`` in
  ``0_CLIPModel/``). Its tokenizer has no ``model_max_length``, on purpose: the
  embedder must cap text at the model's 77 positions by itself.
* ``tiny_multilingual_dir``: DistilBERT (dim 48) + mean Pooling + Dense 48->32
  without bias, like ``clip-ViT-B-32-multilingual-v1`` (768->512), with a cased
  WordPiece vocabulary covering Latin letters with accents, Cyrillic and some
  CJK characters so German, French, Russian and Chinese queries tokenize.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.models.sentence import SentenceTransformerEmbedder

__all__ = [
    "build_tiny_clip",
    "build_tiny_multilingual",
    "tiny_clip_dir",
    "tiny_embedder",
    "tiny_multilingual_dir",
    "tiny_settings",
]

TINY_DIM = 32
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_WORDS = [
    "a", "an", "the", "of", "on", "in", "and", "photo", "picture", "cat", "dog", "red", "blue",
    "green", "car", "tree", "house", "beach", "sunset", "mountain", "person", "ein", "eine",
    "foto", "katze", "hund", "rot", "une", "chat", "chien", "rouge", "plage", "de", "la", "le",
]  # fmt: skip
_BUILD_LOCK = threading.Lock()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Every byte (alone and word-final) plus merges that make whole tokens of a few words."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merge = (parts[0], parts[1])
            joined = parts[0] + parts[1]
            if merge not in merges:
                merges.append(merge)
            if joined not in tokens:
                tokens.append(joined)
            parts = [joined, *parts[2:]]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _wordpiece_vocab() -> dict[str, int]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)]  # printable ASCII
    chars += list("ÀÂÄÇÉÈÊËÎÏÔÖÙÛÜßàâäçéèêëîïôöùûüñÑœæ")
    chars += [chr(c) for c in range(0x0410, 0x0450)]  # Cyrillic А..я
    chars += list("猫狗红色的照片一只海滩日落山房子车树人在和")
    chars += list("ねこいぬ写真")
    words = sorted({w for w in _WORDS if len(w) > 1} | {"Katze", "Hund", "Foto", "chat", "Strand"})
    tokens = specials + chars + ["##" + c for c in chars] + words
    seen: dict[str, int] = {}
    for t in tokens:
        seen.setdefault(t, len(seen))
    return seen


def build_tiny_clip(folder: Path, *, dim: int = TINY_DIM, seed: int = 0) -> Path:
    """Write a tiny random CLIP model in the sentence-transformers layout of the Hub's CLIPs."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab, merges = _clip_vocab_and_merges()
    # transformers 5: pass vocab and merges as objects (vocab_file= is silently ignored);
    # the Rust BPE wants merges as pairs although the annotation says strings.
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            do_resize=True,
            size={"shortest_edge": 224},
            resample=3,  # bicubic
            do_center_crop=True,
            crop_size={"height": 224, "width": 224},
            do_normalize=True,
            image_mean=CLIP_MEAN,
            image_std=CLIP_STD,
        ),
        tokenizer=tokenizer,
    )
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 224,
            "patch_size": 32,
        },
        projection_dim=dim,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    sub = folder / "0_CLIPModel"
    sub.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(sub)
    processor.save_pretrained(sub)
    modules = [
        {
            "idx": 0,
            "name": "0",
            "path": "0_CLIPModel",
            "type": "sentence_transformers.models.CLIPModel",
        }
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    return folder


def build_tiny_multilingual(folder: Path, *, dim: int = TINY_DIM, seed: int = 0) -> Path:
    """Write a tiny random DistilBERT + mean Pooling + Dense(48 -> dim) sentence-transformers model.

    ``dim`` other than the tiny CLIP's 32 makes a text model that does not fit it.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    vocab = _wordpiece_vocab()
    tokenizer = DistilBertTokenizer(vocab=vocab, do_lower_case=False, tokenize_chinese_chars=True)
    config = DistilBertConfig(
        vocab_size=len(vocab),
        dim=48,
        hidden_dim=96,
        n_layers=2,
        n_heads=2,
        max_position_embeddings=512,
        pad_token_id=vocab["[PAD]"],
    )
    base = folder.parent / (folder.name + "-distilbert")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        DistilBertModel(config).eval().save_pretrained(base)
        tokenizer.save_pretrained(base)
        transformer = Transformer(str(base), max_seq_length=128)
        pooling = Pooling(48, pooling_mode="mean")
        dense = Dense(48, dim, bias=False, activation_function=torch.nn.Identity())
        model = SentenceTransformer(modules=[transformer, pooling, dense], device="cpu")
    model.save(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with _BUILD_LOCK:
        return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_multilingual_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with _BUILD_LOCK:
        return build_tiny_multilingual(tmp_path_factory.mktemp("models") / "tiny-multilingual")


@pytest.fixture
def tiny_settings(tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        image_model=str(tiny_clip_dir),
        text_model=str(tiny_multilingual_dir),
        batch_size=8,
    )


@pytest.fixture(scope="session")
def tiny_embedder(
    tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> Iterator[SentenceTransformerEmbedder]:
    """A loaded SentenceTransformerEmbedder over the two tiny models."""
    embedder = SentenceTransformerEmbedder(
        str(tiny_clip_dir), str(tiny_multilingual_dir), batch_size=8
    )
    embedder.load()
    yield embedder
