"""The compact derived index (issue 18): a graph of sign-bit codes from 384 dimensions,
every candidate rescored from the float32 vectors in store.db (no copy beside the graph),
build checkpoints a killed build continues from, and what ``stats`` reports about it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.records import ModelInfo, Record
from lookalike.store import IndexParams, LocalStore

Records = Callable[..., list[Record]]
WIDE = 384  # the b1 codes start here (vectorindex.types.B1_MIN_DIM)
ALWAYS_MERGE = IndexParams(merge_min=0, merge_fraction=0.0)


def clustered_records(records_factory: Records, n: int, seed: int) -> list[Record]:
    """``n`` records whose 384-d vectors lie near a 16-d space, in 20 clusters, with 20 %
    noise: the low intrinsic dimension of image embeddings (bench/search.py's manifold)."""
    recs = records_factory(n, seed=seed, dim=WIDE)
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(99)
    proj = fixed.standard_normal((16, WIDE)) / 4.0
    centres = fixed.standard_normal((20, 16))
    out = []
    for i, rec in enumerate(recs):
        v = (centres[i % 20] + 0.6 * rng.standard_normal(16)) @ proj
        v += rng.standard_normal(WIDE) * 0.2 * np.linalg.norm(v) / np.sqrt(WIDE)
        out.append(Record(**{**rec.__dict__, "vector": (v / np.linalg.norm(v)).astype("f4")}))
    return out


def wide_model(model_info: ModelInfo) -> ModelInfo:
    return ModelInfo(model_info.model_id, WIDE, model_info.preprocess)


def graph_store(
    folder: Path, model_info: ModelInfo, records: list[Record], **kw: Any
) -> LocalStore:
    """A 384-d collection searched through its b1 graph from the first document, every
    change merged and saved at once, holding ``records``."""
    store = LocalStore(folder, "c", exact_threshold=0, index_params=ALWAYS_MERGE, **kw)
    store.bind_model(wide_model(model_info))
    store.upsert(records)
    store.flush()
    return store


def exact_top(records: list[Record], q: np.ndarray, k: int) -> list[tuple[str, float]]:
    scores = np.stack([np.asarray(r.vector, dtype=np.float64) for r in records]) @ q
    order = np.argsort(-scores)[:k]
    return [(records[i].id, float(scores[i])) for i in order]


def test_a_wide_collection_saves_a_b1_graph_alone_and_scores_exactly(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    records = clustered_records(records_factory, 1500, seed=3)
    folder = tmp_path / "c"
    store = graph_store(folder, model_info, records)
    assert sorted(p.suffix for p in folder.glob("ann-*")) == [".json", ".usearch"]
    (stamp,) = (json.loads(p.read_text()) for p in folder.glob("ann-*.json"))
    assert (stamp["dtype"], stamp["format"], stamp["partial_upto"]) == ("b1", 4, 0)
    # 384 bits a vector: the graph file is far smaller than the vectors (1,536 B each)
    (graph,) = folder.glob("ann-*.usearch")
    assert graph.stat().st_size < 1500 * WIDE * 4 / 3
    store.close()

    store = LocalStore(folder, "c", exact_threshold=0, index_params=ALWAYS_MERGE)
    found = wanted = 0
    for i in range(0, 1500, 75):
        q = np.asarray(records[i].vector) + 0.05 * np.random.default_rng(i).standard_normal(WIDE)
        q = (q / np.linalg.norm(q)).astype(np.float32)
        truth = dict(exact_top(records, q, 1500))
        hits = store.knn(q, 10)
        assert len(hits) == 10
        for hit in hits:  # every score is the exact cosine, whatever the codes said
            assert abs(hit.score - truth[hit.id]) < 1e-5
        found += len({h.id for h in hits} & {i for i, _ in exact_top(records, q, 10)})
        wanted += 10
    assert store.index_status().origin == "file"
    assert found / wanted >= 0.95
    store.close()


def test_b1_candidates_are_re_ranked_by_the_float_query_and_half_are_read(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo, monkeypatch: Any
) -> None:
    """The graph returns 3 codes per candidate; the float query against each code's signs
    keeps the best third, and only those are read from store.db and scored exactly."""
    from lookalike.native_libs import Index
    from lookalike.store.local.source import SqliteVectorSource
    from lookalike.store.vectorindex.ann_file import Base
    from lookalike.store.vectorindex.derived import _rerank_by_signs

    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((500, WIDE)).astype(np.float32)
    index = Index(ndim=WIDE, metric="hamming", dtype="b1", connectivity=10)
    index.add(np.arange(500), np.packbits(vecs > 0, axis=1))
    q = rng.standard_normal(WIDE).astype(np.float32)
    keys = rng.permutation(500)[:90].astype(np.int64)
    estimate = np.where(vecs[keys] > 0, 1.0, -1.0) @ q
    got = _rerank_by_signs(Base(index=index, seq=0), keys, q, 30)
    assert got.tolist() == keys[np.argsort(-estimate, kind="stable")[:30]].tolist()

    records = clustered_records(records_factory, 3000, seed=11)
    store = graph_store(tmp_path / "c", model_info, records)
    read: list[int] = []
    real = SqliteVectorSource.vectors

    def counting(self: Any, wanted: Any) -> Any:
        read.append(len(wanted))
        return real(self, wanted)

    monkeypatch.setattr(SqliteVectorSource, "vectors", counting)
    found = 0
    for i in range(0, 3000, 150):
        q = np.asarray(records[i].vector) + 0.05 * np.random.default_rng(i).standard_normal(WIDE)
        q = (q / np.linalg.norm(q)).astype(np.float32)
        hits = store.knn(q, 10)
        found += len({h.id for h in hits} & {i for i, _ in exact_top(records, q, 10)})
    params = IndexParams().resolved(WIDE)
    assert params.fetch_for(10) == 100 and params.pool_for(100) == 300
    assert read and set(read) == {100}  # 300 codes from the graph, 100 vectors read
    assert found / 200 >= 0.95
    store.close()


def test_a_narrow_collection_keeps_int8_codes(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """24 sign bits take too few values to rank by: below 384 dimensions, int8."""
    store = LocalStore(tmp_path / "c", "c", exact_threshold=0, index_params=ALWAYS_MERGE)
    store.bind_model(model_info)
    store.upsert(records_factory(200, seed=1))
    store.flush()
    (stamp,) = (json.loads(p.read_text()) for p in (tmp_path / "c").glob("ann-*.json"))
    assert stamp["dtype"] == "i8"
    store.close()


# A build over a source that stops once a checkpoint is on disk, for the parent to kill.
PAUSING_BUILD = """
import json, sys
from pathlib import Path
from lookalike.store import IndexParams, LocalStore
from lookalike.store.vectorindex.derived import DerivedIndex

folder = Path(sys.argv[1])
params = IndexParams(checkpoint_every=int(sys.argv[2]), exact_threshold=0)
store = LocalStore(folder, "c", exact_threshold=0, index_params=params)
source = store.vector_source()


def checkpointed():
    for stamp in folder.glob("ann-*.json"):
        if json.loads(stamp.read_text()).get("partial_upto"):
            return True
    return False


class Pausing:
    def __getattr__(self, name):
        return getattr(source, name)

    def iter_vectors(self, batch_size, after=0):
        for keys, vecs in source.iter_vectors(batch_size, after):
            for start in range(0, len(keys), 100):
                if checkpointed():
                    print("checkpoint", flush=True)
                    sys.stdin.readline()  # the parent kills us here
                yield keys[start : start + 100], vecs[start : start + 100]


index = DerivedIndex(folder, Pausing(), dim=store.model.dim, db_uuid=store.database.uuid,
                     params=params)
index.sync()
print("finished", flush=True)
"""


def test_a_killed_build_continues_from_its_last_checkpoint(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    records = clustered_records(records_factory, 2000, seed=4)
    folder = tmp_path / "c"
    store = LocalStore(folder, "c")  # exact below 20,000: nothing saved yet
    store.bind_model(wide_model(model_info))
    store.upsert(records)
    store.close()

    child = subprocess.Popen(
        [sys.executable, "-c", PAUSING_BUILD, str(folder), "700"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "checkpoint"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    stamps = [json.loads(p.read_text()) for p in folder.glob("ann-*.json")]
    assert [s["partial_upto"] for s in stamps] == [700]  # keys 1..700 were saved

    # meanwhile the collection changed: some checkpointed keys deleted, new ones added
    store = LocalStore(folder, "c", exact_threshold=0)
    store.delete([r.id for r in records[:50]])
    more = clustered_records(records_factory, 100, seed=5)
    more = [Record(**{**r.__dict__, "id": f"new-{r.id}", "path": f"/new{r.path}"}) for r in more]
    store.upsert(more)
    status = store.sync_index()
    assert (status.origin, status.kind) == ("resumed", "hnsw")
    live = records[50:] + more
    assert status.base_size - status.removed + status.delta_size == len(live)
    assert store.count() == len(live)
    for rec in live[::97]:
        assert store.knn(np.asarray(rec.vector), 1)[0].id == rec.id
    gone = {r.id for r in records[:50]}
    for rec in records[:50:7]:
        assert not gone & {h.id for h in store.knn(np.asarray(rec.vector), 20)}
    store.close()
    stamps = [json.loads(p.read_text()) for p in folder.glob("ann-*.json")]
    assert [s["partial_upto"] for s in stamps] == [0]  # the complete save replaced it


def test_stats_report_search_ram_disk_and_their_projections(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    records = clustered_records(records_factory, 600, seed=6)
    folder = tmp_path / "c"
    store = graph_store(folder, model_info, records)
    store.knn(np.asarray(records[0].vector), 3)
    search = store.stats().details["search"]
    (graph,) = folder.glob("ann-*.usearch")
    cells = 600 * WIDE
    assert "b1 codes" in search["structure"]
    assert search["ram_bytes"] == graph.stat().st_size  # nothing in the delta
    assert search["ram_bytes_per_dim"] == search["ram_bytes"] / cells < 1.0
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert search["disk_bytes"] == disk
    per_vector = graph.stat().st_size / 600
    assert search["scale"]["10000000"]["ram_bytes"] == round(per_vector * 10_000_000)
    assert search["scale"]["100000000"]["ram_bytes"] == round(per_vector * 100_000_000)
    assert "measured" in search["scale_basis"]
    store.close()

    small = LocalStore(tmp_path / "s", "s")
    small.bind_model(wide_model(model_info))
    small.upsert(records[:50])
    search = small.stats().details["search"]
    assert "exact search" in search["structure"] and "estimated" in search["scale_basis"]
    assert search["ram_bytes"] == 50 * WIDE * 4
    small.close()


def test_a_broad_filter_far_from_the_query_still_gets_k_hits(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """Regression: when every code had been scored but only the best m returned, the
    widening took the m as all there was and stopped with fewer hits than the filter
    matches (0 here, 7 of 10 in the contract at 512-d)."""
    from dataclasses import replace

    from lookalike.records import Filters

    rng = np.random.default_rng(3)
    q = np.zeros(WIDE, np.float32)
    q[0] = 1.0
    records = []
    for i, rec in enumerate(records_factory(300, seed=9, dim=WIDE)):
        v = rng.standard_normal(WIDE).astype(np.float32) * 0.05
        far = i % 6 == 0  # 50 documents, every one less similar than every other
        v[0] = -1.0 if far else 1.0
        v /= np.linalg.norm(v)
        records.append(replace(rec, vector=v, format="gif" if far else "png"))
    store = graph_store(tmp_path / "c", model_info, records, selective_limit=40)
    hits = store.knn(q, 10, filters=Filters(formats=("gif",)))
    gifs = sorted((float(r.vector @ q), r.id) for r in records if r.format == "gif")[::-1]
    assert [h.id for h in hits] == [i for _s, i in gifs[:10]]
    store.close()


def test_projections_agree_from_a_small_and_a_larger_collection(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """The 10M projection must not depend on how far a collection has grown: a small one
    is estimated, a larger one measured from SQLite's pages in use (its write-ahead log
    and each table's first page are not per-document cost). Dividing the files' size by
    the documents gave 2x at a few thousand documents."""
    figures = {}
    for n in (150, 3000):
        for precision in ("float32", "float16"):
            folder = tmp_path / f"{precision}-{n}"
            store = LocalStore(folder, "c", vector_precision=precision)
            store.bind_model(wide_model(model_info))
            recs = records_factory(n, seed=8, dim=WIDE)
            for at in range(0, n, 500):
                store.upsert(recs[at : at + 500])
            assert n < 2000 or (folder / "store.db-wal").stat().st_size > 0
            search = store.stats().details["search"]
            basis = "estimated" if n < 2000 else "measured"
            assert f"B per vector ({basis})" in search["scale_basis"].split("database")[1]
            figures[precision, n] = search["scale_disk_bytes_per_dim"]
            store.close()
    for precision in ("float32", "float16"):
        small, large = figures[precision, 150], figures[precision, 3000]
        assert abs(small - large) / large < 0.05, (precision, small, large)
    assert figures["float16", 3000] < 0.65 * figures["float32", 3000]


def test_lookalike_stats_prints_search_ram_disk_and_10m_100m(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    home = tmp_path / "home"
    store = LocalStore(home / "collections" / "c", "c")
    store.bind_model(wide_model(model_info))
    store.upsert(clustered_records(records_factory, 300, seed=7))
    store.close()
    env = {**os.environ, "LOOKALIKE_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "lookalike", "stats", "-c", "c"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert "exact search over a float32 matrix" in lines["search structure"]
    assert "(4.000 B/dim)" in lines["search RAM"]  # every vector in memory below 20,000
    assert "B/dim" in lines["disk, everything"]
    assert "search RAM" in lines["at 10,000,000 images"]
    assert "disk" in lines["at 100,000,000 images"]
    assert "estimated" in lines["per dimension at scale"]  # no graph saved yet
    done = subprocess.run(
        [sys.executable, "-m", "lookalike", "stats", "-c", "c", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    search = json.loads(done.stdout)["details"]["search"]
    assert set(search["scale"]) == {"10000000", "100000000"}
    assert search["ram_bytes"] == 300 * WIDE * 4
