"""The saved image tower (``lookalike.models.vision_saved``): a warm start that loads a
traced, already-checked tower instead of sentence-transformers.

Pretrained weights cannot be had here: the tiny random CLIP of the fixtures stands in,
held against the reference runtime (sentence-transformers) on the same weights. The
cache files are real and are really damaged; a real process checks what a warm
``index`` imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.models.fast_torch import FastTorchEmbedder
from lookalike.models.sentence import SentenceTransformerEmbedder
from lookalike.models.vision_saved import MODULE, VERDICT
from test_indexer import write_images


def images(side: int = 224, n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB")
        for _ in range(n)
    ]


def fast(clip: Path, text: Path, root: Path, precision: str = "auto") -> FastTorchEmbedder:
    return FastTorchEmbedder(str(clip), str(text), onnx_cache=root, precision=precision)


@pytest.fixture
def saved_root(tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path) -> Path:
    """An export root where a first embedder saved its checked image tower."""
    root = tmp_path / "onnx"
    first = fast(tiny_clip_dir, tiny_multilingual_dir, root)
    assert first.warm_start_pending()
    said = first.prepare_warm_start()
    assert said.startswith("image tower saved in"), said
    assert not first.warm_start_pending()
    assert first.prepare_warm_start() == ""  # once per model and version
    return root


def test_a_saved_tower_embeds_as_the_reference_without_loading_the_model(
    saved_root: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: SentenceTransformerEmbedder,
) -> None:
    later = fast(tiny_clip_dir, tiny_multilingual_dir, saved_root)
    later.load_images()
    runtime, why = later.runtime_for("image")
    assert runtime.startswith("torch-fast ") and why.startswith("saved tower in")
    got = later.embed_images(images())
    assert later.load_count == 0  # sentence-transformers never loaded
    assert later.dim == tiny_embedder.dim == got.shape[1]
    want = tiny_embedder.embed_images(images())
    cosine = (got.astype(np.float64) * want).sum(1)
    assert cosine.min() >= 0.999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_input_the_saved_tower_does_not_take_loads_the_model(
    saved_root: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: SentenceTransformerEmbedder,
) -> None:
    later = fast(tiny_clip_dir, tiny_multilingual_dir, saved_root)
    later.load_images()
    odd = images(side=300, n=2)  # not 224x224: the model's own preprocessing must run
    got = later.embed_images(odd)
    assert later.load_count == 1
    cosine = (got.astype(np.float64) * tiny_embedder.embed_images(odd)).sum(1)
    assert cosine.min() >= 0.999


def test_a_damaged_saved_tower_is_dropped_and_made_again(
    saved_root: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    [module] = saved_root.glob(f"*-vision-saved-*/{MODULE}")
    module.write_bytes(b"not a torchscript archive")
    later = fast(tiny_clip_dir, tiny_multilingual_dir, saved_root)
    later.load_images()  # falls back to the ordinary load
    assert later.load_count == 1 and not module.exists()
    assert not later.runtime_for("image")[1].startswith("saved tower")
    assert later.warm_start_pending()
    assert later.prepare_warm_start().startswith("image tower saved in")
    assert module.is_file()
    verdict = json.loads((module.parent / VERDICT).read_text())
    assert verdict["cosine"] >= 0.999 and verdict["precision"] in ("bf16", "fp32")


def test_another_precision_is_another_saved_tower(
    saved_root: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    fp32 = fast(tiny_clip_dir, tiny_multilingual_dir, saved_root, precision="fp32")
    auto = fast(tiny_clip_dir, tiny_multilingual_dir, saved_root)
    if fp32.precision == auto.precision:  # a CPU without bf16: auto is fp32 already
        assert not fp32.warm_start_pending()
    else:
        assert fp32.warm_start_pending()


@pytest.mark.slow
def test_a_warm_index_neither_imports_sentence_transformers_nor_transformers(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    """Once the first ``index`` saved the tower (query_export "now": before it exits), a
    second one in a new collection embeds without importing either library."""
    write_images(tmp_path / "pics", 4)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env = {
        **clean,
        "LOOKALIKE_HOME": str(tiny_settings.home),
        "LOOKALIKE_MODEL": tiny_settings.image_model,
        "LOOKALIKE_TEXT_MODEL": tiny_settings.text_model,
        "LOOKALIKE_QUERY_EXPORT": "now",
        "HF_HUB_OFFLINE": "1",
    }
    index = [sys.executable, "-m", "lookalike", "index", "--json", str(tmp_path / "pics")]
    first = subprocess.run(index, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['lookalike', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('lookalike', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = [m for m in ('sentence_transformers', 'transformers') if m in sys.modules]\n"
        "print('heavy:', *heavy, file=sys.stderr)\n"
    )
    second = subprocess.run(
        [sys.executable, "-c", probe, "index", "--json", str(tmp_path / "pics")],
        capture_output=True, text=True, timeout=300,
        env={**env, "LOOKALIKE_COLLECTION": "again"},
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["indexed"] == 4
    [said] = [line for line in second.stderr.splitlines() if line.startswith("heavy:")]
    assert said.split() == ["heavy:"]
