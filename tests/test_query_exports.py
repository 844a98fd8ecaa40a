"""Queries without torch: the recorded ONNX exports (``lookalike.models.onnx_query``),
the image tower's export (``onnx_image``), and the CLI commands that must stay light.

Pretrained weights cannot be had here, so the exports are made from tiny random
models in the real sentence-transformers formats and held against the reference
runtime (sentence-transformers) on the same weights. Real processes check what a
cold command imports. Nothing is mocked: broken and stale exports are made by
really damaging the files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.models import onnx_image, onnx_query
from lookalike.models.fast_torch import FastTorchEmbedder
from lookalike.models.sentence import SentenceTransformerEmbedder
from lookalike.models.text_fast import TEXT_CHECKS
from test_indexer import write_images

HEAVY = ("torch", "transformers", "sentence_transformers")


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a.astype(np.float64) * b.astype(np.float64)).sum(1).min())


def query_images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    out = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), "RGB")]
    ramp = np.linspace(0, 255, 224, dtype=np.uint8)
    out.append(Image.fromarray(np.stack([np.tile(ramp, (224, 1))] * 3, axis=-1), "RGB"))
    out.append(Image.new("RGB", (224, 224), (200, 30, 30)))
    return out


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> Path:
    """An export root where a first embedder made and recorded both query exports."""
    root = tmp_path_factory.mktemp("onnx")
    first = FastTorchEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir), onnx_cache=root)
    assert first.query_exports_pending() == ["text", "image"]
    first.prepare_queries()
    assert first.query_exports_pending() == []
    return root


@pytest.fixture(scope="module")
def reference(tiny_clip_dir: Path, tiny_multilingual_dir: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir))


def light(root: Path, clip: Path, text: Path) -> FastTorchEmbedder:
    return FastTorchEmbedder(str(clip), str(text), onnx_cache=root)


def test_recorded_exports_answer_queries_as_the_reference_does(
    prepared: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    reference: SentenceTransformerEmbedder,
) -> None:
    embedder = light(prepared, tiny_clip_dir, tiny_multilingual_dir)
    texts = [*TEXT_CHECKS, "dog " * 400, "\x00 lone \ud800", "a" * 50_000]
    assert min_cosine(embedder.embed_texts(texts), reference.embed_texts(texts)) >= 0.999
    images = query_images()
    image_bar = {"onnx int8": 0.999, "onnx fp32": 0.9999}[embedder.runtime_for("image")[0]]
    assert min_cosine(embedder.embed_images(images), reference.embed_images(images)) >= image_bar
    assert embedder.load_count == 0  # neither tower was loaded with torch
    assert embedder.runtime_for("text")[0] == "onnx int8"
    for role in ("text", "image"):
        assert "torch-free" in embedder.runtime_for(role)[1]
    assert embedder.embed_texts([]).shape == (0, reference.text_dim)


def test_the_image_export_is_checked_against_the_reference(
    tmp_path: Path, tiny_clip_dir: Path, reference: SentenceTransformerEmbedder
) -> None:
    """Made from the tiny CLIP's fp32 tower; its manifest keeps the check's cosine and the
    probe vector, and a bar out of reach rejects it (noted, never tried again)."""
    tower = reference._image_tower()
    clip = tower.model[0].auto_model
    processor = tower.model[0].processor.image_processor
    images = query_images()
    ref = reference._encode(tower, list(images))
    cache = onnx_image.image_cache(tmp_path, tiny_clip_dir)
    encoder, why = onnx_image.export_image(
        cache, clip.vision_model, clip.visual_projection, processor, images, ref,
        precisions=["fp32"], bars={"fp32": 0.9999},
    )  # fmt: skip
    assert encoder is not None and "cosine" in why
    manifest = json.loads(cache.path(onnx_query.IMAGE_MANIFEST).read_text())
    assert manifest["precision"] == "fp32" and manifest["cosine"] >= 0.9999
    assert len(manifest["probe"]) == ref.shape[1]
    assert min_cosine(encoder(images), ref) >= 0.9999

    strict = onnx_image.image_cache(tmp_path / "strict", tiny_clip_dir)
    encoder, why = onnx_image.export_image(
        strict, clip.vision_model, clip.visual_projection, processor, images, ref,
        precisions=["fp32"], bars={"fp32": 1.5},
    )  # fmt: skip
    assert encoder is None and "image fp32 check: cosine" in why
    assert not strict.has(onnx_query.IMAGE_MANIFEST) and not strict.has(onnx_image.FILES["fp32"])
    assert strict.note("image-fp32.rejected")


@pytest.mark.parametrize("damage", ["garbage model", "swapped probe", "missing tokenizer"])
def test_a_broken_or_stale_export_falls_back_with_its_reason(
    tmp_path: Path,
    prepared: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    reference: SentenceTransformerEmbedder,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    """The full runtime answers, says why, re-checks the cache and records it again."""
    root = tmp_path / "onnx"
    shutil.copytree(prepared, root)
    folder = next(p for p in root.iterdir() if (p / onnx_query.TEXT_MANIFEST).is_file())
    manifest = json.loads((folder / onnx_query.TEXT_MANIFEST).read_text())
    if damage == "garbage model":
        (folder / manifest["file"]).write_bytes(b"not an onnx file" * 100)
        expected = "does not load"
    elif damage == "swapped probe":  # e.g. another model's file put there since
        manifest["probe"] = [-v for v in manifest["probe"]]
        (folder / onnx_query.TEXT_MANIFEST).write_text(json.dumps(manifest))
        expected = "no longer gives its recorded vector"
    else:
        (folder / onnx_query.TOKENIZER_FILE).unlink()
        expected = "does not load"
    caplog.set_level(logging.WARNING, logger="lookalike")
    embedder = light(root, tiny_clip_dir, tiny_multilingual_dir)
    out = embedder.embed_texts(list(TEXT_CHECKS))
    assert min_cosine(out, reference.embed_texts(list(TEXT_CHECKS))) >= 0.999
    runtime, why = embedder.runtime_for("text")
    assert runtime == "onnx int8" and "torch-free" not in why and expected in why
    assert any(expected in r.getMessage() for r in caplog.records)
    assert embedder.load_count == 1  # the full runtime loaded the text model
    again = light(root, tiny_clip_dir, tiny_multilingual_dir)  # re-recorded: light again
    np.testing.assert_allclose(again.embed_texts(list(TEXT_CHECKS)), out, atol=1e-6)
    assert again.load_count == 0 and "torch-free" in again.runtime_for("text")[1]


def test_loading_the_full_runtime_keeps_an_intact_recording(
    prepared: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    """A server start or ``lookalike models`` loads the text tower with torch: the
    recording made from the same export is kept, not copied again."""
    folder = next(p for p in prepared.iterdir() if (p / onnx_query.TEXT_MANIFEST).is_file())
    manifest = json.loads((folder / onnx_query.TEXT_MANIFEST).read_text())
    before = [(folder / n).stat().st_mtime_ns for n in (manifest["file"], "query-text.json")]
    embedder = light(prepared, tiny_clip_dir, tiny_multilingual_dir)
    embedder.load_texts()
    assert embedder.runtime_for("text")[0] == "onnx int8" and embedder.load_count == 1
    after = [(folder / n).stat().st_mtime_ns for n in (manifest["file"], "query-text.json")]
    assert after == before


def test_a_requested_precision_skips_another_recorded_one(
    prepared: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedder = FastTorchEmbedder(
        str(tiny_clip_dir), str(tiny_multilingual_dir), onnx_cache=prepared, onnx_precision="fp32"
    )
    assert embedder.runtime_for("text")[0] == "onnx fp32"
    assert "torch-free" not in embedder.runtime_for("text")[1]  # int8 is recorded, not fp32


def test_indexing_embeds_with_the_torch_tower_not_the_query_export(
    prepared: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> None:
    embedder = light(prepared, tiny_clip_dir, tiny_multilingual_dir)
    embedder.load_images()  # what the indexer does before embedding
    embedder.embed_images(query_images())
    runtime, why = embedder.runtime_for("image")
    # torch, or on a CPU with VNNI and no AMX the int8 indexing tower (``vision_int8``),
    # loaded the ordinary way or warm (``vision_int8_warm``), never the query export
    assert runtime.startswith("torch-fast") or (
        runtime == "onnx int8" and ("CPU has" in why or "recorded vectors" in why)
    )
    assert "torch-free" not in why


_COLD = """
import sys
from lookalike.cli import main

def run(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
    loaded = [m for m in ("torch", "transformers", "sentence_transformers", "onnxruntime")
              if m in sys.modules]
    print(args[0], args[1] if len(args) > 1 else "", *loaded, sep="|", file=sys.stderr)

run("stats")
run("collections")
run("similar", sys.argv[1], "-k", "3")
run("search", "a red car", "-k", "3")
run("similar", sys.argv[2], "-k", "3")
"""


def test_cold_queries_never_import_torch(
    tiny_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After ``lookalike index`` (which records the exports), a fresh process answers
    ``stats``, ``collections`` and ``similar ID`` with neither torch nor onnxruntime,
    and a text search and an image-file search with onnxruntime but no torch,
    transformers or sentence-transformers."""
    from lookalike.cli import main

    env = {
        "LOOKALIKE_HOME": str(tiny_settings.home),
        "LOOKALIKE_MODEL": tiny_settings.image_model,
        "LOOKALIKE_TEXT_MODEL": tiny_settings.text_model,
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    files = write_images(tmp_path / "pics", 4)
    main(["index", "--quiet", str(tmp_path / "pics")])
    capsys.readouterr()
    main(["similar", str(files[1]), "--json", "-k", "1"])
    doc_id = json.loads(capsys.readouterr().out)["results"][0]["id"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_COLD), doc_id, str(files[0])],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**clean, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line.split("|") for line in done.stderr.splitlines() if "|" in line]
    assert [(name, loaded) for name, _, *loaded in lines] == [
        ("stats", []),
        ("collections", []),
        ("similar", []),
        ("search", ["onnxruntime"]),
        ("similar", ["onnxruntime"]),
    ]
