"""float16 vector storage (``vector_precision = float16``) on real SQLite files.

A float16 collection keeps each vector in half the bytes. What it must still give:
vectors within cosine 0.9999 of what was stored, the same rankings as a float32
collection of the same data up to near-ties, checksums and ``check`` as before, and
the precision fixed for the life of the collection (rows are read by their length, so
a collection never misreads a row written before).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.errors import ConfigError
from lookalike.records import ModelInfo, Record
from lookalike.store import IndexParams, LocalStore, open_store
from lookalike.store.local.rows import vectors_from_blobs

MODEL = ModelInfo("test/precision", 24, "clip-224-v1")
DIM = MODEL.dim


def make_records(n: int, *, seed: int = 0, start: int = 0, dim: int = DIM) -> list[Record]:
    vectors = _realistic(n, dim, seed)
    return [
        Record(
            id=f"img_{start + i:05d}.jpg",
            path=f"/photos/img_{start + i:05d}.jpg",
            root="/photos",
            relpath=f"img_{start + i:05d}.jpg",
            format="jpeg",
            size=1000 + i,
            mtime=1_600_000_000.0 + i,
            sha256=f"{seed:08x}{start + i:056x}",
            width=640,
            height=480,
            vector=vectors[i],
        )
        for i in range(n)
    ]


def _realistic(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors in clusters, as image embeddings are: neighbours clearly closer."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _records(n: int, dim: int, seed: int) -> list[Record]:
    return make_records(n, seed=seed, dim=dim)


def _blob_lengths(folder: Path) -> set[int]:
    with sqlite3.connect(folder / "store.db") as conn:
        return {int(n) for (n,) in conn.execute("SELECT DISTINCT length(vector) FROM vectors")}


def _filled(folder: Path, precision: str, records: list[Record], **kw: object) -> LocalStore:
    store = LocalStore(folder, "c", vector_precision=precision, **kw)  # type: ignore[arg-type]
    store.bind_model(MODEL)
    store.upsert(records)
    return store


def test_float16_halves_the_stored_vectors_and_keeps_them_within_cosine(tmp_path: Path) -> None:
    records = _records(300, DIM, seed=3)
    store = _filled(tmp_path / "half", "float16", records)
    assert store.vector_precision == "float16"
    assert _blob_lengths(tmp_path / "half") == {DIM * 2}
    got = store.get([r.id for r in records])
    for g, r in zip(got, records, strict=True):
        assert g.vector is not None and r.vector is not None
        assert float(np.dot(g.vector, r.vector)) >= 0.9999
        assert abs(float(np.linalg.norm(g.vector)) - 1.0) < 1e-6  # re-normalised on reading
    assert store.stats().details["vector_precision"] == "float16"
    assert store.check().problems == []
    store.close()
    reopened = LocalStore(tmp_path / "half", "c")  # the collection remembers its precision
    assert reopened.vector_precision == "float16"
    reopened.upsert(_records(5, DIM, seed=4))
    assert _blob_lengths(tmp_path / "half") == {DIM * 2}
    reopened.close()


@pytest.mark.parametrize("exact_threshold", [1_000_000, 0])  # exact matrix, then HNSW
def test_float16_ranks_as_float32_does(tmp_path: Path, exact_threshold: int) -> None:
    dim = 256
    model = type(MODEL)(MODEL.model_id, dim, MODEL.preprocess)
    records = _records(1500, dim, seed=5)
    stores = {}
    for precision in ("float32", "float16"):
        store = LocalStore(
            tmp_path / precision,
            "c",
            vector_precision=precision,
            exact_threshold=exact_threshold,
            index_params=IndexParams(),
        )
        store.bind_model(model)
        store.upsert(records)
        stores[precision] = store
    queries = _realistic(40, dim, seed=77)
    matrix = np.stack([r.vector for r in records]).astype(np.float64)
    found = {"float32": 0, "float16": 0}
    for q in queries:
        truth = {records[i].id for i in np.argsort(-(matrix @ q))[:10]}
        scores = {}
        for precision, store in stores.items():
            hits = store.knn(q, 10)
            found[precision] += len({h.id for h in hits} & truth)
            scores[precision] = {h.id: h.score for h in hits}
        for hit_id, score in scores["float16"].items():  # float16's rounding only
            if hit_id in scores["float32"]:
                assert abs(score - scores["float32"][hit_id]) < 1e-3
    # against the exact float64 ranking, float16 loses (almost) nothing
    assert found["float16"] >= found["float32"] - 4 and found["float16"] / 400 >= 0.95
    for store in stores.values():
        store.close()


def test_a_damaged_float16_vector_is_found(tmp_path: Path) -> None:
    records = _records(50, DIM, seed=6)
    _filled(tmp_path / "half", "float16", records).close()
    with sqlite3.connect(tmp_path / "half" / "store.db") as conn:
        key, blob = conn.execute("SELECT key, vector FROM vectors LIMIT 1").fetchone()
        flipped = bytes([blob[0] ^ 0x40]) + blob[1:]
        conn.execute("UPDATE vectors SET vector = ? WHERE key = ?", (flipped, key))
    store = LocalStore(tmp_path / "half", "c")
    found = store.check()
    assert len(found.damaged) == 1 and found.problems
    store.close()


def test_rows_of_either_precision_are_read_by_their_length() -> None:
    v = _realistic(3, DIM, seed=8)
    blobs = [
        v[0].astype("<f4").tobytes(),
        v[1].astype("<f2").tobytes(),
        v[2].astype("<f4").tobytes(),
    ]
    out = vectors_from_blobs(blobs, DIM)
    assert out.dtype == np.float32 and out.shape == (3, DIM)
    assert np.array_equal(out[0], v[0]) and np.array_equal(out[2], v[2])
    assert float(np.dot(out[1], v[1])) >= 0.9999
    with pytest.raises(Exception, match="check --repair"):
        vectors_from_blobs([b"\0" * (DIM * 3)], DIM)


def test_the_setting_applies_to_new_collections_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc_info:
        Settings(home=tmp_path, vector_precision="float8")
    assert exc_info.value.field == "vector_precision"
    old = Settings(home=tmp_path, collection="old")
    store = open_store(old, create=True)
    store.bind_model(MODEL)
    store.upsert(make_records(3))
    store.close()
    # asking for float16 later changes nothing in an existing collection
    store = open_store(old.with_overrides(vector_precision="float16"))
    assert isinstance(store, LocalStore) and store.vector_precision == "float32"
    store.upsert(make_records(3, start=10))
    store.close()
    assert _blob_lengths(old.collection_dir) == {DIM * 4}
    new = Settings(home=tmp_path, collection="new", vector_precision="float16")
    store = open_store(new, create=True)
    store.bind_model(MODEL)
    store.upsert(make_records(3))
    store.close()
    assert _blob_lengths(new.collection_dir) == {DIM * 2}


def test_lookalike_copy_converts_a_collection_as_the_docs_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``LOOKALIKE_VECTOR_PRECISION=float16 lookalike copy OLD NEW`` (docs/store.md), through
    the real command line in-process."""
    from lookalike.cli import main

    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path))
    old = Settings(home=tmp_path, collection="old")
    records = make_records(40, seed=9)
    store = open_store(old, create=True)
    store.bind_model(MODEL)
    store.upsert(records)
    store.close()
    monkeypatch.setenv("LOOKALIKE_VECTOR_PRECISION", "float16")
    try:
        main(["copy", "old", "new"])
    except SystemExit as exc:  # main() exits only on an error
        pytest.fail(f"copy exited with {exc.code}: {capsys.readouterr()}")
    assert "copied 40 documents" in capsys.readouterr().out
    new = Settings(home=tmp_path, collection="new")
    assert _blob_lengths(old.collection_dir) == {DIM * 4}
    assert _blob_lengths(new.collection_dir) == {DIM * 2}
    copied = open_store(new)
    got = {r.id: r.vector for r in copied.get([r.id for r in records])}
    copied.close()
    assert len(got) == len(records)
    for r in records:
        v = got[r.id]
        assert v is not None and r.vector is not None and float(np.dot(v, r.vector)) >= 0.9999
