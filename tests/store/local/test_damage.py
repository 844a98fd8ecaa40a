"""A damaged embedded store must never answer silently wrong (issue 10, defects 2, 3, 7).

Everything is real: the SQLite file on disk is damaged byte by byte (a flipped bit in a
vector BLOB, garbage over a documents page, a page that loses rows, a zero-length file),
saved HNSW files are damaged the same way, and a read-only folder is a real read-only
bind mount in a private mount namespace. Nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.errors import StoreDamagedError, StoreError, StoreUnavailableError
from lookalike.records import ModelInfo, Record
from lookalike.store import IndexParams, LocalStore, list_collections, open_store
from lookalike.store.local.db import MIGRATIONS
from support.saved_index import replace_saved_graph

Records = Callable[..., list[Record]]
ALWAYS_MERGE = IndexParams(merge_min=0, merge_fraction=0.0)


def filled(folder: Path, model: ModelInfo, records: list[Record], **kw: object) -> LocalStore:
    store = LocalStore(folder, folder.name, **kw)  # type: ignore[arg-type]
    store.bind_model(model)
    store.upsert(records)
    store.flush()
    return store


def flip_on_disk(path: Path, needle: bytes) -> None:
    """Flip one bit in the middle of the only occurrence of ``needle`` in the file."""
    data = path.read_bytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, "the bytes must occur exactly once"
    with open(path, "r+b") as fh:
        fh.seek(at + len(needle) // 2)
        byte = fh.read(1)[0]
        fh.seek(at + len(needle) // 2)
        fh.write(bytes([byte ^ 0x04]))


def vector_bytes(record: Record) -> bytes:
    return np.asarray(record.vector, dtype="<f4").tobytes()


def documents_leaf_pages(db: Path) -> tuple[int, list[int]]:
    con = sqlite3.connect(db)
    try:
        size = int(con.execute("PRAGMA page_size").fetchone()[0])
        pages = con.execute(
            "SELECT pageno FROM dbstat WHERE name = 'documents' AND pagetype = 'leaf' "
            "ORDER BY pageno"
        ).fetchall()
    finally:
        con.close()
    return size, [int(p[0]) for p in pages]


# -- defect 2: a flipped bit inside a vector BLOB ----------------------------------------


@pytest.mark.parametrize("hnsw", [False, True], ids=["exact", "hnsw"])
def test_a_flipped_vector_blob_is_an_error_not_a_wrong_ranking(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo, hnsw: bool
) -> None:
    records = records_factory(60, seed=5)
    kw: dict[str, object] = {"exact_threshold": 0, "index_params": ALWAYS_MERGE} if hnsw else {}
    folder = tmp_path / "photos"
    filled(folder, model_info, records, **kw).close()
    for f in folder.glob("ann-*"):
        f.unlink()  # the HNSW is then built from the damaged database, not loaded
    victim = records[17]
    flip_on_disk(folder / "store.db", vector_bytes(victim))
    assert sqlite3.connect(folder / "store.db").execute("PRAGMA integrity_check").fetchone() == (
        "ok",
    )  # SQLite itself sees nothing wrong

    store = LocalStore(folder, "photos", **kw)  # type: ignore[arg-type]
    try:
        with pytest.raises(StoreDamagedError, match=r"'photos'.*check --repair -c photos"):
            store.knn(np.asarray(victim.vector), 5)
        with pytest.raises(StoreDamagedError, match="fails its checksum"):
            store.get([victim.id])
        assert store.get([records[0].id])[0].vector is not None  # the others still read
        with pytest.raises(StoreDamagedError):
            store.find_by_hash([victim.sha256])
        found = store.check()
        assert not found.ok
        assert [d.id for d in found.damaged] == [victim.id]
        assert "checksum" in found.damaged[0].reason
    finally:
        store.close()


def test_a_saved_graph_whose_codes_differ_outside_the_sampled_keys_is_caught(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """The saved graph holds codes only: a wrong code costs recall, never a wrong score
    (candidates are rescored from the database), and ``check`` finds it by comparing
    every code with the database; ``--repair`` rebuilds the graph."""
    records = records_factory(200, seed=8)
    folder = tmp_path / "c"
    filled(folder, model_info, records, exact_threshold=0, index_params=ALWAYS_MERGE).close()
    con = sqlite3.connect(folder / "store.db")
    keys, blobs = zip(*con.execute("SELECT key, vector FROM vectors ORDER BY key"), strict=True)
    con.close()
    vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(keys), -1).copy()
    sampled = set(np.unique(np.linspace(0, 199, 16).astype(np.int64)).tolist())
    row = next(i for i in range(100, 200) if i not in sampled)  # keys are 1..200 in order
    vectors[row] = -vectors[row]
    replace_saved_graph(folder, np.array(keys), vectors)

    store = LocalStore(folder, "c", exact_threshold=0, index_params=ALWAYS_MERGE)
    try:
        q = unit_of(vectors[(row + 1) % 200])
        for hit in store.knn(q, 5):  # exact scores whatever the graph says
            (rec,) = store.get([hit.id])
            assert abs(hit.score - float(np.asarray(rec.vector) @ q)) < 1e-5
        assert store.index_status().origin == "file"  # the sampled keys passed
        found = store.check()
        assert any("codes differ" in p for p in found.problems) and not found.damaged
        repaired = store.check(repair=True)
        assert any("rebuilt" in line for line in repaired.repaired)
        assert store.check().ok
        victim = next(r for r in records if r.vector is not None and np.allclose(
            r.vector, -vectors[row]))  # fmt: skip
        assert store.knn(np.asarray(victim.vector), 1)[0].id == victim.id
    finally:
        store.close()


def unit_of(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


# -- defect 2: garbage over a page of the documents table --------------------------------


def test_garbage_over_a_documents_page_is_an_error_never_missing_hits(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    records = records_factory(300, seed=2)
    folder = tmp_path / "c"
    filled(folder, model_info, records).close()
    page_size, leaves = documents_leaf_pages(folder / "store.db")
    with open(folder / "store.db", "r+b") as fh:
        fh.seek((leaves[1] - 1) * page_size + 4096)
        fh.write(np.random.default_rng(0).bytes(4096))

    with pytest.raises(StoreError):
        store = LocalStore(folder, "c")
        try:
            for rec in records:
                hits = store.knn(np.asarray(rec.vector), 1)
                assert hits and hits[0].id == rec.id  # never reached: damage is an error
        finally:
            store.close()


def test_a_page_that_silently_loses_rows_fails_the_search_and_the_check(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """The quietest damage: a leaf page's cell count shrinks, so SQLite returns fewer rows
    without any error. Searches must not drop those images without a word."""
    records = records_factory(300, seed=4)
    folder = tmp_path / "c"
    filled(folder, model_info, records).close()
    page_size, leaves = documents_leaf_pages(folder / "store.db")
    header = (leaves[1] - 1) * page_size
    with open(folder / "store.db", "r+b") as fh:
        fh.seek(header + 3)  # the b-tree page header's cell count (big-endian u16)
        cells = int.from_bytes(fh.read(2), "big")
        fh.seek(header + 3)
        fh.write((cells - 2).to_bytes(2, "big"))
    con = sqlite3.connect(folder / "store.db")
    readable = {bytes(r[0]).decode() for r in con.execute("SELECT id FROM documents NOT INDEXED")}
    con.close()
    assert len(readable) == 298  # SQLite itself reads on without complaint
    lost = next(r for r in records if r.id not in readable)

    store = LocalStore(folder, "c")
    try:
        with pytest.raises(StoreDamagedError, match="check --repair"):
            store.knn(np.asarray(lost.vector), 5)
        found = store.check()
        assert not found.ok
        assert any("integrity" in p for p in found.problems)
    finally:
        store.close()


# -- defect 3: an empty or unreadable store.db is an error, never an empty collection -----


def test_a_zero_length_database_is_an_error_not_an_empty_collection(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    settings = Settings(home=tmp_path, collection="holiday")
    filled(settings.collection_dir, model_info, records_factory(5)).close()
    db = settings.collection_dir / "store.db"
    db.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    assert list_collections(settings) == ["holiday"]
    for create in (False, True):
        with pytest.raises(StoreUnavailableError, match=r"store\.db is empty \(0 bytes\)") as err:
            open_store(settings, create=create)
        assert str(db) in str(err.value) and "drop -c holiday" in str(err.value)
    assert db.stat().st_size == 0  # nothing was written into it either


def test_a_database_with_a_garbage_header_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    LocalStore(folder, "c").close()
    (folder / "store.db").write_bytes(b"not a database at all" * 1000)
    with pytest.raises(StoreUnavailableError, match="not a readable lookalike collection"):
        LocalStore(folder, "c")


def test_a_new_collection_never_leaves_an_empty_database(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    LocalStore(folder, "c").close()
    assert (folder / "store.db").stat().st_size > 0
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


# -- migration: existing collections get their checksums --------------------------------


def test_a_schema_1_collection_gets_vector_checksums(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    con = sqlite3.connect(folder / "store.db", isolation_level=None)
    MIGRATIONS[0][1](con)
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO meta VALUES ('model', ?)", (json_model(model_info),))
    records = records_factory(30)
    for key, r in enumerate(records, start=1):
        con.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (key, r.id.encode(), r.path.encode(), r.root.encode(), r.relpath.encode(),
             r.format, r.size, r.mtime, r.sha256, r.width, r.height),
        )  # fmt: skip
        con.execute("INSERT INTO vectors VALUES (?, ?)", (key, vector_bytes(r)))
    con.close()

    with LocalStore(folder, "old") as store:
        assert store.stats().details["schema_version"] == len(MIGRATIONS)
        assert store.check().ok
        assert store.knn(np.asarray(records[3].vector), 1)[0].id == records[3].id
    flip_on_disk(folder / "store.db", vector_bytes(records[3]))
    with LocalStore(folder, "old") as store, pytest.raises(StoreDamagedError):
        store.get([records[3].id])


def json_model(model: ModelInfo) -> str:
    import json

    return json.dumps(model.to_dict())


# -- defect 7: a read-only collection folder can be searched -----------------------------


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_readonly_opens_write_nothing(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """Opened read-only (what a folder this user cannot write gets), searching HNSW-sized
    data that has no saved index yet writes nothing of ours: the database is unchanged and
    there is no lock file, no index save. (SQLite's ``mode=ro`` may still make its -wal and
    -shm coordination files where it can, to follow a writer with more rights; the bind-
    mount test below shows that on a read-only mount nothing at all is written.)"""
    records = records_factory(80, seed=9)
    folder = tmp_path / "c"
    filled(folder, model_info, records).close()  # exact-sized: no saved HNSW files
    before = folder_state(folder)
    store = LocalStore(folder, "c", exact_threshold=0, index_params=ALWAYS_MERGE, readonly=True)
    try:
        assert store.readonly
        assert store.knn(np.asarray(records[5].vector), 1)[0].id == records[5].id
        assert store.index_status().kind == "hnsw"
        store.flush()
        with pytest.raises(StoreUnavailableError, match="read-only"):
            store.upsert(records[:1])
        with pytest.raises(StoreUnavailableError, match="read-only"), store.writer():
            pass
    finally:
        store.close()
    after = folder_state(folder)
    for name in ("store.db-wal", "store.db-shm"):
        after.pop(name, None)
    assert after == before


READONLY_SEARCH = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pathlib import Path
    from lookalike.store import LocalStore
    folder = Path(sys.argv[1])
    query = np.frombuffer(bytes.fromhex(sys.argv[2]), dtype="<f4")
    store = LocalStore(folder, "c", exact_threshold=0, create=False)
    print("readonly", store.readonly)
    print("top", store.knn(query, 1)[0].id)
    store.close()
    """
)


def test_a_collection_on_a_readonly_mount_can_be_searched(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    """A real read-only bind mount of the collection folder, in a private mount namespace
    (``unshare -m``), searched by a child process that was never told it is read-only."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to make a read-only bind mount")
    records = records_factory(50, seed=6)
    folder = tmp_path / "c"
    filled(folder, model_info, records).close()
    before = folder_state(folder)
    script = tmp_path / "search.py"
    script.write_text(READONLY_SEARCH)
    mount = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.decode()[:200]}")
    query = vector_bytes(records[7]).hex()
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'{mount} && touch {folder}/probe 2>/dev/null; "$0" "$1" "$2" "$3"',
         sys.executable, str(script), str(folder), query],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "readonly True" in out.stdout
    assert f"top {records[7].id}" in out.stdout
    assert "read-only" in out.stderr  # the one-line note
    assert folder_state(folder) == before  # not even the probe got in


def test_repair_rebuilds_a_database_whose_table_pages_are_damaged(
    tmp_path: Path, records_factory: Records, model_info: ModelInfo
) -> None:
    records = records_factory(300, seed=2)
    folder = tmp_path / "c"
    filled(folder, model_info, records).close()
    page_size, leaves = documents_leaf_pages(folder / "store.db")
    with open(folder / "store.db", "r+b") as fh:
        fh.seek((leaves[1] - 1) * page_size + 4096)
        fh.write(np.random.default_rng(0).bytes(4096))

    store = LocalStore(folder, "c")
    try:
        found = store.check(repair=True)
        assert any("integrity check" in p for p in found.problems)
        assert any("rebuilt store.db from its readable rows" in x for x in found.repaired)
        assert found.reindex_roots == ["/photos"]  # where the lost rows' files would be
        assert list(folder.glob("store.db.damaged-*"))  # the damaged file is kept
        after = store.check()
        assert after.ok, after.problems
        kept = {r.id for batch in store.iter_records() for r in batch}
        assert 0 < len(kept) < 300
        for rec in records:  # every kept document is found, the lost ones are simply gone
            if rec.id in kept:
                assert store.knn(np.asarray(rec.vector), 1)[0].id == rec.id
    finally:
        store.close()
