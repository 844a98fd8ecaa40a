"""The embedding models: the sentence-transformers runtime, weight resolution, model reports.

Pretrained weights cannot be downloaded here (no Hugging Face access), so these
tests run the real sentence-transformers / transformers code on tiny random
models built offline by ``support.tiny_models`` (same file layouts as the Hub's
``clip-ViT-B-32`` and ``clip-ViT-B-32-multilingual-v1``). Nothing is mocked:
the "Hugging Face cache" cases build a real cache layout on disk, and the
"download" case points the Hub endpoint at a closed local port.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.errors import ConfigError, ImageError, ModelError, ModelNotAvailableError, QueryError
from lookalike.models import (
    Embedder,
    SentenceTransformerEmbedder,
    canonical_name,
    create_embedder,
    model_id_for,
    model_statuses,
    resolve_model,
)
from lookalike.models.loading import ResolvedModel, hub_cache_dirs
from support.tiny_models import TINY_DIM, build_tiny_multilingual

HUB_CLIP = "sentence-transformers/clip-ViT-B-32"


@pytest.fixture(autouse=True)
def _offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test may reach the network or see the machine's real Hugging Face cache."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("SENTENCE_TRANSFORMERS_HOME", raising=False)
    return cache


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), "RGB")
    gradient = Image.fromarray(np.tile(np.arange(0, 256, dtype=np.uint8), (180, 1)), "L").convert(
        "RGB"
    )
    return [
        Image.new("RGB", (224, 224), (220, 30, 30)),
        Image.new("RGB", (224, 224), (20, 40, 230)),
        noise,
        gradient,  # 256x180: the real resize and centre crop apply
    ]


def _assert_unit_rows(vectors: np.ndarray, n: int) -> None:
    assert vectors.shape == (n, TINY_DIM)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# -- embedding -------------------------------------------------------------------------


def test_image_vectors_are_unit_float32_rows(tiny_embedder: SentenceTransformerEmbedder) -> None:
    vectors = tiny_embedder.embed_images(_images())
    _assert_unit_rows(vectors, 4)


def test_identical_images_give_identical_vectors_whatever_the_batch(
    tiny_embedder: SentenceTransformerEmbedder,
) -> None:
    images = _images()
    batch = tiny_embedder.embed_images(images + [images[2].copy()])
    alone = tiny_embedder.embed_images([images[2]])
    np.testing.assert_allclose(batch[2], batch[4], atol=1e-6)
    np.testing.assert_allclose(batch[2], alone[0], atol=1e-5)


def test_different_images_give_different_vectors(
    tiny_embedder: SentenceTransformerEmbedder,
) -> None:
    vectors = tiny_embedder.embed_images(_images())
    sims = vectors @ vectors.T
    off_diagonal = sims[~np.eye(len(vectors), dtype=bool)]
    assert off_diagonal.max() < 0.9999


def test_odd_images_are_accepted(tiny_embedder: SentenceTransformerEmbedder) -> None:
    odd = [
        Image.new("L", (300, 200), 128),  # not RGB
        Image.new("RGBA", (64, 64), (0, 255, 0, 10)),
        Image.new("RGB", (1, 1), (5, 5, 5)),  # upscaled to 224
        Image.new("RGB", (3, 60_000), (9, 9, 9)),  # a strip: cropped first, never 224x4.5M
    ]
    started = time.perf_counter()
    _assert_unit_rows(tiny_embedder.embed_images(odd), 4)
    assert time.perf_counter() - started < 10


def test_texts_in_many_languages_and_shapes(tiny_embedder: SentenceTransformerEmbedder) -> None:
    texts = [
        "a photo of a cat",
        "Ein Foto einer Katze am Strand",
        "une photo d'un chat rouge",
        "一只猫的照片",
        "фото кошки",
        "",
        "   \n\t ",
        "x" * 10_000,
        "Katze " * 2_000,
        "emoji 🐈‍⬛ and a lone surrogate \ud800 and a NUL \x00",
    ]
    vectors = tiny_embedder.embed_texts(texts)
    _assert_unit_rows(vectors, len(texts))
    assert not np.allclose(vectors[1], vectors[3], atol=1e-3)


def test_identical_texts_give_identical_vectors(tiny_embedder: SentenceTransformerEmbedder) -> None:
    vectors = tiny_embedder.embed_texts(["ein Hund", "a cat", "ein Hund"])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    np.testing.assert_allclose(tiny_embedder.embed_texts(["ein Hund"])[0], vectors[0], atol=1e-5)


def test_long_text_is_truncated_to_the_model_context(
    tiny_embedder: SentenceTransformerEmbedder,
) -> None:
    """The multilingual model reads 128 tokens: anything beyond cannot change the vector."""
    short, long = "Katze " * 200, "Katze " * 2_000 + "Hund " * 50
    a, b = tiny_embedder.embed_texts([short, long])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_empty_batches_have_the_right_shape(tiny_embedder: SentenceTransformerEmbedder) -> None:
    for vectors in (tiny_embedder.embed_images([]), tiny_embedder.embed_texts([])):
        assert vectors.shape == (0, TINY_DIM)
        assert vectors.dtype == np.float32


def test_wrong_inputs_raise_typed_errors(tiny_embedder: SentenceTransformerEmbedder) -> None:
    with pytest.raises(QueryError, match="list of strings"):
        tiny_embedder.embed_texts("a cat")
    with pytest.raises(QueryError, match="expected a string"):
        tiny_embedder.embed_texts(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ImageError, match="list of PIL images"):
        tiny_embedder.embed_images(Image.new("RGB", (8, 8)))  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="PIL image"):
        tiny_embedder.embed_images([b"\x89PNG"])  # type: ignore[list-item]
    with pytest.raises(ImageError, match="empty"):
        tiny_embedder.embed_images([Image.new("RGB", (0, 0))])


def test_info_and_protocol(tiny_embedder: SentenceTransformerEmbedder, tiny_clip_dir: Path) -> None:
    from lookalike.images import PREPROCESS_VERSION

    assert isinstance(tiny_embedder, Embedder)
    info = tiny_embedder.info
    assert info.dim == TINY_DIM == tiny_embedder.dim
    assert info.preprocess == PREPROCESS_VERSION
    assert info.model_id == tiny_embedder.model_id
    assert info.model_id.startswith(f"local:{tiny_clip_dir.name}@")


# -- loading -----------------------------------------------------------------------------


def test_lazy_loading_is_thread_safe_and_happens_once(
    tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedder = SentenceTransformerEmbedder(
        str(tiny_clip_dir), str(tiny_multilingual_dir), batch_size=4
    )
    assert embedder.load_count == 0
    images, texts = _images(), ["ein Hund", "a cat", ""]
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[tuple[np.ndarray, np.ndarray]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            results.append((embedder.embed_texts(texts), embedder.embed_images(images)))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == workers
    assert embedder.load_count == 2  # one image tower, one text tower, whatever the race
    for text_vectors, image_vectors in results[1:]:
        np.testing.assert_allclose(text_vectors, results[0][0], atol=1e-5)
        np.testing.assert_allclose(image_vectors, results[0][1], atol=1e-5)


def test_clip_text_tower_option(tiny_clip_dir: Path) -> None:
    for text_model in ("clip", "CLIP", str(tiny_clip_dir)):
        embedder = SentenceTransformerEmbedder(str(tiny_clip_dir), text_model)
        assert embedder.shares_clip_text
        texts = embedder.embed_texts(["a photo of a cat", "", "y" * 10_000])
        _assert_unit_rows(texts, 3)
        assert embedder.load_count == 1  # the image model's own text tower, loaded once
        _assert_unit_rows(embedder.embed_images(_images()[:2]), 2)
        assert embedder.load_count == 1
    # CLIP reads 77 tokens: text beyond them cannot change the vector.
    a, b = embedder.embed_texts(["a cat " * 60, "a cat " * 600])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_dimension_mismatch_names_both_models(tmp_path: Path, tiny_clip_dir: Path) -> None:
    narrow = build_tiny_multilingual(tmp_path / "narrow-text", dim=16)
    embedder = SentenceTransformerEmbedder(str(tiny_clip_dir), str(narrow))
    with pytest.raises(ModelError) as caught:
        embedder.load()
    message = str(caught.value)
    assert str(tiny_clip_dir) in message and str(narrow) in message
    assert "32" in message and "16" in message
    with pytest.raises(ModelError):  # stays refused, not just the first time
        embedder.embed_texts(["a cat"])
    _assert_unit_rows(embedder.embed_images(_images()[:1]), 1)  # image vectors stay valid


def test_text_model_cannot_be_the_image_model(tiny_multilingual_dir: Path) -> None:
    embedder = SentenceTransformerEmbedder(str(tiny_multilingual_dir), "clip")
    with pytest.raises(ModelError, match="cannot embed images"):
        embedder.load_images()


def test_damaged_model_folders_raise_model_error(tmp_path: Path, tiny_clip_dir: Path) -> None:
    damaged = tmp_path / "damaged-clip"
    shutil.copytree(tiny_clip_dir, damaged)
    (damaged / "0_CLIPModel" / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    for folder in (damaged, empty):
        with pytest.raises(ModelError) as caught:
            SentenceTransformerEmbedder(str(folder), "clip").load()
        assert str(folder) in str(caught.value)


# -- finding the weights -------------------------------------------------------------------


def test_missing_hub_model_fails_fast_offline(_offline_empty_cache: Path) -> None:
    embedder = SentenceTransformerEmbedder(HUB_CLIP, "clip")
    assert embedder.model_id == HUB_CLIP  # known without the weights
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as caught:
        embedder.load()
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert HUB_CLIP in message
    assert str(_offline_empty_cache) in message
    assert f"hf download {HUB_CLIP}" in message
    assert "LOOKALIKE_MODEL=" in message
    assert "HF_HUB_OFFLINE" in message
    mine = _offline_empty_cache.parent / "my-model-cache"
    with pytest.raises(ModelNotAvailableError, match=str(mine)):
        SentenceTransformerEmbedder(HUB_CLIP, "clip", cache_folder=str(mine)).load_images()


def test_missing_hub_model_with_unreachable_hub_fails_fast(
    monkeypatch: pytest.MonkeyPatch, _offline_empty_cache: Path
) -> None:
    """Online mode, but the Hub endpoint is a closed local port: no download, no hang."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for scheme in ("http", "https", "all"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as caught:
        resolve_model("clip-ViT-B-32-multilingual-v1", cache_folder=None, role="text")
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "sentence-transformers/clip-ViT-B-32-multilingual-v1" in message
    assert "cannot be downloaded" in message and f"127.0.0.1:{port}" in message
    assert "LOOKALIKE_TEXT_MODEL=" in message
    assert str(_offline_empty_cache) in message


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelNotAvailableError, match="does not exist") as caught:
        SentenceTransformerEmbedder(str(missing), "clip").load()
    assert str(missing) in str(caught.value)
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"0")
    with pytest.raises(ModelNotAvailableError, match="is a file"):
        resolve_model(str(a_file), cache_folder=None)
    with pytest.raises(ModelNotAvailableError, match="neither an existing folder"):
        resolve_model("not a model name!", cache_folder=None)
    with pytest.raises(ConfigError):
        resolve_model("  ", cache_folder=None, role="text")
    not_a_model = tmp_path / "holiday-photos"
    (not_a_model / "2023").mkdir(parents=True)
    with pytest.raises(ModelNotAvailableError, match="does not hold a model"):
        _ = SentenceTransformerEmbedder(str(not_a_model), "clip").model_id


def _fake_cache(cache: Path, repo_id: str, source: Path, *, with_ref: bool = True) -> Path:
    """A Hugging Face hub cache holding ``source`` as the snapshot of ``repo_id``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(source, snapshot)
    if with_ref:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_names_resolve_from_the_cache_without_network(
    tmp_path: Path, tiny_clip_dir: Path, _offline_empty_cache: Path
) -> None:
    snapshot = _fake_cache(_offline_empty_cache, HUB_CLIP, tiny_clip_dir)
    resolved = resolve_model("clip-ViT-B-32", cache_folder=None)
    assert resolved == ResolvedModel(HUB_CLIP, snapshot, "cache")
    embedder = SentenceTransformerEmbedder("clip-ViT-B-32", "clip")
    _assert_unit_rows(embedder.embed_images(_images()[:1]), 1)
    assert embedder.info.model_id == HUB_CLIP
    # The snapshot folder given as a path keeps the Hub name as its id.
    assert model_id_for(ResolvedModel(str(snapshot), snapshot, "folder")) == HUB_CLIP


def test_model_cache_setting_accepts_a_copied_hf_home_without_refs(
    tmp_path: Path, tiny_clip_dir: Path, _offline_empty_cache: Path
) -> None:
    home = tmp_path / "copied-huggingface"
    snapshot = _fake_cache(home / "hub", HUB_CLIP, tiny_clip_dir, with_ref=False)
    assert hub_cache_dirs(str(home)) == [home / "hub", home, _offline_empty_cache]
    resolved = resolve_model(HUB_CLIP, cache_folder=str(home))
    assert resolved.path == snapshot and resolved.source == "cache"


def test_short_names_expand_and_folders_stay_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert canonical_name("clip-ViT-B-32") == HUB_CLIP
    assert canonical_name(" clip-ViT-B-32 ") == HUB_CLIP
    assert canonical_name("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"
    assert canonical_name("/abs/path/model") == "/abs/path/model"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodel").mkdir()
    assert canonical_name("mymodel") == "mymodel"
    embedder = SentenceTransformerEmbedder("clip-ViT-B-32", "clip-ViT-B-32-multilingual-v1")
    assert embedder.image_model == HUB_CLIP
    assert embedder.text_model == "sentence-transformers/clip-ViT-B-32-multilingual-v1"
    assert embedder.model_id == HUB_CLIP
    assert SentenceTransformerEmbedder("clip-ViT-B-32", HUB_CLIP).shares_clip_text


def test_local_model_id_follows_content_not_location(tmp_path: Path, tiny_clip_dir: Path) -> None:
    copy = tmp_path / "elsewhere" / tiny_clip_dir.name
    shutil.copytree(tiny_clip_dir, copy)
    original = model_id_for(ResolvedModel(str(tiny_clip_dir), tiny_clip_dir, "folder"))
    copied = model_id_for(ResolvedModel(str(copy), copy, "folder"))
    assert copied == original
    weights = copy / "0_CLIPModel" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # "retrained in place": same size, other weights
    weights.write_bytes(bytes(data))
    assert model_id_for(ResolvedModel(str(copy), copy, "folder")) != original


# -- factory and reports ----------------------------------------------------------------------


def test_create_embedder_reads_settings(tiny_settings: Settings) -> None:
    embedder = create_embedder(tiny_settings)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.batch_size == 8
    assert embedder.load_count == 0  # nothing loads before first use
    for runtime in ("torch", "sentence-transformers", "AUTO"):
        assert isinstance(create_embedder(tiny_settings.with_overrides(runtime=runtime)), Embedder)
    with pytest.raises(ConfigError) as caught:
        create_embedder(tiny_settings.with_overrides(runtime="tensorrt"))
    assert caught.value.field == "runtime"


def test_models_come_from_the_environment(tmp_path: Path, tiny_clip_dir: Path) -> None:
    settings = Settings.load(
        environ={"LOOKALIKE_MODEL": str(tiny_clip_dir), "LOOKALIKE_TEXT_MODEL": "clip"},
        env_file=None,
        config_file=None,
        overrides={"home": tmp_path},
    )
    embedder = create_embedder(settings)
    _assert_unit_rows(embedder.embed_texts(["a cat"]), 1)


def test_model_statuses_for_working_models(tiny_settings: Settings, tiny_clip_dir: Path) -> None:
    image, text = model_statuses(tiny_settings)
    assert (image.role, text.role) == ("image", "text")
    for status in (image, text):
        assert status.available and status.loads is True
        assert status.runtime == "torch-fast"  # "auto" picks the fast runtime
        assert status.extra["dim"] == TINY_DIM
        assert status.to_dict()["source"] == "folder"
    assert image.location == str(tiny_clip_dir)
    assert image.extra["model_id"].startswith("local:")
    unloaded = model_statuses(tiny_settings, try_load=False)
    assert [s.loads for s in unloaded] == [None, None]


def test_model_statuses_for_a_missing_model(
    tiny_settings: Settings, _offline_empty_cache: Path
) -> None:
    settings = tiny_settings.with_overrides(image_model="clip-ViT-B-32")
    image, text = model_statuses(settings)
    assert not image.available and image.loads is None
    assert image.name == "clip-ViT-B-32"
    assert image.location is not None and str(_offline_empty_cache) in image.location
    assert HUB_CLIP in image.detail and "hf download" in image.detail
    assert text.available and text.loads is True
    shared = model_statuses(settings.with_overrides(text_model="clip"), try_load=True)
    assert [s.available for s in shared] == [False, False]


def test_model_statuses_report_a_dimension_mismatch(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    narrow = build_tiny_multilingual(tmp_path / "narrow", dim=16)
    image, text = model_statuses(tiny_settings.with_overrides(text_model=str(narrow)))
    assert image.loads is True
    assert text.loads is False and "16" in text.detail and "32" in text.detail
