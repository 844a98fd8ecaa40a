"""The Store contract, run against every backend (see ``store_factory`` in conftest.py).

Only the Store protocol is used, plus ``flush()`` after writes (Elasticsearch
needs a refresh before a write is searchable). Results are compared with a brute-
force float64 ranking of the same random unit vectors: exact backends must match
it id for id; approximate ones (HNSW) must reach a recall floor, and every score
they return must be the true cosine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from lookalike.errors import ModelMismatchError, QueryError, StoreError
from lookalike.records import FileState, Filters, ModelInfo, Record
from lookalike.store import Store

Records = Callable[..., list[Record]]


DIM = int(os.environ.get("LOOKALIKE_TEST_DIM") or 24)  # as in conftest.py


def query(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(10_000 + seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def filled(
    store_factory: Any, records_factory: Records, model_info: ModelInfo
) -> tuple[Store, list[Record]]:
    store = store_factory()
    store.bind_model(model_info)
    records = records_factory(300, seed=3)
    store_factory.write(store, records)
    return store, records


def test_empty_store_answers_without_error(store_factory: Any, model_info: ModelInfo) -> None:
    store = store_factory()
    assert store.model is None
    assert store.knn(query(0), 5) == []
    assert store.count() == 0
    store.bind_model(model_info)
    assert store.knn(query(0), 5) == []
    assert store.knn(query(0), 5, filters=Filters(formats=("png",))) == []
    assert store.get(["nope"]) == []
    assert list(store.iter_records()) == []
    assert list(store.manifest("/photos")) == []
    assert store.find_by_hash(["0" * 64]) == {}
    assert store.stats().documents == 0


def test_bind_model_records_identity_and_refuses_another(
    store_factory: Any, model_info: ModelInfo
) -> None:
    store = store_factory("bind")
    store.bind_model(model_info)
    store.bind_model(model_info)  # the same model again is fine
    assert store.model == model_info
    others = [
        replace(model_info, model_id="other/model"),
        replace(model_info, dim=model_info.dim * 2),
        replace(model_info, preprocess="another-preprocess"),
    ]
    for other in others:
        with pytest.raises(ModelMismatchError) as err:
            store.bind_model(other)
        text = str(err.value)
        assert model_info.model_id in text and other.model_id in text
        assert "--collection" in text  # says how to fix it
    store.close()

    reopened = store_factory("bind")
    assert reopened.model == model_info
    with pytest.raises(ModelMismatchError):
        reopened.bind_model(others[0])


def test_upsert_refuses_bad_vectors_and_writes_nothing_then(
    store_factory: Any, records_factory: Records, model_info: ModelInfo
) -> None:
    store = store_factory()
    records = records_factory(4)
    with pytest.raises(StoreError):  # no model bound yet
        store.upsert(records)
    store.bind_model(model_info)
    bad_dim = replace(records[2], vector=np.ones(model_info.dim + 3, dtype=np.float32))
    with pytest.raises(ModelMismatchError):
        store.upsert([records[0], records[1], bad_dim])
    nan = np.full(model_info.dim, np.nan, dtype=np.float32)
    with pytest.raises(StoreError):
        store.upsert([records[0], replace(records[3], vector=nan)])
    store.flush()
    assert store.count() == 0
    store_factory.write(store, records)
    assert store.count() == 4


def test_upsert_replaces_by_id_without_duplicates(
    store_factory: Any, records_factory: Records, model_info: ModelInfo
) -> None:
    store = store_factory()
    store.bind_model(model_info)
    records = records_factory(50, seed=1)
    store_factory.write(store, records)
    new_vectors = records_factory(10, seed=99)
    changed = [
        replace(r, size=r.size + 1, width=7, vector=nv.vector)
        for r, nv in zip(records[:10], new_vectors, strict=True)
    ]
    extra = records_factory(5, seed=2, start=500)
    store_factory.write(store, changed + extra)
    store_factory.write(store, changed)  # again: idempotent
    assert store.count() == 55
    all_ids = [r.id for batch in store.iter_records(batch_size=7) for r in batch]
    assert len(all_ids) == len(set(all_ids)) == 55
    got = store.get([r.id for r in changed])
    assert [g.width for g in got] == [7] * 10
    assert [g.size for g in got] == [r.size for r in changed]
    for rec in changed:
        hits = store.knn(rec.vector, 3)
        assert hits[0].id == rec.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
        stale = store.knn(records[changed.index(rec)].vector, 55)
        assert all(h.score < 0.999 for h in stale if h.id == rec.id)  # old vector is gone


def test_delete_removes_from_every_read(
    store_factory: Any, filled: tuple[Store, list[Record]]
) -> None:
    store, records = filled
    gone = [r.id for r in records[:30]]
    store.delete([*gone, "not-a-known-id"])
    store.flush()
    assert store.count() == 270
    assert store.get(gone) == []
    kept = {r.id for batch in store.iter_records() for r in batch}
    assert kept == {r.id for r in records[30:]}
    for rec in records[:5]:
        assert rec.id not in {h.id for h in store.knn(rec.vector, 20)}
    store.delete([])  # nothing to do


def test_get_keeps_the_order_asked_and_round_trips_fields(
    filled: tuple[Store, list[Record]],
) -> None:
    store, records = filled
    wanted = [records[9], records[2], records[150]]
    got = store.get([wanted[0].id, "unknown", wanted[1].id, wanted[2].id])
    assert [g.id for g in got] == [w.id for w in wanted]
    for g, w in zip(got, wanted, strict=True):
        assert g.metadata() == w.metadata()
        assert g.vector is not None and w.vector is not None
        np.testing.assert_allclose(g.vector, w.vector, atol=1e-6)
    bare = store.get([wanted[0].id], with_vectors=False)
    assert bare[0].vector is None and bare[0].path == wanted[0].path


def test_knn_matches_brute_force(
    store_factory: Any, filled: tuple[Store, list[Record]], brute: Any, check_ranking: Any
) -> None:
    store, records = filled
    for seed in range(8):
        q = query(seed)
        hits = store.knn(q, 10)
        check_ranking(hits, brute(records, q), 10, exact=store_factory.exact)
        assert all(h.metadata["path"] == h.path for h in hits)
    for hit in store.knn(query(1), 3):  # a hit carries the same metadata as the record
        assert hit.metadata == store.get([hit.id])[0].metadata()
    everything = store.knn(query(99), 1000)
    assert len(everything) == 300 if store_factory.exact else len(everything) >= 285


def test_knn_recall_on_2000_vectors(
    store_factory: Any,
    records_factory: Records,
    model_info: ModelInfo,
    brute: Any,
    check_ranking: Any,
) -> None:
    store = store_factory()
    store.bind_model(model_info)
    records = records_factory(2000, seed=5)
    for start in range(0, 2000, 500):
        store.upsert(records[start : start + 500])
    store.flush()
    found = wanted = 0
    for seed in range(40):
        q = query(seed)
        truth = brute(records, q)
        hits = store.knn(q, 10)
        check_ranking(hits, truth, 10, exact=store_factory.exact, min_recall=0.7)
        found += len({h.id for h in hits} & {i for i, _ in truth[:10]})
        wanted += 10
    assert found / wanted >= (1.0 if store_factory.exact else 0.95)


def test_offset_pages_concatenate_to_the_unpaged_list(
    filled: tuple[Store, list[Record]],
) -> None:
    store, _ = filled
    for seed in range(3):
        q = query(seed)
        full = [h.id for h in store.knn(q, 30)]
        pages = [h.id for off in (0, 10, 20) for h in store.knn(q, 10, offset=off)]
        assert pages == full
        assert store.knn(q, 10, offset=400) == []


def test_min_score_cuts_the_list(
    store_factory: Any, filled: tuple[Store, list[Record]], brute: Any, check_ranking: Any
) -> None:
    store, records = filled
    q = query(4)
    truth = brute(records, q)
    threshold = truth[12][1] - 1e-6  # 13 documents score at least this
    hits = store.knn(q, 50, min_score=threshold)
    assert all(h.score >= threshold for h in hits)
    check_ranking(hits, truth[:13], 50, exact=store_factory.exact)
    assert store.knn(q, 10, min_score=1.0) == []


def test_exclude_ids_leaves_them_out(
    store_factory: Any, filled: tuple[Store, list[Record]], brute: Any, check_ranking: Any
) -> None:
    store, records = filled
    q = query(6)
    truth = brute(records, q)
    excluded = [i for i, _ in truth[:5]] + ["unknown-id"]
    hits = store.knn(q, 10, exclude_ids=excluded)
    check_ranking(hits, truth[5:], 10, exact=store_factory.exact)
    # excluding a document by its own vector: the query-by-example case
    own = records[17]
    assert own.id not in {h.id for h in store.knn(own.vector, 5, exclude_ids=[own.id])}


FILTER_CASES = [
    Filters(folder="/photos/a/b"),  # must not match /photos/a/bc
    Filters(folder="/photos/a/b/"),  # trailing slash: the same
    Filters(folder="/photos/a/bc"),
    Filters(folder="/photos/50%_sale"),  # LIKE metacharacters taken literally
    Filters(folder="/photos/été 2024"),
    Filters(folder="/photos"),
    Filters(folder="/elsewhere"),  # nothing
    Filters(formats=("png",)),
    Filters(formats=("gif", "webp")),
    Filters(min_size=5_000_000),
    Filters(max_size=2_000_000),
    Filters(min_size=3_000_000, max_size=4_000_000),
    Filters(modified_after=1_650_000_000.0),
    Filters(modified_before=1_620_000_000.0),
    Filters(modified_after=1_630_000_000.0, modified_before=1_660_000_000.0),
    Filters(folder="/photos/a", formats=("jpeg", "png"), min_size=2_000_000),
    Filters(folder="/photos/50%_sale", formats=("jpeg",), modified_after=1_610_000_000.0),
    Filters(formats=("png",), max_size=9_000_000, modified_before=1_690_000_000.0),
]


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: repr(f.to_dict()))
def test_filters_match_brute_force(
    store_factory: Any,
    filled: tuple[Store, list[Record]],
    filters: Filters,
    brute: Any,
    check_ranking: Any,
) -> None:
    store, records = filled
    assert store.count(filters) == sum(filters.matches(r) for r in records)
    for seed in range(3):
        q = query(seed)
        truth = brute(records, q, filters.matches)
        hits = store.knn(q, 10, filters=filters)
        check_ranking(hits, truth, 10, exact=store_factory.exact)
        paged = store.knn(q, 5, offset=5, filters=filters)
        assert [h.id for h in paged] == [h.id for h in hits[5:10]]


def test_folder_filter_respects_boundaries_exactly(filled: tuple[Store, list[Record]]) -> None:
    store, records = filled
    for folder in ("/photos/a/b", "/photos/50%_sale"):
        hits = store.knn(query(1), 300, filters=Filters(folder=folder))
        assert hits, folder
        assert all(h.path.startswith(folder + "/") for h in hits)
        expected = {r.id for r in records if r.path.startswith(folder + "/")}
        assert {h.id for h in hits} == expected


def test_manifest_lists_one_root(
    store_factory: Any, records_factory: Records, model_info: ModelInfo
) -> None:
    store = store_factory()
    store.bind_model(model_info)
    photos = records_factory(20, seed=1)
    scans = records_factory(7, seed=2, start=100, root="/scans")
    store_factory.write(store, photos + scans)
    got = sorted(store.manifest("/scans"), key=lambda f: f.id)
    want = sorted(
        (FileState(r.id, r.relpath, r.size, r.mtime, r.sha256) for r in scans), key=lambda f: f.id
    )
    assert got == want
    assert len(list(store.manifest("/photos"))) == 20
    assert list(store.manifest("/nowhere")) == []


def test_find_by_hash_returns_one_record_with_vector_per_known_hash(
    store_factory: Any, records_factory: Records, model_info: ModelInfo
) -> None:
    store = store_factory()
    store.bind_model(model_info)
    records = records_factory(10, seed=4)
    twin = replace(records[0], id="copy-of-0", path="/photos/copy.jpeg", relpath="copy.jpeg")
    store_factory.write(store, [*records, twin])
    found = store.find_by_hash([records[0].sha256, records[3].sha256, "f" * 64])
    assert set(found) == {records[0].sha256, records[3].sha256}
    assert found[records[0].sha256].id in {records[0].id, "copy-of-0"}
    got = found[records[3].sha256]
    assert got.id == records[3].id and got.vector is not None
    np.testing.assert_allclose(got.vector, records[3].vector, atol=1e-6)


def test_iter_records_in_id_order_and_resumable(filled: tuple[Store, list[Record]]) -> None:
    store, records = filled
    batches = list(store.iter_records(batch_size=64))
    assert [len(b) for b in batches] == [64, 64, 64, 64, 44]
    ids = [r.id for b in batches for r in b]
    assert ids == sorted(r.id for r in records)
    assert all(r.vector is not None for b in batches for r in b)
    middle = ids[99]
    rest = [r.id for b in store.iter_records(batch_size=1000, after=middle) for r in b]
    assert rest == ids[100:]


def test_stats_report_the_collection(
    store_factory: Any, filled: tuple[Store, list[Record]], model_info: ModelInfo
) -> None:
    store, records = filled
    stats = store.stats()
    assert stats.backend
    assert stats.collection == store.collection
    assert stats.documents == 300
    assert stats.dimensions == model_info.dim
    assert stats.image_bytes == sum(r.size for r in records)
    assert stats.index_bytes > 0
    assert stats.model == model_info


@pytest.mark.parametrize(
    ("k", "offset", "min_score", "field"),
    [
        (0, 0, None, "k"),
        (-1, 0, None, "k"),
        (True, 0, None, "k"),
        (2.0, 0, None, "k"),
        (10, -1, None, "offset"),
        (10, 9_995, None, "offset"),
        (10, 0, float("nan"), "min_score"),
        (10, 0, 1.5, "min_score"),
    ],
)
def test_every_backend_refuses_the_same_windows(
    filled: tuple[Store, list[Record]], k: Any, offset: Any, min_score: Any, field: str
) -> None:
    """One window rule (lookalike.store.checks) on every backend: the same QueryError field."""
    store, _ = filled
    with pytest.raises(QueryError) as err:
        store.knn(query(1), k, offset=offset, min_score=min_score)
    assert err.value.field == field


@pytest.mark.parametrize(
    "bad", [np.full(24, np.nan, dtype=np.float32), np.zeros(24, dtype=np.float32)]
)
def test_every_backend_refuses_a_query_vector_without_direction(
    filled: tuple[Store, list[Record]], bad: np.ndarray
) -> None:
    store, _ = filled
    with pytest.raises(QueryError) as err:
        store.knn(bad, 5)
    assert err.value.field == "vector"


def test_every_backend_refuses_a_query_vector_of_another_model(
    filled: tuple[Store, list[Record]],
) -> None:
    store, _ = filled
    with pytest.raises(ModelMismatchError, match="24-d vectors"):
        store.knn(query(1, dim=12), 5)


def test_pages_of_ten_walk_one_big_query_exactly_once(
    filled: tuple[Store, list[Record]],
) -> None:
    """Thirty pages of ten give every document once, in the order of one 300-hit query.

    On Elasticsearch with a quantized index this holds because the re-scored pool does
    not depend on the page: ``knn.k`` comes from a depth rung, not from offset + k. The
    walk crosses the first rung (50 hits for int8 with the default num_candidates 100)
    into the next, which holds the whole 300; the pages before it come from the same
    ranking as long as HNSW at num_candidates 100 finds the true top 50 of 300 documents."""
    store, records = filled
    for seed in (0, 7):
        q = query(seed)
        whole = [h.id for h in store.knn(q, 300)]
        assert len(whole) == len(set(whole)) >= 285
        paged = [h.id for offset in range(0, 300, 10) for h in store.knn(q, 10, offset=offset)]
        assert paged == whole
