"""The indexer end to end: real files, real SQLite, tiny random models (no pretrained
weights can be downloaded here), real worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.errors import ModelMismatchError, NotFoundError
from lookalike.indexer import document_id
from lookalike.models.base import Embedder
from lookalike.records import ModelInfo
from lookalike.store import open_store


def write_images(folder: Path, count: int, *, size: int = 64, seed: int = 0) -> list[Path]:
    """Distinct noisy images, so every file has its own content hash and vector."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = folder / f"sub{i % 3}" / f"img{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def collection(tiny_settings: Settings, tiny_embedder):
    col = Collection(tiny_settings, embedder=tiny_embedder)
    yield col
    col.close()


def all_paths(col: Collection) -> list[str]:
    return [r.path for batch in col.store.iter_records(100) for r in batch]


def test_first_run_then_unchanged(collection: Collection, tmp_path: Path) -> None:
    files = write_images(tmp_path / "pics", 10)
    first = collection.indexer.index([tmp_path / "pics"])
    assert (first.indexed, first.unchanged, first.skipped) == (10, 0, [])
    assert collection.store.count() == 10
    second = collection.indexer.index([tmp_path / "pics"])
    assert (second.indexed, second.reused, second.updated, second.unchanged) == (0, 0, 0, 10)
    assert sorted(all_paths(collection)) == sorted(p.as_posix() for p in files)


def test_touch_edit_delete_rename(collection: Collection, tmp_path: Path) -> None:
    files = write_images(tmp_path / "pics", 8)
    collection.indexer.index([tmp_path / "pics"])
    before = {r.id: r.vector for b in collection.store.iter_records(100) for r in b}

    # touch: re-checked by hash, not re-embedded
    st = files[0].stat()
    os.utime(files[0], (st.st_atime, st.st_mtime + 100))
    report = collection.indexer.index([tmp_path / "pics"])
    assert (report.indexed, report.updated, report.unchanged) == (0, 1, 7)
    rec = collection.store.get([document_id(files[0].as_posix())])[0]
    assert rec.mtime == pytest.approx(st.st_mtime + 100)

    # edit: re-embedded, vector changes
    Image.new("RGB", (64, 64), (200, 30, 30)).save(files[1])
    report = collection.indexer.index([tmp_path / "pics"])
    assert (report.indexed, report.unchanged) == (1, 7)
    edited = collection.store.get([document_id(files[1].as_posix())])[0]
    assert not np.allclose(edited.vector, before[edited.id])

    # delete: removed
    files[2].unlink()
    report = collection.indexer.index([tmp_path / "pics"])
    assert (report.removed, report.indexed) == (1, 0)
    assert collection.store.count() == 7

    # rename: same content under a new name keeps its vector, no re-embedding
    old_id = document_id(files[3].as_posix())
    new_path = files[3].with_name("renamed.png")
    files[3].rename(new_path)
    report = collection.indexer.index([tmp_path / "pics"])
    assert (report.indexed, report.reused, report.removed) == (0, 1, 1)
    moved = collection.store.get([document_id(new_path.as_posix())])[0]
    np.testing.assert_array_equal(moved.vector, before[old_id])
    assert collection.store.get([old_id]) == []
    assert collection.store.count() == 7


def test_edit_into_garbage_removes_the_stale_document(
    collection: Collection, tmp_path: Path
) -> None:
    files = write_images(tmp_path / "pics", 3)
    collection.indexer.index([tmp_path / "pics"])
    files[0].write_bytes(b"this is no longer an image")
    report = collection.indexer.index([tmp_path / "pics"])
    assert [s.path for s in report.skipped] == [files[0].as_posix()]
    assert collection.store.count() == 2


def test_hostile_files_are_skipped_with_reasons(
    collection: Collection, tmp_path: Path, image_zoo
) -> None:
    folder = tmp_path / "zoo"
    folder.mkdir()
    for path in image_zoo.values():
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, folder / path.name)
    report = collection.indexer.index([folder])
    assert report.indexed >= 5
    assert report.skipped, "the zoo holds bad files"
    for skipped in report.skipped:
        assert skipped.path.startswith(folder.as_posix())
        assert skipped.reason
    assert collection.store.count() == report.indexed
    assert not any(Path(p).name.startswith("._") for p in all_paths(collection))


def test_single_file_and_missing_path(collection: Collection, tmp_path: Path) -> None:
    files = write_images(tmp_path / "pics", 4)
    report = collection.indexer.index([files[0]])
    assert report.indexed == 1
    # indexing the whole folder later adds the rest; indexing one file never removes others
    collection.indexer.index([tmp_path / "pics"])
    report = collection.indexer.index([files[1]])
    assert (report.removed, collection.store.count()) == (0, 4)
    with pytest.raises(NotFoundError, match="does not exist"):
        collection.indexer.index([tmp_path / "nope"])


class _OtherModel(Embedder):
    """The tiny embedder under another identity, as if the user switched models (a runtime
    with only the required members: the optional abilities keep the protocol's defaults)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    @property
    def model_id(self) -> str:
        return "someone/other-model"

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("someone/other-model", self._inner.dim, self._inner.info.preprocess)

    def load(self) -> None:
        self._inner.load()

    def embed_images(self, images):
        return self._inner.embed_images(images)

    def embed_texts(self, texts):
        return self._inner.embed_texts(texts)


def test_model_mismatch_is_refused(tiny_settings: Settings, tiny_embedder, tmp_path: Path) -> None:
    write_images(tmp_path / "pics", 2)
    with Collection(tiny_settings, embedder=tiny_embedder) as col:
        col.indexer.index([tmp_path / "pics"])
    with Collection(tiny_settings, embedder=_OtherModel(tiny_embedder)) as col:
        with pytest.raises(ModelMismatchError) as err:
            col.indexer.index([tmp_path / "pics"])
        assert "someone/other-model" in str(err.value)
        assert col.store.count() == 2


def _cli_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LOOKALIKE_HOME=str(settings.home),
        LOOKALIKE_MODEL=settings.image_model,
        LOOKALIKE_TEXT_MODEL=settings.text_model,
        LOOKALIKE_BATCH_SIZE="2",
        HF_HUB_OFFLINE="1",
    )
    return env


def _count(settings: Settings) -> int:
    store = open_store(settings)
    try:
        return store.count()
    finally:
        store.close()


def _wait_for_count(
    proc: subprocess.Popen, settings: Settings, at_least: int, limit_s: float = 120
) -> int:
    """Wait (bounded) until the indexing subprocess has committed ``at_least`` documents."""
    waited = 0.0
    while waited < limit_s:
        try:
            proc.wait(timeout=0.05)  # returns early if the process ends
        except subprocess.TimeoutExpired:
            waited += 0.05
        n = _count(settings) if (settings.collection_dir / "store.db").exists() else 0
        if n >= at_least or proc.poll() is not None:
            return n
    raise AssertionError(f"indexer committed fewer than {at_least} documents in {limit_s} s")


@pytest.mark.slow
def test_sigkill_mid_index_then_resume(
    tiny_settings: Settings, tiny_embedder, tmp_path: Path
) -> None:
    files = write_images(tmp_path / "pics", 40)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "index", "--quiet", str(tmp_path / "pics")],
        env=_cli_env(tiny_settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        committed = _wait_for_count(proc, tiny_settings, at_least=4)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert committed > 0
    with Collection(tiny_settings, embedder=tiny_embedder) as col:
        report = col.indexer.index([tmp_path / "pics"])
        paths = all_paths(col)
    assert report.unchanged >= committed  # what was committed before the kill is not redone
    assert len(paths) == len(set(paths)) == 40
    assert sorted(paths) == sorted(p.as_posix() for p in files)


@pytest.mark.slow
def test_search_sees_documents_while_another_process_indexes(
    tiny_settings: Settings, tiny_embedder, tmp_path: Path
) -> None:
    write_images(tmp_path / "pics", 30)
    with Collection(tiny_settings, embedder=tiny_embedder) as col:
        seen_before = len(col.searcher.text("anything", k=100))
        proc = subprocess.Popen(
            [sys.executable, "-m", "lookalike", "index", "--quiet", str(tmp_path / "pics")],
            env=_cli_env(tiny_settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_count(proc, tiny_settings, at_least=2)
            during = len(col.searcher.text("anything", k=100))
            assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = col.searcher.text("anything", k=100)
    assert seen_before == 0
    assert during >= 2
    assert len(after) == 30


def test_an_unchanged_folder_is_rechecked_without_loading_the_model(
    tiny_settings: Settings, tiny_clip_dir: Path, tiny_multilingual_dir: Path, tmp_path: Path
) -> None:
    """A collection bound to this very model whose weights are on disk is re-checked without
    loading the model (seconds for real weights); a new file loads it and is embedded."""
    from lookalike.models.sentence import SentenceTransformerEmbedder

    def fresh() -> tuple[Collection, SentenceTransformerEmbedder]:
        embedder = SentenceTransformerEmbedder(str(tiny_clip_dir), str(tiny_multilingual_dir))
        return Collection(tiny_settings, embedder=embedder), embedder

    write_images(tmp_path / "pics", 4)
    col, _ = fresh()
    assert col.indexer.index([tmp_path / "pics"]).indexed == 4
    col.close()

    col, embedder = fresh()
    report = col.indexer.index([tmp_path / "pics"])
    assert (report.unchanged, report.indexed) == (4, 0)
    assert embedder._image is None  # never loaded
    write_images(tmp_path / "pics" / "more", 1, seed=9)
    report = col.indexer.index([tmp_path / "pics"])
    assert (report.unchanged, report.indexed) == (4, 1)
    assert embedder._image is not None
    assert len(all_paths(col)) == 5
    col.close()


def test_a_new_collection_loads_its_model_while_the_first_images_decode(
    tiny_settings: Settings, tiny_clip_dir: Path, tiny_multilingual_dir: Path, tmp_path: Path
) -> None:
    """A new collection's first run loads the model in a thread while the decode workers
    start on the images, and binds the collection before its first write: the same
    documents and model as a sequential run. A run with nothing to embed still binds."""
    import threading

    from lookalike.models.sentence import SentenceTransformerEmbedder

    loaders: list[str] = []

    class Watched(SentenceTransformerEmbedder):
        def load_images(self) -> None:
            loaders.append(threading.current_thread().name)
            super().load_images()

    write_images(tmp_path / "pics", 11)
    embedder = Watched(str(tiny_clip_dir), str(tiny_multilingual_dir), batch_size=4)
    col = Collection(tiny_settings, embedder=embedder)
    events: list[tuple[str, int]] = []
    report = col.indexer.index(
        [tmp_path / "pics"], progress=lambda e: events.append((e.phase, e.done))
    )
    assert report.indexed == 11 and len(all_paths(col)) == 11
    assert loaders[0] == "model-load"
    assert col.store.model == embedder.info
    # the model is announced loaded before the first embedded image is counted
    phases = [e for e in events if e[0] in ("load", "embed")]
    assert phases[:3] == [("load", 0), ("load", 1), ("embed", 0)]
    col.close()

    empty = tiny_settings.with_overrides(collection="empty")
    (tmp_path / "nothing").mkdir()
    col = Collection(empty, embedder=Watched(str(tiny_clip_dir), str(tiny_multilingual_dir)))
    assert col.indexer.index([tmp_path / "nothing"]).indexed == 0
    assert col.store.model is not None  # bound at the end of the run, as before
    col.close()


def test_a_model_that_fails_to_load_in_the_background_fails_the_run(
    tiny_settings: Settings, tiny_clip_dir: Path, tiny_multilingual_dir: Path, tmp_path: Path
) -> None:
    """The load's error reaches the caller as it is, nothing is written, and the
    collection is left unbound (a later run with a working model starts afresh)."""
    from lookalike.errors import ModelError
    from lookalike.models.sentence import SentenceTransformerEmbedder

    class Broken(SentenceTransformerEmbedder):
        def load_images(self) -> None:
            raise ModelError("the image model's weights are damaged", field="image_model")

    write_images(tmp_path / "pics", 6)
    col = Collection(tiny_settings, embedder=Broken(str(tiny_clip_dir), str(tiny_multilingual_dir)))
    with pytest.raises(ModelError, match="damaged"):
        col.indexer.index([tmp_path / "pics"])
    assert col.store.model is None and col.store.count() == 0
    col.close()
