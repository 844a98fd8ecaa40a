"""Behaviour of the embedded store that the contract cannot see: several processes,
kill -9, damaged files, the saved HNSW index and its catch-up from the change log.

Everything is real: SQLite files, usearch files, child processes (the venv's
python) killed with SIGKILL. Nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.errors import ModelMismatchError, QueryError, StoreError, StoreUnavailableError
from lookalike.records import Filters, ModelInfo, Record
from lookalike.store import IndexParams, LocalStore, list_collections, open_store
from lookalike.store.local.rows import hash_lookup_params, hash_lookup_where
from support.saved_index import replace_saved_graph

Records = Callable[..., list[Record]]
DIM = 24
NO_MERGE = IndexParams(merge_min=10**9)  # keep changes in the delta: shows catch-up
ALWAYS_MERGE = IndexParams(merge_min=0, merge_fraction=0.0)


def hnsw_store(folder: Path, params: IndexParams = NO_MERGE, **kw: Any) -> LocalStore:
    return LocalStore(folder, "c", exact_threshold=0, index_params=params, **kw)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def top_ids(records: list[Record], q: np.ndarray, k: int) -> list[str]:
    scores = np.stack([r.vector for r in records]) @ q  # type: ignore[misc]
    return [records[i].id for i in np.argsort(-scores)[:k]]


# -- child processes -------------------------------------------------------------------

CHILD_PRELUDE = """
import json, sys
from pathlib import Path
import numpy as np
from lookalike.records import ModelInfo, Record
from lookalike.store import IndexParams, LocalStore
cfg = json.loads(sys.argv[1])
params = IndexParams(merge_min=cfg["merge_min"], merge_fraction=0.0)
store = LocalStore(Path(cfg["folder"]), "c", exact_threshold=cfg["threshold"], index_params=params)
store.bind_model(ModelInfo(**cfg["model"]))
"""

# Reads one JSON command per line, answers {"ok": ...} per line.
SERVE_CHILD = (
    CHILD_PRELUDE
    + """
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "upsert":
        recs = [Record(**{**r, "vector": np.array(r["vector"], dtype=np.float32)})
                for r in cmd["records"]]
        store.upsert(recs)
    elif cmd["op"] == "delete":
        store.delete(cmd["ids"])
    elif cmd["op"] == "flush":
        store.flush()
    print(json.dumps({"ok": store.count()}), flush=True)
store.close()
"""
)

# Upserts batches of 20 forever, printing "ack N" once batch N is committed.
CRASH_CHILD = (
    CHILD_PRELUDE
    + """
def batch(i):
    v = np.random.default_rng(i).standard_normal((20, cfg["model"]["dim"])).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [Record(id=f"b{i:04d}-{j:02d}", path=f"/p/b{i}/{j}.jpg", root="/p",
                   relpath=f"b{i}/{j}.jpg", format="jpeg", size=100 + j, mtime=1.0 + i,
                   sha256=f"{i}-{j}", width=8, height=8, vector=v[j]) for j in range(20)]
i = cfg["start"]
while True:
    store.upsert(batch(i))
    print(f"ack {i}", flush=True)
    if cfg["flush"]:
        store.flush()
    i += 1
"""
)


def crash_batch(i: int) -> list[tuple[str, np.ndarray]]:
    """The (id, vector) pairs CRASH_CHILD writes as batch ``i``."""
    v = np.random.default_rng(i).standard_normal((20, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [(f"b{i:04d}-{j:02d}", v[j]) for j in range(20)]


class Child:
    """A child python process with line-based stdout read through a thread (bounded waits)."""

    def __init__(self, script: str, cfg: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._pumping = threading.Thread(target=self._pump, daemon=True)
        self._pumping.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("")

    def line(self, timeout: float = 120.0) -> str:
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("child process stopped answering") from None
        if got == "":
            assert self.proc.stderr is not None
            raise AssertionError(f"child process died: {self.proc.stderr.read()[-3000:]}")
        return got

    def send(self, cmd: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.line())["ok"]

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(timeout=120)
        # the pump reads to the end of the child's output first: closing its stream under
        # it would raise in that thread ("I/O operation on closed file")
        self._pumping.join(timeout=120)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def child_cfg(folder: Path, model: ModelInfo, **kw: Any) -> dict[str, Any]:
    return {"folder": str(folder), "model": model.to_dict(), **kw}


def as_json(records: list[Record]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        fields = {k: v for k, v in r.metadata().items() if k != "folder"}
        out.append({**fields, "id": r.id, "vector": np.asarray(r.vector).tolist()})
    return out


@pytest.mark.parametrize(
    ("threshold", "params"),
    [(20_000, IndexParams()), (0, NO_MERGE), (0, ALWAYS_MERGE)],
    ids=["exact", "hnsw-delta", "hnsw-merged"],
)
def test_searcher_sees_another_process_writes_without_reopening(
    tmp_path: Path,
    records_factory: Records,
    model_info: ModelInfo,
    threshold: int,
    params: IndexParams,
) -> None:
    folder = tmp_path / "c"
    searcher = LocalStore(folder, "c", exact_threshold=threshold, index_params=params)
    searcher.bind_model(model_info)
    # The writer merges and saves the HNSW on every flush: the searcher must follow
    # its new files as well as the change log.
    writer = Child(SERVE_CHILD, child_cfg(folder, model_info, threshold=threshold, merge_min=0))
    try:
        first = records_factory(100, seed=1)
        assert writer.send({"op": "upsert", "records": as_json(first)}) == 100
        assert writer.send({"op": "flush"}) == 100
        q = first[7].vector
        assert searcher.knn(q, 1)[0].id == first[7].id

        second = records_factory(30, seed=2, start=1000)
        writer.send({"op": "upsert", "records": as_json(second)})
        writer.send({"op": "flush"})
        for rec in second[:5]:
            hit = searcher.knn(rec.vector, 1)[0]
            assert hit.id == rec.id and hit.score == pytest.approx(1.0, abs=1e-4)

        writer.send({"op": "delete", "ids": [first[7].id, second[0].id]})
        assert first[7].id not in {h.id for h in searcher.knn(q, 10)}
        assert searcher.count() == 128
        everything = first + second
        alive = [r for r in everything if r.id not in (first[7].id, second[0].id)]
        for seed in range(5):
            assert [h.id for h in searcher.knn(unit(seed), 5)] == top_ids(alive, unit(seed), 5)
        status = searcher.index_status()
        assert status.kind == ("exact" if threshold else "hnsw")
        assert status.full_builds == 0  # caught up from the log and the writer's files
        if threshold == 0:
            assert status.loaded_files >= 2  # followed the files the writer saved
    finally:
        writer.close()
        searcher.close()


@pytest.mark.slow
def test_two_writer_processes_at_once_lose_nothing(tmp_path: Path, model_info: ModelInfo) -> None:
    folder = tmp_path / "c"
    cfgs = [child_cfg(folder, model_info, threshold=20_000, merge_min=0, flush=False)]
    store = LocalStore(folder, "c")
    store.bind_model(model_info)
    children = [Child(CRASH_CHILD, {**cfgs[0], "start": start}) for start in (0, 5000)]
    try:
        for child in children:
            while int(child.line().split()[1]) % 5000 < 15:
                pass
    finally:
        for child in children:
            child.proc.kill()
            child.proc.wait(timeout=60)
            child.close()
    ids = {r.id for batch in store.iter_records() for r in batch}
    assert len(ids) == store.count() and len(ids) % 20 == 0
    for start in (0, 5000):
        assert all(i in ids for n in range(start, start + 15) for i, _ in crash_batch(n))
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize(("acks", "flush"), [(2, True), (6, True), (11, True), (8, False)], ids=str)
def test_kill_9_mid_write_loses_nothing_committed(
    tmp_path: Path, model_info: ModelInfo, acks: int, flush: bool
) -> None:
    folder = tmp_path / "c"
    cfg = child_cfg(folder, model_info, threshold=0, merge_min=0, flush=flush, start=0)
    child = Child(CRASH_CHILD, cfg)
    acked = -1
    try:
        while acked < acks:
            acked = int(child.line().split()[1])
    finally:
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait(timeout=60)
    # acknowledgements the child printed before it died but we had not read yet
    while line := child.lines.get(timeout=60):
        acked = int(line.split()[1])
    child.close()

    with sqlite3.connect(folder / "store.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n_docs, n_ids = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM documents"
        ).fetchone()
    conn.close()
    assert n_docs == n_ids
    assert n_docs in (20 * (acked + 1), 20 * (acked + 2))  # the last batch may be unacknowledged

    store = hnsw_store(folder)
    expected = dict(kv for b in range(n_docs // 20) for kv in crash_batch(b))
    assert {r.id for batch in store.iter_records() for r in batch} == set(expected)
    ids, vecs = list(expected), np.stack(list(expected.values()))
    for seed in range(5):
        q = unit(seed)
        hits = store.knn(q, 10)
        truth = [ids[i] for i in np.argsort(-(vecs @ q))[:10]]
        assert len(set(truth) & {h.id for h in hits}) >= 9
        for h in hits:
            assert h.score == pytest.approx(float(expected[h.id] @ q), abs=1e-4)
    status = store.index_status()
    assert status.kind == "hnsw" and status.base_size - status.removed + status.delta_size == n_docs

    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []  # debris cleared
    stamps = {p.stem for p in folder.glob("ann-*.json")}
    assert all(p.stem in stamps for p in folder.glob("ann-*.usearch"))
    store.close()

    # resume writing where the killed process stopped
    store = hnsw_store(folder, ALWAYS_MERGE)
    more = [
        Record(i, f"/p/r/{i}.jpg", "/p", f"r/{i}.jpg", "jpeg", 1, 1.0, i, 8, 8, v)
        for i, v in crash_batch(9999)
    ]
    store.upsert(more)
    store.flush()
    assert store.count() == n_docs + 20
    assert store.knn(more[3].vector, 1)[0].id == more[3].id
    assert len(list(folder.glob("ann-*.usearch"))) == len(list(folder.glob("ann-*.json"))) == 1
    store.close()


def make_saved_hnsw(folder: Path, records: list[Record], model: ModelInfo) -> None:
    store = hnsw_store(folder, ALWAYS_MERGE)
    store.bind_model(model)
    store.upsert(records)
    store.flush()
    assert store.index_status().base_file is not None
    store.close()


def corrupt(folder: Path, how: str) -> None:
    (index_file,) = folder.glob("ann-*.usearch")
    (stamp_file,) = folder.glob("ann-*.json")
    data = index_file.read_bytes()
    if how == "codes-changed":  # a valid file of other vectors: caught by the sampled check
        rows = sqlite3.connect(folder / "store.db").execute("SELECT key, vector FROM vectors")
        keys, blobs = zip(*rows.fetchall(), strict=True)
        vectors = -np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(keys), -1)
        replace_saved_graph(folder, np.array(keys), vectors)
    elif how == "stamp-old-format":  # a save of the previous version: rebuilt, then removed
        stamp = json.loads(stamp_file.read_text())
        stamp_file.write_text(json.dumps({**stamp, "format": 3, "rows": 200}))
        (folder / f"{stamp_file.stem}.f32").write_bytes(b"\0" * 16)
    if how == "garbage":
        index_file.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "flipped-bytes":
        index_file.write_bytes(data[:64] + bytes(b ^ 0x5A for b in data[64:200]) + data[200:])
    elif how == "truncated":
        index_file.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        index_file.write_bytes(b"")
    elif how == "index-missing":
        index_file.unlink()
    elif how == "stamp-missing":
        stamp_file.unlink()
    elif how == "stamp-garbage":
        stamp_file.write_bytes(b"\x00{not json")
    elif how == "stamp-ahead":
        stamp = json.loads(stamp_file.read_text())
        stamp_file.write_text(json.dumps({**stamp, "seq": 10**9}))
    elif how == "stamp-other-db":
        stamp = json.loads(stamp_file.read_text())
        stamp_file.write_text(json.dumps({**stamp, "db_uuid": "0" * 32}))


@pytest.mark.parametrize(
    "how",
    [
        "garbage",
        "flipped-bytes",
        "truncated",
        "empty",
        "index-missing",
        "stamp-missing",
        "stamp-garbage",
        "stamp-ahead",
        "stamp-other-db",
        "stamp-old-format",
        "codes-changed",
    ],
)
def test_damaged_index_file_is_rebuilt_from_sqlite(
    tmp_path: Path,
    records_factory: Records,
    model_info: ModelInfo,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "c"
    records = records_factory(200, seed=8)
    make_saved_hnsw(folder, records, model_info)
    corrupt(folder, how)

    caplog.set_level(logging.INFO, logger="lookalike.store")
    store = hnsw_store(folder)
    for seed in range(5):
        assert [h.id for h in store.knn(unit(seed), 5)] == top_ids(records, unit(seed), 5)
    status = store.index_status()
    assert (status.origin, status.full_builds) == ("rebuilt", 1)
    assert "building the vector index" in caplog.text
    assert status.base_file is not None  # the rebuilt index was saved again
    for suffix in ("usearch", "json"):
        assert len(list(folder.glob(f"ann-*.{suffix}"))) == 1, suffix
    assert sorted(p.suffix for p in folder.glob("ann-*")) == [".json", ".usearch"]
    store.close()

    again = hnsw_store(folder)
    again.knn(unit(0), 1)
    assert again.index_status().origin == "file"
    again.close()


def test_saved_index_is_loaded_then_caught_up_from_the_change_log(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    folder = tmp_path / "c"
    records = records_factory(300, seed=4)
    make_saved_hnsw(folder, records, model_info)

    writer = hnsw_store(folder)  # changes that stay in the log (no merge, no save)
    extra = records_factory(5, seed=5, start=900)
    writer.upsert(extra)
    writer.delete([records[0].id, records[1].id])
    writer.upsert([replace(records[2], vector=extra[0].vector * -1)])
    writer.close()

    store = hnsw_store(folder)
    hit = store.knn(extra[3].vector, 1)[0]
    assert hit.id == extra[3].id
    status = store.index_status()
    assert status.origin == "file" and status.full_builds == 0
    assert status.applied_changes == 5 + 2 + 2  # upserts, deletes, replace (delete + add)
    assert (status.delta_size, status.removed) == (6, 3)
    assert records[0].id not in {h.id for h in store.knn(records[0].vector, 10)}
    replaced = store.knn(-extra[0].vector, 1)[0]
    assert replaced.id == records[2].id and replaced.score == pytest.approx(1.0, abs=1e-4)

    # a flush with a small merge limit folds the delta into a new saved file
    store.close()
    merged = hnsw_store(folder, ALWAYS_MERGE)
    merged.flush()
    status = merged.index_status()
    assert (status.origin, status.delta_size, status.removed) == ("merged", 0, 0)
    assert status.base_size == 303
    merged.close()


def test_collection_switches_from_exact_to_hnsw_past_the_threshold(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    store = LocalStore(tmp_path / "c", "c", exact_threshold=100)
    store.bind_model(model_info)
    records = records_factory(250, seed=6)
    store.upsert(records[:60])
    store.knn(unit(0), 3)
    assert store.index_status().kind == "exact"
    assert store.stats().details["index"] == "exact"
    store.upsert(records[60:])
    hits = store.knn(unit(1), 5)
    assert [h.id for h in hits] == top_ids(records, unit(1), 5)
    status = store.index_status()
    assert (status.kind, status.origin) == ("hnsw", "built")
    assert store.stats().details["ann_bytes"] > 0
    store.close()


def test_threads_search_while_one_writes(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    store = hnsw_store(tmp_path / "c", IndexParams(merge_min=50))
    store.bind_model(model_info)
    records = records_factory(400, seed=9)
    store.upsert(records[:100])

    def write() -> int:
        for start in range(100, 400, 25):
            store.upsert(records[start : start + 25])
        return 0

    def search(seed: int) -> int:
        for i in range(30):
            hits = store.knn(unit(seed * 100 + i), 5, filters=Filters(formats=("png",)))
            assert all(h.metadata["format"] == "png" for h in hits)
        return len(hits)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(write)] + [pool.submit(search, s) for s in range(3)]
        assert all(f.result(timeout=120) == 5 for f in futures[1:])
        futures[0].result(timeout=120)
    assert store.count() == 400
    assert [h.id for h in store.knn(unit(7), 5)] == top_ids(records, unit(7), 5)
    store.close()


def test_not_a_database_is_refused_with_the_file_named(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "store.db").write_bytes(b"this is not an SQLite file at all\n" * 200)
    with pytest.raises(StoreUnavailableError) as err:
        LocalStore(folder, "c")
    assert str(folder / "store.db") in str(err.value)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    with sqlite3.connect(folder / "store.db") as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")
    conn.close()
    with pytest.raises(StoreUnavailableError, match="not a lookalike collection"):
        LocalStore(folder, "c")


def test_damaged_database_raises_store_unavailable(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    folder = tmp_path / "c"
    store = LocalStore(folder, "c")
    store.bind_model(model_info)
    store.upsert(records_factory(400, seed=1))
    store.close()
    db = folder / "store.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    with pytest.raises(StoreUnavailableError, match="store.db"):
        broken = LocalStore(folder, "c")
        list(broken.iter_records())
        broken.knn(unit(0), 5)


def test_newer_schema_is_refused(tmp_path: Path, model_info: ModelInfo) -> None:
    folder = tmp_path / "c"
    LocalStore(folder, "c").close()
    with sqlite3.connect(folder / "store.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreUnavailableError, match="newer lookalike"):
        LocalStore(folder, "c")


def test_a_schema_4_collection_gains_the_hash_head_index_that_hash_lookups_use(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """Migration 5 swaps the full-hash index for one on its first 16 hex digits; the
    lookups use it and still compare the whole hash (a shared head is not a match)."""
    folder = tmp_path / "c"
    store = LocalStore(folder, "c")
    store.bind_model(model_info)
    records = records_factory(40, seed=5)
    twin_head = replace(records[1], id="same-head", sha256=records[0].sha256[:16] + "e" * 48)
    store.upsert([*records, twin_head])
    store.close()
    with sqlite3.connect(folder / "store.db") as conn:  # back to the previous schema
        conn.execute("DROP INDEX documents_sha256_head")
        conn.execute("CREATE INDEX documents_sha256 ON documents(sha256)")
        conn.execute("PRAGMA user_version = 4")
    conn.close()

    # where it cannot be migrated (a read-only folder) a schema 4 collection still reads
    reader = LocalStore(folder, "c", readonly=True)
    assert set(reader.find_by_hash([records[3].sha256])) == {records[3].sha256}
    assert reader.find_by_hash([records[0].sha256[:16] + "0" * 48]) == {}
    reader.close()
    with sqlite3.connect(folder / "store.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    conn.close()

    store = LocalStore(folder, "c")
    with sqlite3.connect(folder / "store.db") as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "documents_sha256_head" in names and "documents_sha256" not in names
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
    conn.close()
    found = store.find_by_hash([records[0].sha256, records[7].sha256, records[0].sha256[:16]])
    assert set(found) == {records[0].sha256, records[7].sha256}
    assert found[records[0].sha256].id == records[0].id
    assert store.find_by_hash([twin_head.sha256])[twin_head.sha256].id == "same-head"
    conn = store._db.conn()
    for hashes in (["0" * 64], ["0" * 64, "1" * 64]):  # one hash is a special case for SQLite
        where = hash_lookup_where(len(hashes))
        sql = f"EXPLAIN QUERY PLAN SELECT d.key FROM documents d WHERE {where}"
        plan = " ".join(str(r[-1]) for r in conn.execute(sql, hash_lookup_params(hashes)))
        assert "documents_sha256_head" in plan, plan
    store.close()


def test_the_change_log_names_deleted_documents_only(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """An upsert's id lives on its documents row; the log keeps ids of deletions only."""
    folder = tmp_path / "c"
    store = LocalStore(folder, "c")
    store.bind_model(model_info)
    records = records_factory(5, seed=6)
    store.upsert(records)
    store.delete([records[2].id])
    store.close()
    with sqlite3.connect(folder / "store.db") as conn:
        rows = conn.execute("SELECT op, id FROM changes ORDER BY seq").fetchall()
    conn.close()
    assert [op for op, _ in rows] == ["U"] * 5 + ["D"]
    assert all(bytes(i) == b"" for op, i in rows if op == "U")
    assert bytes(rows[-1][1]).decode() == records[2].id


def test_paths_that_are_not_utf8_round_trip(tmp_path: Path, model_info: ModelInfo) -> None:
    store = LocalStore(tmp_path / "c", "c")
    store.bind_model(model_info)
    odd_folder = os.fsdecode(b"/photos/caf\xe9")  # Latin-1 bytes in a file name
    rec = Record(
        id=os.fsdecode(b"caf\xe9/x.jpg"),
        path=odd_folder + "/x.jpg",
        root="/photos",
        relpath=os.fsdecode(b"caf\xe9/x.jpg"),
        format="jpeg",
        size=10,
        mtime=1.0,
        sha256="ab",
        width=1,
        height=1,
        vector=unit(0),
    )
    store.upsert([rec])
    (back,) = store.get([rec.id])
    assert (back.id, back.path, back.relpath) == (rec.id, rec.path, rec.relpath)
    assert os.fsencode(back.path) == b"/photos/caf\xe9/x.jpg"
    assert [h.id for h in store.knn(unit(0), 1, filters=Filters(folder=odd_folder))] == [rec.id]
    assert [f.id for f in store.manifest("/photos")] == [rec.id]
    store.close()


def test_bad_queries_raise_typed_errors(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    store = LocalStore(tmp_path / "c", "c")
    store.bind_model(model_info)
    store.upsert(records_factory(5))
    with pytest.raises(ModelMismatchError):
        store.knn(np.ones(DIM + 1, dtype=np.float32), 3)
    for bad in (np.full(DIM, np.nan), np.zeros(DIM), np.ones((2, DIM)), "text"):
        with pytest.raises(QueryError):
            store.knn(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        store.knn(unit(0), -1)
    with pytest.raises(QueryError):
        store.knn(unit(0), 3, offset=-2)
    with pytest.raises(QueryError):
        store.knn(unit(0), 3, filters=Filters(min_size=float("nan")))  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        store.knn(unit(0), 0)  # one rule on every backend: k from 1 (store.checks)
    not_unit = unit(3) * 5.0  # scores stay cosines
    assert store.knn(not_unit, 1)[0].score == pytest.approx(store.knn(unit(3), 1)[0].score)


def test_bad_records_raise_typed_errors(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    store = LocalStore(tmp_path / "c", "c")
    store.bind_model(model_info)
    good = records_factory(3)
    for bad in (
        replace(good[0], id=""),
        replace(good[0], vector=None),
        replace(good[0], vector=np.zeros(DIM, dtype=np.float32)),
        replace(good[0], size="big"),  # type: ignore[arg-type]
        replace(good[0], mtime=float("inf")),
        replace(good[0], vector=np.ones((2, DIM), dtype=np.float32)),
    ):
        with pytest.raises(StoreError):
            store.upsert([good[1], bad])
    assert store.count() == 0
    # a vector that is not unit length is normalised, so scores stay cosines
    store.upsert([replace(good[0], vector=good[0].vector * 3)])  # type: ignore[operator]
    assert store.knn(good[0].vector, 1)[0].score == pytest.approx(1.0, abs=1e-5)  # type: ignore[arg-type]


def test_closed_store_refuses_work_and_close_is_idempotent(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c", "c")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count()


def test_open_store_list_collections_and_drop(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    settings = Settings(home=tmp_path, collection="holiday")
    assert list_collections(settings) == []
    store = open_store(settings, create=True)
    assert isinstance(store, LocalStore) and store.folder == settings.collection_dir
    store.bind_model(model_info)
    store.upsert(records_factory(10))
    (settings.home / "collections" / "not-a-collection").mkdir()
    open_store(Settings(home=tmp_path, collection="work"), create=True).close()
    assert list_collections(settings) == ["holiday", "work"]
    store.drop()
    assert not settings.collection_dir.exists()
    assert list_collections(settings) == ["work"]


def test_stats_leave_the_thumbnail_cache_out(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    store = hnsw_store(tmp_path / "c", ALWAYS_MERGE)
    store.bind_model(model_info)
    store.upsert(records_factory(50))
    store.flush()
    before = store.stats()
    thumbs = tmp_path / "c" / "thumbs" / "ab"
    thumbs.mkdir(parents=True)
    (thumbs / "x.webp").write_bytes(b"x" * 5000)
    after = store.stats()
    assert after.index_bytes == before.index_bytes
    assert after.details["thumbs_bytes"] == 5000
    assert after.details["ann_bytes"] > 0 and after.details["db_bytes"] > 0
    assert after.details["index"] == "hnsw"
    store.close()


def test_local_store_implements_the_protocol(tmp_path: Path) -> None:
    from lookalike.store import Store

    with LocalStore(tmp_path / "c", "c") as store:
        assert isinstance(store, Store)


def test_large_batches_and_result_lists(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """More ids than SQLite takes parameters per statement chunk, in every direction."""
    store = LocalStore(tmp_path / "c", "c")
    store.bind_model(model_info)
    records = records_factory(2000, seed=12)
    store.upsert(records)
    store.upsert([replace(r, width=1) for r in records])  # replaces 2000 existing ids
    assert store.count() == 2000
    assert len(store.get([r.id for r in records])) == 2000
    assert len(store.find_by_hash([r.sha256 for r in records])) == 2000
    hits = store.knn(unit(0), 1500, exclude_ids=[r.id for r in records[:1000]])
    assert len(hits) == 1000 and all(h.metadata["width"] == 1 for h in hits)
    store.delete([r.id for r in records])
    assert store.count() == 0 and store.knn(unit(0), 5) == []
    store.close()


@pytest.mark.parametrize("shape", ["db-is-a-folder", "folder-is-a-file", "wal-is-garbage"])
def test_hostile_collection_folders(
    tmp_path: Path, shape: str, records_factory: Records, model_info: ModelInfo
) -> None:
    folder = tmp_path / "c"
    if shape == "db-is-a-folder":
        (folder / "store.db").mkdir(parents=True)
    elif shape == "folder-is-a-file":
        folder.write_bytes(b"not a folder")
    else:  # a WAL with random bytes: SQLite checks frame checksums and ignores it
        folder.mkdir()
        (folder / "store.db-wal").write_bytes(np.random.default_rng(0).bytes(40_000))
        store = LocalStore(folder, "c")
        store.bind_model(model_info)
        store.upsert(records_factory(3))
        assert store.count() == 3
        store.close()
        return
    with pytest.raises(StoreUnavailableError, match=str(folder)):
        LocalStore(folder, "c")


def test_filter_rare_near_the_query_finds_the_exact_best_of_the_filtered_documents(
    tmp_path: Path, model_info: ModelInfo, records_factory: Records
) -> None:
    """A filter that matches many documents overall but none near the query: the widening
    search must not stop early nor walk forever; its hits are the exact best of the
    matching documents (here: the one folder lying on the far side of the query)."""
    dim = model_info.dim
    rng = np.random.default_rng(7)
    near, far = unit(1)[:dim], -unit(1)[:dim]
    recs = records_factory(1200, seed=3, dim=dim)
    vectors = []
    for i in range(len(recs)):
        centre = far if i % 6 == 0 else near  # 200 far documents, the rest close to `near`
        v = centre + rng.standard_normal(dim).astype(np.float32) * 0.3
        vectors.append((v / np.linalg.norm(v)).astype(np.float32))
    recs = [
        replace(r, vector=v, path=f"/far/{r.relpath}" if i % 6 == 0 else r.path)
        for i, (r, v) in enumerate(zip(recs, vectors, strict=True))
    ]
    store = hnsw_store(tmp_path / "c", ALWAYS_MERGE, selective_limit=40)
    store.bind_model(model_info)
    store.upsert(recs)
    store.flush()
    far_recs = [r for r in recs if r.path.startswith("/far/")]
    excluded = top_ids(far_recs, near, 1)[0]
    for folder in ("/far", "/far/"):
        hits = store.knn(near, 7, filters=Filters(folder=folder), exclude_ids=[excluded])
        expected = [i for i in top_ids(far_recs, near, 8) if i != excluded][:7]
        assert [h.id for h in hits] == expected
    store.close()
