"""The fast runtime (torch-fast) against the reference (sentence-transformers) on the same weights.

Pretrained weights cannot be downloaded here, so both runtimes load the same tiny
random models from ``support.tiny_models`` (real sentence-transformers folders).
Nothing is mocked except, where a test says so, the CPU's flags (injected
``CpuFeatures``, to exercise both sides of the bf16 decision on any machine) and
the load check's bar (raised out of reach, to exercise the fallback).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.errors import ConfigError
from lookalike.models import create_embedder, fast_torch, model_statuses
from lookalike.models.cpu import CpuFeatures, choose_precision, cpu_features
from lookalike.models.fast_torch import FastTorchEmbedder
from lookalike.models.sentence import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow  # fast runtimes against the reference over hundreds of images

AMX = CpuFeatures(frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "x86_64")
AVX512_BF16 = CpuFeatures(frozenset({"avx512f", "avx512_bf16"}), "x86_64")
PLAIN = CpuFeatures(frozenset({"avx2", "fma"}), "x86_64")
TEXTS = [
    "a photo of a cat",
    "Ein Foto einer Katze am Strand",
    "une photo d'un chat rouge",
    "一只猫的照片",
    "фото кошки",
    "",
    "x" * 5000,  # truncated to the model's context by both runtimes
]


def smooth_images(n: int, seed: int = 0, side: int = 224) -> list[Image.Image]:
    """Distinct photo-like pictures: random colour fields upscaled smoothly, plus grain."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cells = int(rng.integers(2, 6))
        coarse = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        img = Image.fromarray(coarse, "RGB").resize((side, side), Image.Resampling.BICUBIC)
        grain = rng.integers(-8, 9, (side, side, 1))
        out.append(
            Image.fromarray(np.clip(np.asarray(img, np.int16) + grain, 0, 255).astype(np.uint8))
        )
    return out


def odd_images() -> list[Image.Image]:
    """Not 224x224 RGB: these take the model's own processor in the fast runtime."""
    return [
        Image.new("L", (300, 200), 128),
        Image.new("RGBA", (64, 64), (0, 255, 0, 10)),
        Image.new("RGB", (1, 1), (5, 5, 5)),
        Image.new("RGB", (3, 60_000), (9, 9, 9)),
        smooth_images(1, seed=9, side=500)[0],
    ]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a.astype(np.float64) * b.astype(np.float64)).sum(1).min())


def top10_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each item's 10 nearest neighbours (itself excluded) both runtimes agree on."""
    shares = []
    for vectors in (a, b):
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        shares.append(np.argsort(-sims, axis=1)[:, :10])
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(*shares, strict=True)]))


@pytest.fixture(scope="module")
def reference(tiny_clip_dir: Path, tiny_multilingual_dir: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir))
    embedder.load()
    return embedder


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def fast(
    request: pytest.FixtureRequest, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> FastTorchEmbedder:
    embedder = FastTorchEmbedder(
        str(tiny_clip_dir), str(tiny_multilingual_dir), precision=request.param, batch_size=16
    )
    embedder.load()
    return embedder


BAR = {"fp32": 0.9999, "bf16": 0.999}


def test_fast_image_vectors_match_the_reference(
    fast: FastTorchEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    assert fast.runtime_for("image")[0] == f"torch-fast {fast.precision}"
    images = smooth_images(40, seed=1) + odd_images()
    ours, theirs = fast.embed_images(images), reference.embed_images(images)
    assert ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert min_cosine(ours, theirs) >= BAR[fast.precision]


def test_fast_text_vectors_match_the_reference(
    fast: FastTorchEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    assert fast.runtime_for("text") == ("torch-fast fp32", "dynamic padding")
    assert min_cosine(fast.embed_texts(TEXTS), reference.embed_texts(TEXTS)) >= 0.9999
    one_by_one = np.concatenate([fast.embed_texts([t]) for t in TEXTS])  # padding-free
    assert min_cosine(one_by_one, reference.embed_texts(TEXTS)) >= 0.9999


def test_clip_text_tower_matches_the_reference(tiny_clip_dir: Path) -> None:
    ours = FastTorchEmbedder(str(tiny_clip_dir), "clip", precision="bf16")
    theirs = SentenceTransformerEmbedder(str(tiny_clip_dir), "clip")
    assert min_cosine(ours.embed_texts(TEXTS), theirs.embed_texts(TEXTS)) >= 0.9999
    assert ours.runtime_for("text")[0] == "torch-fast fp32"
    images = smooth_images(8, seed=3)  # the shared CLIP keeps its text tower beside a bf16 vision
    assert min_cosine(ours.embed_images(images), theirs.embed_images(images)) >= 0.999


def test_top10_neighbours_agree_over_200_images(
    fast: FastTorchEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    images = smooth_images(200, seed=2)
    overlap = top10_overlap(fast.embed_images(images), reference.embed_images(images))
    assert overlap >= 0.95


def test_results_do_not_depend_on_the_batch(fast: FastTorchEmbedder) -> None:
    images = smooth_images(20, seed=4)
    together = fast.embed_images(images)  # batch_size 16: two forward passes
    alone = np.concatenate([fast.embed_images([im]) for im in images[:3]])
    assert min_cosine(together[:3], alone) >= BAR[fast.precision]
    assert fast.embed_images([]).shape == (0, fast.dim)
    assert fast.embed_texts([]).shape == (0, fast.dim)


def test_model_info_is_the_reference_one(
    fast: FastTorchEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    assert fast.info == reference.info
    assert fast.model_id == reference.model_id and fast.dim == reference.dim


# -- choosing the runtime and the precision -------------------------------------------------


def test_precision_follows_the_cpu() -> None:
    assert choose_precision("auto", AMX) == ("bf16", "CPU has AMX-BF16")
    assert choose_precision("auto", AVX512_BF16) == ("bf16", "CPU has AVX512-BF16")
    precision, why = choose_precision("auto", PLAIN)
    assert precision == "fp32" and "no bf16" in why
    assert choose_precision("auto", CpuFeatures(frozenset({"bf16"}), "aarch64"))[0] == "fp32"
    assert choose_precision("fp32", AMX) == ("fp32", "fp32 requested")
    assert choose_precision("bf16", PLAIN)[0] == "bf16"
    with pytest.raises(ConfigError):
        choose_precision("int4", AMX)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Test\nflags\t\t: fpu avx512f AVX512_BF16 amx_bf16 amx_tile\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_features(cpuinfo).amx_bf16
    assert not cpu_features(tmp_path / "missing").bf16
    assert isinstance(cpu_features().flags, frozenset)  # this machine's, whatever they are


@pytest.mark.parametrize(
    ("features", "runtime", "reason"),
    [
        (AMX, "torch-fast bf16", "CPU has AMX-BF16"),
        (PLAIN, "torch-fast fp32", "no bf16 support on this CPU (needs AMX-BF16 or AVX512-BF16)"),
    ],
)
def test_auto_picks_bf16_only_with_cpu_support(
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    features: CpuFeatures,
    runtime: str,
    reason: str,
) -> None:
    """The CPU flags are injected; the model loads and runs for real."""
    embedder = FastTorchEmbedder(
        str(tiny_clip_dir), str(tiny_multilingual_dir), features=lambda: features
    )
    planned, _ = embedder.runtime_for("image")
    assert planned == runtime and embedder.precision == runtime.split()[-1]
    embedder.load_images()
    assert embedder.runtime_for("image") == (runtime, reason)
    assert embedder.embed_images(smooth_images(2)).shape == (2, embedder.dim)


def test_ready_pixels_are_normalised_as_the_processor_does(
    tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    """The fast path's one multiply-add over channels-last pixels against the model's own
    processor, on 224x224 RGB images alone and mixed with odd ones."""
    embedder = FastTorchEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir), precision="fp32")
    embedder.load_images()
    vision = embedder._vision_path.run  # type: ignore[union-attr]
    processor = vision.processor
    ready = smooth_images(3, seed=11)
    want = processor(images=ready, return_tensors="pt")["pixel_values"].numpy()
    np.testing.assert_allclose(vision.pixels(ready).numpy(), want, atol=1e-5)
    mixed = [ready[0], odd_images()[0], ready[1]]
    want = processor(images=mixed, return_tensors="pt")["pixel_values"].numpy()
    np.testing.assert_allclose(vision.pixels(mixed).numpy(), want, atol=1e-5)


def test_a_fast_path_that_fails_its_load_check_falls_back(
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    reference: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check's bar is raised out of reach: every fast path must give way to the reference."""
    monkeypatch.setattr(fast_torch, "CHECK_COSINE", {"fp32": 1.5, "bf16": 1.5})
    embedder = FastTorchEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir), precision="bf16")
    images = smooth_images(4, seed=5)
    np.testing.assert_allclose(
        embedder.embed_images(images), reference.embed_images(images), atol=1e-6
    )
    runtime, why = embedder.runtime_for("image")
    assert runtime == "sentence-transformers"
    assert "bf16 load check" in why and "fp32 load check" in why
    np.testing.assert_allclose(embedder.embed_texts(TEXTS), reference.embed_texts(TEXTS), atol=1e-6)
    assert embedder.runtime_for("text")[0] == "sentence-transformers"


def test_auto_is_the_fast_runtime_and_models_says_why(tiny_settings: Settings) -> None:
    assert isinstance(create_embedder(tiny_settings), FastTorchEmbedder)
    for name in ("torch-fast", "torch-fast-bf16", "torch-fast-fp32"):
        assert isinstance(
            create_embedder(tiny_settings.with_overrides(runtime=name)), FastTorchEmbedder
        )
    assert not isinstance(
        create_embedder(tiny_settings.with_overrides(runtime="sentence-transformers")),
        FastTorchEmbedder,
    )
    forced = tiny_settings.with_overrides(runtime="torch-fast-fp32")
    image, text = model_statuses(forced)
    assert image.runtime == "torch-fast"
    assert image.extra["active_runtime"] == "torch-fast fp32"
    assert "torch-fast fp32: fp32 requested" in image.detail
    # fp32 throughout: the text tower runs the fp32 ONNX export (tests/test_onnx_text.py)
    assert text.extra["active_runtime"] == "onnx fp32" and "dynamic padding" in text.detail
    reference = model_statuses(tiny_settings.with_overrides(runtime="torch"))
    assert [s.runtime for s in reference] == ["sentence-transformers"] * 2
    assert all("active_runtime" not in s.extra for s in reference)
