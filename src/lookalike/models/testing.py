"""Random-weight models in the real sentence-transformers formats.

For tests, benchmarks and the offline demo.

Pretrained weights cannot always be downloaded (CI, air-gapped machines), so
these builders write, offline and deterministically (seeded), models laid out
like the Hub's ``sentence-transformers/clip-ViT-B-32`` and
``sentence-transformers/clip-ViT-B-32-multilingual-v1``. Their vectors mean
nothing, but every code path (loading, tokenizing, preprocessing, the forward
pass, its cost) is the real one.

Two sizes:

* ``"tiny"``: a few hundred thousand parameters, built in about a second (tests);
* ``"base"``: the real architectures and shapes. CLIP ViT-B/32 with
  ``transformers.CLIPConfig`` defaults (vision: patch 32, hidden 768, 12 layers;
  text: hidden 512, 12 layers, 77 positions; projection 512) and a full-size
  49,408-token byte-level BPE vocabulary; multilingual DistilBERT-base (hidden
  768, 6 layers, 119,547-token WordPiece vocabulary) + mean pooling + Dense
  768 -> 512 without bias. About 600 MB and 540 MB of float32 weights; a build
  takes tens of seconds (benchmarks, the demo).

The vocabularies are generated here: every byte (BPE) or a set of Latin, accented,
Cyrillic and CJK characters (WordPiece), whole tokens for a few words in several
languages, then generated letter sequences up to the full size.
"""

from __future__ import annotations

import itertools
import json
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from lookalike.errors import ConfigError
from lookalike.models.provenance import RANDOM_MARKER
from lookalike.models.sentence import _quiet_loading

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "Size",
    "build_random_clip",
    "build_random_hf_clip",
    "build_random_multilingual",
    "mark_random",
]

Size = Literal["tiny", "base"]

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_TINY_DIM = 32
_BASE_DIM = 512
_CLIP_VOCAB = 49_408  # the real CLIP BPE: 512 byte symbols + 48,894 merges + 2 specials
_MULTILINGUAL_VOCAB = 119_547  # distilbert-base-multilingual-cased
_WORDS = [
    "a", "an", "the", "of", "on", "in", "and", "photo", "picture", "cat", "dog", "red", "blue",
    "green", "car", "tree", "house", "beach", "sunset", "mountain", "person", "ein", "eine",
    "foto", "katze", "hund", "rot", "une", "chat", "chien", "rouge", "plage", "de", "la", "le",
]  # fmt: skip


def _check_size(size: str) -> None:
    if size not in ("tiny", "base"):
        raise ConfigError(f"unknown model size {size!r}: use 'tiny' or 'base'", field="size")


# -- vocabularies ---------------------------------------------------------------------------


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


def _word_merges() -> Iterator[tuple[str, str]]:
    """Merges that make whole tokens of the sample words."""
    for word in _WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            yield parts[0], parts[1]
            parts = [parts[0] + parts[1], *parts[2:]]


def _letter_merges() -> Iterator[tuple[str, str]]:
    """Generated merges: two-letter, then three-letter, then four-letter sequences."""
    letters = string.ascii_lowercase
    prefixes = list(letters)
    while True:
        longer = []
        for prefix in prefixes:
            for c in letters:
                yield prefix, c
                yield prefix, c + "</w>"
                longer.append(prefix + c)
        prefixes = longer


def clip_vocab_and_merges(size: Size = "tiny") -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Every byte (alone and word-final), merges for the sample words, and (base) generated
    merges up to CLIP's 49,408 tokens. The two specials come last, as in CLIP."""
    _check_size(size)
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    known = set(tokens)
    merges: list[tuple[str, str]] = []
    target = _CLIP_VOCAB - 2 if size == "base" else None
    sources = itertools.chain(_word_merges(), _letter_merges() if target else ())
    for left, right in sources:
        if target is not None and len(tokens) >= target:
            break
        joined = left + right
        if joined in known:
            continue
        merges.append((left, right))
        tokens.append(joined)
        known.add(joined)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def wordpiece_vocab(size: Size = "tiny") -> dict[str, int]:
    """A cased WordPiece vocabulary covering Latin with accents, Cyrillic and some CJK; the
    base size is filled with generated letter sequences to multilingual DistilBERT's size."""
    _check_size(size)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)]  # printable ASCII
    chars += list("ÀÂÄÇÉÈÊËÎÏÔÖÙÛÜßàâäçéèêëîïôöùûüñÑœæ")
    chars += [chr(c) for c in range(0x0410, 0x0450)]  # Cyrillic А..я
    chars += list("猫狗红色的照片一只海滩日落山房子车树人在和")
    chars += list("ねこいぬ写真")
    words = sorted({w for w in _WORDS if len(w) > 1} | {"Katze", "Hund", "Foto", "chat", "Strand"})
    vocab: dict[str, int] = {}
    for t in specials + chars + ["##" + c for c in chars] + words:
        vocab.setdefault(t, len(vocab))
    if size == "base":
        letters = string.ascii_lowercase
        for n in itertools.count(2):
            for combo in itertools.product(letters, repeat=n):
                for token in ("".join(combo), "##" + "".join(combo)):
                    if len(vocab) >= _MULTILINGUAL_VOCAB:
                        return vocab
                    vocab.setdefault(token, len(vocab))
    return vocab


# -- builders -------------------------------------------------------------------------------


def _clip_processor(tokenizer: Any) -> Any:
    from transformers import CLIPImageProcessor, CLIPProcessor

    return CLIPProcessor(
        image_processor=CLIPImageProcessor(
            do_resize=True,
            size={"shortest_edge": 224},
            resample=3,  # bicubic
            do_center_crop=True,
            crop_size={"height": 224, "width": 224},
            do_rescale=True,
            rescale_factor=1 / 255,
            do_normalize=True,
            image_mean=CLIP_MEAN,
            image_std=CLIP_STD,
        ),
        tokenizer=tokenizer,
    )


def build_random_clip(
    folder: Path, *, size: Size = "tiny", dim: int | None = None, seed: int = 0
) -> Path:
    """Write a random CLIP model in the sentence-transformers layout of the Hub's CLIPs.

    ``0_CLIPModel/`` holds a ``transformers`` ``CLIPModel`` and its ``CLIPProcessor``
    (shortest edge 224 bicubic, centre crop 224, CLIP mean/std; the image size is
    224 at both sizes so the real preprocessing applies). The tokenizer has no
    ``model_max_length``, as on the Hub: a runtime must cap text at the model's 77
    positions itself. ``dim`` is the projection width (32 tiny, 512 base by default).
    """
    _check_size(size)
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    vocab, merges = clip_vocab_and_merges(size)
    # transformers 5: pass vocab and merges as objects (vocab_file= is silently ignored);
    # the Rust BPE wants merges as pairs although the annotation says strings.
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]
    with _quiet_loading():  # no "torchvision is missing" notice
        processor = _clip_processor(tokenizer)
    special = {
        "vocab_size": len(vocab),
        "max_position_embeddings": 77,
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
    }
    if size == "tiny":
        text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2}  # fmt: skip
        vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "image_size": 224, "patch_size": 32}  # fmt: skip
    else:  # CLIPConfig's defaults are ViT-B/32; spelled out so a changed default cannot drift
        text = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                "num_attention_heads": 8}  # fmt: skip
        vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                  "num_attention_heads": 12, "image_size": 224, "patch_size": 32}  # fmt: skip
    config = CLIPConfig(
        text_config={**text, **special},
        vision_config=vision,
        projection_dim=dim or (_TINY_DIM if size == "tiny" else _BASE_DIM),
    )
    sub = folder / "0_CLIPModel"
    sub.mkdir(parents=True, exist_ok=True)
    with _quiet_loading(), torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
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
    mark_random(folder)
    return folder


def build_random_multilingual(
    folder: Path, *, size: Size = "tiny", dim: int | None = None, seed: int = 0
) -> Path:
    """Write a random DistilBERT + mean Pooling + Dense(hidden -> dim, no bias) model.

    The shape of ``clip-ViT-B-32-multilingual-v1`` (768 -> 512) at ``size="base"``;
    hidden 48 at ``"tiny"``. ``dim`` (32 tiny, 512 base by default) other than the
    matching CLIP's projection makes a text model that does not fit it.
    """
    _check_size(size)
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    vocab = wordpiece_vocab(size)
    tokenizer = DistilBertTokenizer(vocab=vocab, do_lower_case=False, tokenize_chinese_chars=True)
    hidden, ffn, layers, heads = (48, 96, 2, 2) if size == "tiny" else (768, 3072, 6, 12)
    config = DistilBertConfig(
        vocab_size=len(vocab),
        dim=hidden,
        hidden_dim=ffn,
        n_layers=layers,
        n_heads=heads,
        max_position_embeddings=512,
        pad_token_id=vocab["[PAD]"],
    )
    out_dim = dim or (_TINY_DIM if size == "tiny" else _BASE_DIM)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=folder.parent, prefix=".distilbert-") as tmp,
        _quiet_loading(),
        torch.random.fork_rng(),
    ):
        torch.manual_seed(seed)
        DistilBertModel(config).eval().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        transformer = Transformer(tmp, max_seq_length=128)
        pooling = Pooling(hidden, pooling_mode="mean")
        dense = Dense(hidden, out_dim, bias=False, activation_function=torch.nn.Identity())
        model = SentenceTransformer(modules=[transformer, pooling, dense], device="cpu")
        model.save(str(folder))
    mark_random(folder)
    return folder


def mark_random(folder: Path) -> None:
    """Mark a model folder as random-weight, so the page and the CLI can say so. A marker
    already there is left alone: rewriting it would change the folder's fingerprint and
    with it every export made from the model (``onnx_cache.folder_fingerprint``)."""
    text = "This model has random weights: its search results are meaningless.\n"
    marker = folder / RANDOM_MARKER
    if not marker.is_file() or marker.read_text(encoding="utf-8") != text:
        marker.write_text(text, encoding="utf-8")


def build_random_hf_clip(
    folder: Path, *, size: Size = "tiny", image_size: int = 224, seed: int = 0
) -> Path:
    """A random CLIP in plain transformers layout (config.json, weights and processor at the
    top, no modules.json), as ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K`` publishes it.

    ``image_size`` other than 224 sets the vision tower and the processor (shortest
    side and crop) to it, as a DataComp ViT-B-32-256 converted from open_clip.
    """
    import shutil

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".hf-clip-") as tmp:
        built = build_random_clip(Path(tmp), size=size, seed=seed)
        inner = built / "0_CLIPModel"
        if image_size != 224:
            _resize_clip(inner, image_size)
        shutil.copytree(inner, folder, dirs_exist_ok=True)
    return folder


def _resize_clip(folder: Path, image_size: int) -> None:
    """Rebuild the saved CLIP at another image size (new position embeddings, same seed)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig.from_pretrained(folder)
    config.vision_config.image_size = image_size  # type: ignore[union-attr]
    with _quiet_loading(), torch.random.fork_rng():
        torch.manual_seed(0)
        CLIPModel(config).eval().save_pretrained(folder)
    path = folder / "processor_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["image_processor"]["size"] = {"shortest_edge": image_size}
    data["image_processor"]["crop_size"] = {"height": image_size, "width": image_size}
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
