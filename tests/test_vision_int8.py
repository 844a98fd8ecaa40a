"""The int8 image tower for indexing (``lookalike.models.vision_int8``) and the choice of it.

Pretrained weights cannot be had here: the exports are made for real (torch's ONNX
export, ONNX Runtime's static quantisation) from the tiny random CLIP of
``support.tiny_models`` and held against the reference runtime (sentence-transformers)
on the same weights. Only the CPU's flags are injected (``CpuFeatures``), to take
both sides of the int8 decision on any machine, and, where a test says so, the check's
bar is raised out of reach or the export file really damaged, to exercise the fallback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.models import fast_torch, vision_int8
from lookalike.models.cpu import CpuFeatures, prefers_int8
from lookalike.models.fast_torch import FastTorchEmbedder
from lookalike.models.sentence import SentenceTransformerEmbedder
from lookalike.models.vision_fast import check_images
from test_runtime_fidelity import odd_images, smooth_images

pytest.importorskip("onnxruntime", reason="the int8 path needs the onnx extra")

VNNI = CpuFeatures(frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}), "x86_64")
AVX_VNNI = CpuFeatures(frozenset({"avx2", "avx_vnni"}), "x86_64")
AMX = CpuFeatures(
    frozenset({"avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}), "x86_64"
)
PLAIN = CpuFeatures(frozenset({"avx2", "fma"}), "x86_64")


def cosines(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a.astype(np.float64) * b.astype(np.float64)).sum(1).min())


def fast(root: Path, clip: Path, text: Path, features: CpuFeatures = VNNI) -> FastTorchEmbedder:
    return FastTorchEmbedder(str(clip), str(text), onnx_cache=root, features=lambda: features)


@pytest.fixture(scope="module")
def reference(tiny_clip_dir: Path, tiny_multilingual_dir: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir))


def test_int8_is_chosen_only_where_vnni_is_and_amx_is_not() -> None:
    assert prefers_int8("auto", VNNI) == (
        True,
        "CPU has AVX512-VNNI and no AMX: int8 measured faster than bf16",
    )
    assert prefers_int8("auto", AVX_VNNI)[0]
    assert prefers_int8("auto", AMX) == (False, "AMX-BF16 runs bf16 faster than int8")
    assert not prefers_int8("auto", PLAIN)[0]
    assert not prefers_int8("auto", CpuFeatures(frozenset({"avx512_vnni"}), "aarch64"))[0]
    assert prefers_int8("int8", PLAIN) == (
        True,
        "int8 requested, but the CPU has no VNNI instructions: expect it slower",
    )
    assert prefers_int8("bf16", VNNI) == (False, "bf16 requested")
    assert prefers_int8("fp32", VNNI) == (False, "fp32 requested")


def test_first_run_uses_torch_then_the_export_made_after_it_runs_in_int8(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    reference: SentenceTransformerEmbedder,
) -> None:
    """The export is never made on a run's critical path: the first load runs torch and
    says why; ``prepare_queries`` (what ``lookalike index`` calls after a run) makes and
    checks it; the next load runs int8, as close to the reference as the bar demands."""
    first = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    assert first.runtime_for("image")[0] == "torch-fast bf16"
    first.load_images()
    runtime, why = first.runtime_for("image")
    assert runtime == "torch-fast bf16"
    assert "int8 not used: int8 export not made yet" in why
    assert "image" in first.query_exports_pending()

    first.prepare_queries()
    note = first.int8_export_note
    assert note.startswith("int8 for indexing: ") and "dynamic int8 cosine" in note
    assert first.query_exports_pending() == []

    second = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    assert second.runtime_for("image")[0] == "onnx int8"
    assert second.precision == "int8"
    second.load_images()
    runtime, why = second.runtime_for("image")
    assert runtime == "onnx int8" and "int8 export" in why
    images = smooth_images(40, seed=3) + check_images()
    got, want = second.embed_images(images), reference.embed_images(images)
    assert cosines(got, want) >= fast_torch.CHECK_COSINE["int8"]
    # images that are not 224x224 RGB go through the model's processor first
    odd = odd_images()
    assert cosines(second.embed_images(odd), reference.embed_images(odd)) >= 0.999


def test_an_export_that_misses_the_bar_is_rejected_and_indexing_keeps_torch(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bar is raised out of reach (as trained CLIP's activation outliers could make
    int8 miss it): the export is discarded, the rejection noted and not retried, and the
    tower runs in bf16 with the reason."""
    monkeypatch.setattr(fast_torch, "CHECK_COSINE", {**fast_torch.CHECK_COSINE, "int8": 1.5})
    embedder = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    embedder.load_images()
    embedder.prepare_queries()
    assert "static int8 check: cosine" in embedder.int8_export_note
    assert "dynamic int8 check: cosine" in embedder.int8_export_note
    cache = embedder._int8_cache()
    assert cache is not None
    for variant in vision_int8.VARIANTS:
        assert not cache.has(vision_int8.FILES[variant])
        assert "int8 check" in (cache.note(vision_int8.rejected_note(variant)) or "")
    assert embedder.query_exports_pending() == []  # not made again

    again = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    again.load_images()
    runtime, why = again.runtime_for("image")
    assert runtime == "torch-fast bf16" and "int8 not used: static int8 check" in why


def test_a_damaged_export_falls_back_and_is_made_again(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedder = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    embedder.prepare_queries()
    cache = embedder._int8_cache()
    assert cache is not None and vision_int8.ready(cache)
    for name in vision_int8.FILES.values():
        if cache.has(name):
            cache.path(name).write_bytes(b"not an onnx file")

    damaged = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    damaged.load_images()
    runtime, why = damaged.runtime_for("image")
    assert runtime == "torch-fast bf16" and "int8 export unusable" in why
    assert "image" in damaged.query_exports_pending()
    damaged.prepare_queries()
    assert fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir).runtime_for("image")[0] == (
        "onnx int8"
    )


@pytest.mark.parametrize(
    ("features", "runtime"), [(AMX, "torch-fast bf16"), (PLAIN, "torch-fast fp32")]
)
def test_cpus_without_the_gain_never_make_or_use_int8(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    features: CpuFeatures,
    runtime: str,
) -> None:
    embedder = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir, features)
    embedder.prepare_queries()
    assert embedder.int8_export_note == ""
    assert embedder._int8_cache() is not None
    assert not embedder._int8_cache().folder.exists()  # type: ignore[union-attr]
    embedder.load_images()
    assert embedder.runtime_for("image")[0] == runtime


def test_the_runner_follows_the_thread_count_it_is_given(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    """ONNX Runtime fixes a session's threads: one session per count the core split asks for."""
    embedder = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    embedder.prepare_queries()
    cache = embedder._int8_cache()
    assert cache is not None
    processor = embedder._image_tower().model[0].processor.image_processor
    threads = [1]
    made = [cache.path(f) for f in vision_int8.FILES.values() if cache.has(f)]
    runner = vision_int8.Int8Vision(made[0], processor, lambda: threads[0])
    images = smooth_images(3, seed=1)
    one = runner(images)
    threads[0] = 2
    two = runner(images)
    assert sorted(runner._sessions) == [1, 2]
    np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-5)


def test_calibration_images_are_fixed() -> None:
    """The activation ranges never depend on the user's files: same weights, same file."""
    a, b = vision_int8.calibration_images(), vision_int8.calibration_images()
    assert len(a) == len(b) > 2
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    assert all(isinstance(i, Image.Image) and i.size == (224, 224) for i in a)


def test_int8_pixels_are_normalised_as_the_processor_does(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    """One pass from the stacked bytes to contiguous floats, on ready and odd images."""
    embedder = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    processor = embedder._image_tower().model[0].processor.image_processor
    runner = vision_int8.Int8Vision(tmp_path / "unused.onnx", processor)  # opens no session
    for images in (smooth_images(3, seed=12), [smooth_images(1)[0], odd_images()[0]]):
        want = processor(images=images, return_tensors="np")["pixel_values"]
        got = runner.pixels(images)
        assert got.flags.c_contiguous and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_later_run_loads_the_int8_tower_without_the_reference_model(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    reference: SentenceTransformerEmbedder,
) -> None:
    """The export's check against the reference is recorded when the export is made
    (``vision_int8_warm``): a later load runs the same check images against the recorded
    vectors instead of loading sentence-transformers, and embeds 224x224 batches in int8.
    A damaged record is dropped and the ordinary load (with its check) takes over."""
    from lookalike.models import vision_int8_warm

    first = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    first.load_images()
    first.prepare_queries()
    assert first.warm_start_pending() is False  # no torch tower to save: int8 starts warm

    later = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    later.load_images()
    runtime, why = later.runtime_for("image")
    assert runtime == "onnx int8" and "recorded vectors" in why and later.precision == "int8"
    images = smooth_images(40, seed=5) + check_images()
    got = later.embed_images(images)
    assert later.load_count == 0  # sentence-transformers never loaded
    assert cosines(got, reference.embed_images(images)) >= fast_torch.CHECK_COSINE["int8"]
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    cache = later._int8_cache()
    assert cache is not None
    cache.path(vision_int8_warm.WARM).write_text("{not json", encoding="utf-8")
    damaged = fast(tmp_path, tiny_clip_dir, tiny_multilingual_dir)
    damaged.load_images()
    assert damaged.load_count == 1  # the ordinary load, with the reference's own check
    assert damaged.runtime_for("image")[0] == "onnx int8"
    assert cache.has(vision_int8_warm.WARM)  # recorded again by that check
    assert cosines(damaged.embed_images(images), got) >= 0.9999
