"""The ONNX Runtime text path: export, int8, the cache, and the checks against the reference.

Pretrained weights cannot be downloaded here, so every test runs the real export,
quantisation and ONNX Runtime on tiny random models in the real sentence-transformers
formats (``support.tiny_models``), and compares with the reference runtime
(sentence-transformers) on the same weights. Processes are really killed and
really race. Mocked, where a test says so: the check's bar (raised out of reach to
exercise a fallback) and PyTorch's TorchScript exporter (made to fail, standing for a
future PyTorch without it), and an uninstalled package (``sys.modules`` entry None).

The tiny CLIP's text tower (hidden 32) loses too much to int8 (cosine ~0.997) for
the 0.999 bar, so the int8 CLIP tests use a small one with a 128-wide text tower.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.models import fast_torch, model_statuses, onnx_export, onnx_text
from lookalike.models.fast_torch import FastTorchEmbedder
from lookalike.models.onnx_cache import ExportCache
from lookalike.models.sentence import SentenceTransformerEmbedder
from lookalike.models.testing import build_random_clip

pytestmark = pytest.mark.slow  # ONNX exports of every model variant, racing processes

BAR = {"fp32": 0.9999, "int8": 0.999}
INT8 = onnx_text.FILES["int8"]
FP32 = onnx_text.FILES["fp32"]
TEXTS = [
    "a photo of a cat",
    "Ein Foto einer Katze am Strand",
    "une photo d'un chat rouge",
    "一只猫的照片",
    "фото кошки",
    "",
    "dog " * 400,  # cut at the model's limit
]
HOSTILE = ["\x00\x01\x02", "😀" * 300, "lone \ud800 surrogate", "\u200b\u200b", "a" * 100_000,
           "مرحبا بالعالم", "\t\n\r  ", "<script>alert(1)</script>"]  # fmt: skip


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a.astype(np.float64) * b.astype(np.float64)).sum(1).min())


@pytest.fixture(scope="module")
def small_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CLIP's layout and tokenizer with a 128-wide, seeded text tower."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    folder = build_random_clip(tmp_path_factory.mktemp("models") / "small-clip", size="tiny")
    sub = folder / "0_CLIPModel"
    config = CLIPConfig.from_pretrained(sub)
    text: Any = config.text_config
    text.hidden_size, text.intermediate_size, text.num_attention_heads = 128, 256, 4
    with torch.random.fork_rng():
        torch.manual_seed(0)
        CLIPModel(config).eval().save_pretrained(sub)
    return folder


@pytest.fixture(scope="module")
def ml_reference(tiny_clip_dir: Path, tiny_multilingual_dir: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir))


def ml_embedder(
    tiny_clip_dir: Path, tiny_multilingual_dir: Path, cache: Path | None, **kwargs: object
) -> FastTorchEmbedder:
    return FastTorchEmbedder(
        str(tiny_clip_dir), str(tiny_multilingual_dir), onnx_cache=cache, **kwargs
    )


def ml_cache(root: Path, tiny_multilingual_dir: Path) -> ExportCache:
    return onnx_text.text_cache(root, tiny_multilingual_dir, "mean-pooled")


# -- fidelity -------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_multilingual_onnx_matches_the_reference(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    ml_reference: SentenceTransformerEmbedder,
    precision: str,
) -> None:
    embedder = ml_embedder(
        tiny_clip_dir, tiny_multilingual_dir, tmp_path / "onnx", onnx_precision=precision
    )
    assert embedder.runtime_for("text")[0] == f"onnx {precision}"  # planned, before loading
    ours, theirs = embedder.embed_texts(TEXTS), ml_reference.embed_texts(TEXTS)
    runtime, why = embedder.runtime_for("text")
    assert runtime == f"onnx {precision}"
    folder = ml_cache(tmp_path / "onnx", tiny_multilingual_dir).folder
    assert why == f"dynamic padding, export cached in {folder}"
    assert ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert min_cosine(ours, theirs) >= BAR[precision]
    alone = np.concatenate([embedder.embed_texts([t]) for t in TEXTS])
    assert min_cosine(alone, theirs) >= BAR[precision]


def test_torch_text_weights_are_freed_once_onnx_answers(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path, small_clip_dir: Path
) -> None:
    """The torch text encoder was needed only as the load check's reference: its weights
    go (to the "meta" device); the ONNX path keeps answering, and with CLIP's own text
    tower the image tower it shares a model with is untouched."""
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path / "ml")
    before = embedder.embed_texts(TEXTS)
    assert embedder.runtime_for("text")[0].startswith("onnx")
    text_params = list(embedder._text.model[0].auto_model.parameters())  # type: ignore[union-attr]
    assert text_params and {p.device.type for p in text_params} == {"meta"}
    np.testing.assert_array_equal(embedder.embed_texts(TEXTS), before)

    clip = FastTorchEmbedder(str(small_clip_dir), "clip", onnx_cache=tmp_path / "clip")
    clip.embed_texts(TEXTS)
    assert clip.runtime_for("text")[0].startswith("onnx")
    model = clip._text.model[0].auto_model  # type: ignore[union-attr]
    assert {p.device.type for p in model.text_model.parameters()} == {"meta"}
    assert {p.device.type for p in model.vision_model.parameters()} == {"cpu"}
    image = Image.fromarray(np.full((224, 224, 3), 120, dtype=np.uint8), "RGB")
    assert np.isfinite(clip.embed_images([image])).all()


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_clip_text_tower_onnx_matches_the_reference(
    tmp_path: Path, small_clip_dir: Path, precision: str
) -> None:
    embedder = FastTorchEmbedder(
        str(small_clip_dir), "clip", onnx_cache=tmp_path, onnx_precision=precision
    )
    reference = SentenceTransformerEmbedder(str(small_clip_dir), "clip")
    assert min_cosine(embedder.embed_texts(TEXTS), reference.embed_texts(TEXTS)) >= BAR[precision]
    runtime, why = embedder.runtime_for("text")
    assert runtime == f"onnx {precision}"
    folder = Path(why.split("export cached in ")[1])
    assert folder.parent == tmp_path and folder.name.startswith("small-clip-clip-text-")
    assert (folder / onnx_text.FILES[precision]).is_file()


def test_dynamic_padding_gives_each_text_its_own_vector(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    """fp32: a padded batch equals one text at a time. (int8 quantises activations per
    batch, so there it is held to the reference bar, in the fidelity tests above.)"""
    for text_model in (str(tiny_multilingual_dir), "clip"):
        embedder = FastTorchEmbedder(
            str(tiny_clip_dir), text_model, onnx_cache=tmp_path, onnx_precision="fp32"
        )
        together = embedder.embed_texts(TEXTS)
        assert embedder.runtime_for("text")[0] == "onnx fp32"
        alone = np.concatenate([embedder.embed_texts([t]) for t in TEXTS])
        assert min_cosine(together, alone) >= 0.99999


def test_hostile_texts_give_finite_unit_vectors(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    ml_reference: SentenceTransformerEmbedder,
) -> None:
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    out = embedder.embed_texts(HOSTILE)
    assert embedder.runtime_for("text")[0] == "onnx int8"
    assert np.isfinite(out).all() and out.shape == (len(HOSTILE), embedder.text_dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert min_cosine(out, ml_reference.embed_texts(HOSTILE)) >= BAR["int8"]
    assert embedder.embed_texts([]).shape == (0, embedder.text_dim)


def test_concurrent_queries_agree(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    expected = embedder.embed_texts(TEXTS)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embedder.embed_texts(TEXTS), range(16)))
    for got in results:
        np.testing.assert_array_equal(got, expected)


# -- choosing the path --------------------------------------------------------------------


def test_without_a_cache_folder_text_runs_on_torch(
    tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, None)
    embedder.load_texts()
    assert embedder.runtime_for("text") == ("torch-fast fp32", "dynamic padding")


def test_missing_onnxruntime_falls_back_with_the_install_hint(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """onnxruntime made unimportable (sys.modules entry None), as where it is not installed."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    assert embedder.runtime_for("text")[0] == "torch-fast fp32"
    embedder.load_texts()
    runtime, why = embedder.runtime_for("text")
    assert runtime == "torch-fast fp32"
    assert "onnxruntime not installed" in why and "pip install 'lookalike[onnx]'" in why
    assert not any(tmp_path.iterdir())


def test_missing_onnx_package_falls_back_with_the_install_hint(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exporter's ``onnx`` package made unimportable; onnxruntime itself is there."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    embedder.load_texts()
    runtime, why = embedder.runtime_for("text")
    assert runtime == "torch-fast fp32"
    assert "ONNX off" in why and "onnx package is needed" in why and "lookalike[onnx]" in why
    assert embedder.embed_texts(["a cat"]).shape == (1, embedder.text_dim)


def test_int8_failing_its_check_gives_way_to_fp32_and_is_remembered(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The int8 bar is raised out of reach."""
    monkeypatch.setattr(fast_torch, "CHECK_COSINE", {**fast_torch.CHECK_COSINE, "int8": 1.5})
    first = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    first.load_texts()
    runtime, why = first.runtime_for("text")
    assert runtime == "onnx fp32"
    assert why.startswith("int8 load check: cosine") and "fp32 instead" in why
    cache = ml_cache(tmp_path, tiny_multilingual_dir)
    assert not cache.has(INT8) and cache.has(FP32)
    assert "int8 load check" in (cache.note("text-int8.rejected") or "")
    before = os.stat(cache.path(FP32))
    second = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    second.load_texts()  # skips int8 at once: no second quantisation
    assert second.runtime_for("text") == (runtime, why)
    assert not cache.has(INT8)
    after = os.stat(cache.path(FP32))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_every_onnx_path_failing_leaves_torch(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    ml_reference: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ONNX bars are raised out of reach; torch fp32 keeps its own."""
    real = onnx_text.load_checked

    def strict(*args: Any, **kwargs: Any) -> Any:
        return real(*args, **{**kwargs, "bars": {"int8": 1.5, "fp32": 1.5}})

    monkeypatch.setattr(onnx_text, "load_checked", strict)
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    out = embedder.embed_texts(TEXTS)
    runtime, why = embedder.runtime_for("text")
    assert runtime == "torch-fast fp32"
    assert "ONNX off: int8 load check" in why and "fp32 load check" in why
    assert min_cosine(out, ml_reference.embed_texts(TEXTS)) >= BAR["fp32"]


def test_models_report_names_the_onnx_path(tiny_settings: Settings) -> None:
    image, text = model_statuses(tiny_settings)
    assert text.extra["active_runtime"] == "onnx int8"
    assert f"onnx int8: dynamic padding, export cached in {tiny_settings.home / 'onnx'}" in (
        text.detail
    )
    assert image.extra["active_runtime"].startswith("torch-fast")


def test_torchscript_exporter_gone_uses_torch_export(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    ml_reference: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TorchScript exporter is made to fail, as in a PyTorch that has dropped it."""

    def gone(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the TorchScript-based ONNX exporter has been removed")

    monkeypatch.setattr(onnx_export, "_export_torchscript", gone)
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path, onnx_precision="fp32")
    out = embedder.embed_texts(TEXTS)
    assert embedder.runtime_for("text")[0] == "onnx fp32"
    assert min_cosine(out, ml_reference.embed_texts(TEXTS)) >= BAR["fp32"]


# -- the cache --------------------------------------------------------------------------------


def test_a_second_embedder_loads_the_cached_export(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    first = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    vectors = first.embed_texts(TEXTS)
    cache = ml_cache(tmp_path, tiny_multilingual_dir)
    before = os.stat(cache.path(INT8))
    second = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    np.testing.assert_array_equal(second.embed_texts(TEXTS), vectors)
    after = os.stat(cache.path(INT8))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # The second answers from the export the first recorded, without loading the model.
    assert second.runtime_for("text")[0] == first.runtime_for("text")[0] == "onnx int8"
    assert "torch-free" in second.runtime_for("text")[1]
    assert second.load_count == 0
    assert sorted(p.name for p in cache.folder.iterdir()) == sorted(
        [
            ".lock",
            "key.json",
            INT8,
            "query-text.json",
            "tokenizer.json",
            "query-text-int8.onnx",
            "query-text-int8.onnx.data",
        ]  # fmt: skip
    )
    assert json.loads(cache.path("key.json").read_text())["export"] == onnx_text.EXPORT_VERSION


def test_changed_weights_get_a_new_export(tmp_path: Path, tiny_multilingual_dir: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_multilingual_dir, copy)
    before = ml_cache(tmp_path / "onnx", copy).folder
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert ml_cache(tmp_path / "onnx", copy).folder != before
    assert ml_cache(tmp_path / "onnx", tiny_multilingual_dir).folder != before


def _break(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    path.unlink()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "directory":
        path.mkdir()
        (path / "x").write_bytes(b"x")
    else:  # another model's export: loads and runs, but its vectors are wrong
        shutil.copyfile(other, path)


@pytest.fixture(scope="module")
def made_cache(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> tuple[Path, Path]:
    """(a cache root holding the tiny multilingual model's int8 and fp32 exports,
    the tiny CLIP text tower's fp32 export)."""
    root = tmp_path_factory.mktemp("onnx")
    for precision in ("int8", "fp32"):
        ml_embedder(
            tiny_clip_dir, tiny_multilingual_dir, root, onnx_precision=precision
        ).load_texts()
    clip_root = tmp_path_factory.mktemp("clip-onnx")
    clip = FastTorchEmbedder(
        str(tiny_clip_dir), "clip", onnx_cache=clip_root, onnx_precision="fp32"
    )
    clip.load_texts()
    return root, next(clip_root.glob(f"*/{FP32}"))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "directory", "other model"])
def test_a_broken_cached_file_is_made_again(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    ml_reference: SentenceTransformerEmbedder,
    made_cache: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    precision = "fp32" if how == "other model" else "int8"
    shutil.copytree(made_cache[0], tmp_path / "onnx")
    cache = ml_cache(tmp_path / "onnx", tiny_multilingual_dir)
    for recorded in cache.folder.glob("query-*"):  # the torch-free copies: see
        recorded.unlink()  # test_query_exports; here the full runtime repairs its cache
    target = cache.path(onnx_text.FILES[precision])
    _break(target, how, made_cache[1])
    caplog.set_level(logging.WARNING, logger="lookalike")
    embedder = ml_embedder(
        tiny_clip_dir, tiny_multilingual_dir, tmp_path / "onnx", onnx_precision=precision
    )
    out = embedder.embed_texts(TEXTS)
    assert embedder.runtime_for("text")[0] == f"onnx {precision}"
    assert min_cosine(out, ml_reference.embed_texts(TEXTS)) >= BAR[precision]
    assert target.is_file() and target.stat().st_size > 1000
    if how != "directory":  # a directory is no file: it is simply replaced by one
        assert any("exporting it again" in r.getMessage() for r in caplog.records)


def test_a_kill_mid_export_leaves_nothing_loadable_and_is_cleaned_up(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    """A real process is killed (SIGKILL) while it writes the int8 file under the lock."""
    cache = ml_cache(tmp_path, tiny_multilingual_dir)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HALF_WRITER,
            str(cache.root),
            cache.name,
            json.dumps(cache.key),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        partial = Path(child.stdout.readline().strip())  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()  # type: ignore[union-attr]
    assert partial.is_file() and partial.parent.parent == cache.folder
    assert not cache.has(INT8)  # nothing half-written is where a loader looks
    embedder = ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path)
    embedder.load_texts()  # not blocked: the kernel dropped the dead process's lock
    assert embedder.runtime_for("text")[0] == "onnx int8"
    assert not partial.parent.exists()
    assert not [p for p in cache.folder.iterdir() if p.name.startswith(".tmp-")]


_HALF_WRITER = """
import json, sys, threading
from pathlib import Path
from lookalike.models.onnx_cache import ExportCache

def make(tmp):
    part = tmp / "text-int8.onnx"
    part.write_bytes(b"\\x08\\x07\\x12" * 5000)  # the start of a model, no more
    print(part, flush=True)
    threading.Event().wait()  # killed here

ExportCache(Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])).ensure("text-int8.onnx", make)
"""

_RACER = """
import json, os, sys
from pathlib import Path
from lookalike.models.onnx_cache import ExportCache

def make(tmp):
    with open(sys.argv[2], "a") as log:
        log.write(f"{os.getpid()}\\n")
    out = tmp / "f.bin"
    out.write_bytes(os.urandom(1 << 20))
    return {"f.bin": out}

cache = ExportCache(Path(sys.argv[1]), "race", {"k": 1})
path, _ = cache.ensure("f.bin", make)
print(path.read_bytes().hex()[:64], flush=True)
"""


def test_processes_racing_make_the_file_once_and_agree(tmp_path: Path) -> None:
    log = tmp_path / "makers.log"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(tmp_path / "cache"), str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [r.communicate(timeout=60)[0].strip() for r in racers]
    assert all(r.returncode == 0 for r in racers)
    assert len(set(outputs)) == 1 and len(outputs[0]) == 64
    assert len(log.read_text().split()) == 1


def test_threads_loading_at_once_share_one_export(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedders = [ml_embedder(tiny_clip_dir, tiny_multilingual_dir, tmp_path) for _ in range(2)]
    barrier = threading.Barrier(2)

    def load(e: FastTorchEmbedder) -> np.ndarray:
        barrier.wait()
        return e.embed_texts(TEXTS)

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(load, embedders)
    np.testing.assert_array_equal(a, b)
    assert [e.runtime_for("text")[0] for e in embedders] == ["onnx int8"] * 2


def test_stale_temporary_folders_are_swept_only_when_their_process_is_gone(
    tmp_path: Path,
) -> None:
    cache = ExportCache(tmp_path, "m", {"k": 1})
    cache.folder.mkdir(parents=True)
    dead = cache.folder / ".tmp-999999999-abc"  # above any Linux pid_max
    alive = cache.folder / f".tmp-{os.getppid()}-abc"
    odd = cache.folder / ".tmp-notapid"
    for folder in (dead, alive, odd):
        folder.mkdir()
        (folder / INT8).write_bytes(b"partial")

    def make(tmp: Path) -> dict[str, Path]:
        (tmp / "f").write_bytes(b"whole")
        return {"f": tmp / "f"}

    path, cached = cache.ensure("f", make)
    assert (path.read_bytes(), cached, cache.builds) == (b"whole", False, 1)
    assert cache.ensure("f", make) == (path, True) and cache.builds == 1
    assert not dead.exists() and not odd.exists() and alive.exists()
    cache.discard("f")
    assert not cache.has("f")


_USEARCH_FIRST = """
import usearch.compiled
from lookalike.models import onnx_text
print(onnx_text.onnx_missing())
"""

# The store loads usearch only when it builds or opens an HNSW index (a cold `stats` or a
# small collection's search never does), and then through lookalike.native_libs.
_STORE_FIRST = """
import lookalike.native_libs
import numpy as np
from usearch.index import Index
from lookalike.models import onnx_text
print(onnx_text.onnx_missing())
import onnxruntime
index = Index(ndim=8, metric="cos")
vectors = np.eye(8, dtype=np.float32)
index.add(np.arange(8), vectors)
print(index.search(vectors[3], 1).keys[0])
"""


def test_onnxruntime_after_usearch_is_refused_not_crashed() -> None:
    """usearch's static libstdc++ crashes onnxruntime loaded after it (SIGSEGV): with
    usearch first the ONNX path says so and stays off; with lookalike.native_libs first
    (where the store takes usearch from) both libraries work in one process."""
    first = subprocess.run(
        [sys.executable, "-c", _USEARCH_FIRST], capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert "cannot be loaded after usearch" in first.stdout
    second = subprocess.run(
        [sys.executable, "-c", _STORE_FIRST], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["None", "3"]
