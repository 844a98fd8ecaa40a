"""``lookalike reindex --model``: re-embed in place through a shadow collection, resumable.

Real parts throughout: SQLite stores on disk, image files, the real CLI in a
subprocess killed with SIGKILL mid-run. The models are tiny random ones
(pretrained weights cannot be downloaded here): a sentence-transformers CLIP pair
as the old model, a SigLIP as the new one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.collection import open_collection
from lookalike.config import Settings
from lookalike.errors import ConfigError, NotFoundError
from lookalike.models import create_embedder
from lookalike.reindex import MARKER, reindex_collection, shadow_folder
from lookalike.search import Query
from lookalike.store.local import LocalStore

SRC = Path(__file__).resolve().parents[1] / "src"


def write_photos(folder: Path, n: int, side: tuple[int, int] = (320, 240)) -> Path:
    """Distinct smooth pictures as PNG files (PNG: no reduced-scale decoding, real work)."""
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        coarse = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse, "RGB").resize(side, Image.Resampling.BICUBIC).save(
            folder / f"photo-{i:03d}.png"
        )
    return folder


def indexed(tmp_path: Path, clip_dir: Path, text_dir: Path, images: Path) -> Settings:
    settings = Settings(
        home=tmp_path / "home",
        collection="photos",
        image_model=str(clip_dir),
        text_model=str(text_dir),
        runtime="torch",
        batch_size=4,
    )
    with open_collection(settings, create=True) as col:
        assert col.indexer.index([images]).indexed > 0
    return settings


def live_model(settings: Settings) -> tuple[str, int]:
    with LocalStore(settings.collection_dir, settings.collection) as store:
        assert store.model is not None
        return store.model.model_id, store.count()


def test_reindex_swaps_in_the_new_model(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_siglip_dir: Path,
    small_collection: Path,
) -> None:
    old = indexed(tmp_path, tiny_clip_dir, tiny_multilingual_dir, small_collection)
    before, count = live_model(old)
    new = old.with_overrides(image_model=str(tiny_siglip_dir), text_model="clip")
    embedder = create_embedder(new)
    events: list[int] = []
    report = reindex_collection(new, embedder, progress=lambda p: events.append(p.done))
    assert report.swapped and report.embedded == count and report.previous_model == before
    assert events[-1] == count
    after, after_count = live_model(new)
    assert after == embedder.model_id != before and after_count == count
    assert not shadow_folder(new).exists() and not (new.collection_dir / MARKER).exists()
    with open_collection(new) as col:  # searches run on the new vectors
        hits = col.searcher.search(Query(texts=["a photo of a cat"], k=3))
        assert len(hits) == 3
    again = reindex_collection(new, create_embedder(new))
    assert not again.swapped and again.total == count  # same model: nothing to do


def test_reindex_refuses_what_it_cannot_do(tmp_path: Path, tiny_siglip_dir: Path) -> None:
    settings = Settings(home=tmp_path, image_model=str(tiny_siglip_dir), text_model="clip")
    with pytest.raises(NotFoundError, match="lookalike index"):
        reindex_collection(settings, create_embedder(settings))
    remote = settings.with_overrides(store="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="new collection"):
        reindex_collection(remote, create_embedder(settings))


@pytest.mark.slow
def test_reindex_resumes_after_kill_9(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path, tiny_siglip_dir: Path
) -> None:
    images = write_photos(tmp_path / "images", 80, side=(1600, 1200))
    old = indexed(tmp_path, tiny_clip_dir, tiny_multilingual_dir, images)
    before, count = live_model(old)
    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_BATCH_SIZE": "1"}
    command = [
        sys.executable, "-m", "lookalike", "reindex", "--home", str(old.home), "-c", "photos",
        "--model", str(tiny_siglip_dir), "--text-model", "clip", "--runtime", "torch",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    seen, done = b"", 0
    while proc.poll() is None:  # read the progress bar until some vectors are committed
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        counts = [int(m) for m in re.findall(rb"(\d+)/%d" % count, seen)]
        done = max(counts, default=0)
        if 2 <= done < count:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, seen.decode(errors="replace")[-2000:]
    # The old vectors still answer; the shadow holds what was committed before the kill.
    assert live_model(old) == (before, count)
    shadow = shadow_folder(old)
    assert (shadow / MARKER).is_file()
    with LocalStore(shadow, "photos") as partial:
        committed = partial.count()
    assert 1 <= committed < count
    # Run again: it continues, then swaps.
    new = old.with_overrides(image_model=str(tiny_siglip_dir), text_model="clip", runtime="torch")
    report = reindex_collection(new, create_embedder(new))
    assert report.swapped and report.resumed >= committed
    assert report.embedded + report.resumed == count
    after, after_count = live_model(new)
    assert after != before and after_count == count
    assert not shadow.exists()
