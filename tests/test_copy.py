"""copy_collection between two real embedded stores (SQLite on disk, nothing mocked).

A run killed half-way is simulated by a destination that raises after N batches,
the way a crash, a full disk or a lost cluster would stop the loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike.errors import ModelMismatchError, QueryError, StoreError
from lookalike.records import ModelInfo, Record
from lookalike.store import LocalStore
from lookalike.transfer import CopyReport, copy_collection

DIM = 16
MODEL = ModelInfo("test/tiny-clip", DIM, "clip-224-v1")


def make_records(n: int, *, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for i in range(n):
        rel = f"{'ab'[i % 2]}/img_{i:04d}.jpg"
        out.append(
            Record(
                id=f"doc-{i:04d}",
                path=f"/photos/{rel}",
                root="/photos",
                relpath=rel,
                format="jpeg",
                size=1000 + i,
                mtime=1_700_000_000.5 + i,
                sha256=hashlib.sha256(rel.encode()).hexdigest(),
                width=640,
                height=480,
                vector=vectors[i],
            )
        )
    return out


@pytest.fixture
def stores(tmp_path: Path) -> Any:
    opened: list[LocalStore] = []

    def open_store(name: str) -> LocalStore:
        store = LocalStore(tmp_path / name, name)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def source(stores: Any) -> tuple[LocalStore, list[Record]]:
    store = stores("source")
    store.bind_model(MODEL)
    records = make_records(230)
    store.upsert(records)
    store.flush()
    return store, records


class Crashing:
    """A destination that dies after ``batches`` successful upserts (a killed copy)."""

    def __init__(self, inner: LocalStore, batches: int) -> None:
        self.inner = inner
        self.left = batches
        self.collection = inner.collection
        self.folder = inner.folder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def upsert(self, records: Sequence[Record]) -> None:
        if self.left == 0:
            raise StoreError("simulated crash in the middle of the copy")
        self.left -= 1
        self.inner.upsert(records)


def assert_same_content(a: LocalStore, b: LocalStore) -> None:
    left = [r for batch in a.iter_records(100) for r in batch]
    right = [r for batch in b.iter_records(100) for r in batch]
    assert [r.id for r in left] == [r.id for r in right]
    for x, y in zip(left, right, strict=True):
        assert x.metadata() == y.metadata()
        assert x.vector is not None and y.vector is not None
        assert np.array_equal(x.vector, y.vector)  # copied, not re-embedded


def test_copy_round_trips_every_record_and_vector(source: Any, stores: Any) -> None:
    src, records = source
    dest = stores("dest")
    seen: list[int] = []
    report = copy_collection(src, dest, batch_size=50, progress=seen.append)
    assert report == CopyReport(
        copied=230, skipped=0, source_count=230, dest_count=230, verified=True
    )
    assert seen == [50, 100, 150, 200, 230]
    assert dest.model == MODEL
    assert_same_content(src, dest)
    q = records[7].vector
    assert [h.id for h in dest.knn(q, 5)] == [h.id for h in src.knn(q, 5)]
    assert report.to_dict()["copied"] == 230


def test_an_interrupted_copy_resumes_and_writes_only_what_is_missing(
    source: Any, stores: Any
) -> None:
    src, _ = source
    dest = stores("dest")
    with pytest.raises(StoreError, match="simulated crash"):
        copy_collection(src, Crashing(dest, batches=2), batch_size=40)  # type: ignore[arg-type]
    assert dest.count() == 80
    report = copy_collection(src, dest, batch_size=40)
    assert (report.copied, report.skipped) == (150, 80)
    assert (report.source_count, report.dest_count, report.verified) == (230, 230, True)
    assert_same_content(src, dest)
    again = copy_collection(src, dest, batch_size=40)  # nothing left to do
    assert (again.copied, again.skipped, again.dest_count) == (0, 230, 230)


def test_a_stale_partial_destination_is_brought_up_to_date(source: Any, stores: Any) -> None:
    src, records = source
    dest = stores("dest")
    dest.bind_model(MODEL)
    stale = [replace(r, mtime=r.mtime - 60, size=r.size + 1) for r in records[:10]]
    dest.upsert(stale + records[10:20])
    extra = replace(records[0], id="only-in-dest", path="/photos/extra.jpg", relpath="extra.jpg")
    dest.upsert([extra])
    report = copy_collection(src, dest, batch_size=64)
    assert (report.copied, report.skipped) == (220, 10)
    assert (report.source_count, report.dest_count, report.verified) == (230, 231, True)
    got = dest.get([r.id for r in records[:10]], with_vectors=False)
    assert [g.mtime for g in got] == [r.mtime for r in records[:10]]


def test_a_destination_with_another_model_is_refused(source: Any, stores: Any) -> None:
    src, _ = source
    dest = stores("dest")
    dest.bind_model(replace(MODEL, model_id="other/model"))
    with pytest.raises(ModelMismatchError):
        copy_collection(src, dest)
    assert dest.count() == 0


def test_a_destination_of_another_dimension_is_refused(source: Any, stores: Any) -> None:
    src, _ = source
    dest = stores("dest")
    dest.bind_model(replace(MODEL, dim=DIM * 2))
    with pytest.raises(ModelMismatchError):
        copy_collection(src, dest)


def test_copying_an_empty_unbound_collection_does_nothing(stores: Any) -> None:
    src, dest = stores("empty"), stores("dest")
    report = copy_collection(src, dest)
    assert report == CopyReport(0, 0, 0, 0, True)
    assert dest.model is None


def test_copy_onto_itself_and_bad_batch_sizes_are_refused(source: Any, tmp_path: Path) -> None:
    src, _ = source
    with pytest.raises(QueryError):
        copy_collection(src, src)
    same = LocalStore(tmp_path / "source", "source")  # another handle on the same folder
    try:
        with pytest.raises(QueryError):
            copy_collection(src, same)
    finally:
        same.close()
    with pytest.raises(QueryError):
        copy_collection(src, src, batch_size=0)


def test_a_destination_that_loses_documents_fails_verification(source: Any, stores: Any) -> None:
    src, _ = source

    class Lossy(Crashing):
        def upsert(self, records: Sequence[Record]) -> None:
            self.inner.upsert(list(records)[:-1])  # silently drops one per batch

    dest = stores("dest")
    with pytest.raises(StoreError, match="incomplete.*Run the same copy again"):
        copy_collection(src, Lossy(dest, batches=0), batch_size=100)  # type: ignore[arg-type]
