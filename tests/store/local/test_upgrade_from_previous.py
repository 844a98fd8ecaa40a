"""A collection made by the previous version (commit 9229bd2: float32 vectors in
store.db plus a format-3 save, an int8 graph with a float32 rescoring file) opens and
searches with this one, which replaces the old save by its compact graph once; a kill -9
halfway through that build loses nothing and the next open continues from its checkpoint.

The previous version's code comes from this repository's own history (``git archive``)
and runs in its own process, as a user's installed copy would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lookalike.store import LocalStore

PREVIOUS = "9229bd2"
REPO = Path(__file__).resolve().parents[3]
N, DIM = 21_000, 384  # above the exact-search threshold (20,000): the old code saves a graph

# Shared by both versions' processes: the same records from the same seed.
MAKE = """
import numpy as np
from lookalike.records import ModelInfo, Record

MODEL = ModelInfo("test/upgrade", 384, "none")

def make(n, dim=384):
    fixed = np.random.default_rng(99)
    proj = fixed.standard_normal((16, dim)) / 4.0
    centres = fixed.standard_normal((50, 16))
    rng = np.random.default_rng(7)
    z = centres[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, 16))
    x = z @ proj
    x += rng.standard_normal((n, dim)) * 0.2 * np.linalg.norm(x, axis=1, keepdims=True) / 19.6
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return [Record(id=f"a/{i:06d}.jpg", path=f"/p/a/{i:06d}.jpg", root="/p",
                   relpath=f"a/{i:06d}.jpg", format="jpeg", size=1000 + i, mtime=1.0 + i,
                   sha256=f"{i:064x}", width=64, height=48, vector=x[i]) for i in range(n)]

def queries():
    recs = make(N)
    rng = np.random.default_rng(3)
    out = []
    for i in range(0, N, 1500):
        q = recs[i].vector + 0.01 * rng.standard_normal(384)
        out.append((q / np.linalg.norm(q)).astype(np.float32))
    return out
"""

OLD_CHILD = (
    f"N = {N}\n"
    + MAKE
    + """
import json, sys
from pathlib import Path
from lookalike.store import LocalStore
folder = Path(sys.argv[1])
store = LocalStore(folder, "photos")
store.bind_model(MODEL)
recs = make(N)
for start in range(0, N, 3000):
    store.upsert(recs[start : start + 3000])
store.flush()  # builds and saves the int8 graph and its float32 rescoring file
hits = [[h.id for h in store.knn(q, 10)] for q in queries()]
store.close()
print(json.dumps(hits))
"""
)

# The new code's first open, over a source that stops once a build checkpoint is saved.
NEW_PAUSING = """
import json, sys
from pathlib import Path
from lookalike.store import IndexParams, LocalStore
from lookalike.store.vectorindex.derived import DerivedIndex

folder = Path(sys.argv[1])
params = IndexParams(checkpoint_every=5000)
store = LocalStore(folder, "photos", index_params=params)
source = store.vector_source()

def checkpointed():
    return any(json.loads(p.read_text()).get("partial_upto") for p in folder.glob("ann-*.json"))

class Pausing:
    def __getattr__(self, name):
        return getattr(source, name)

    def iter_vectors(self, batch_size, after=0):
        for keys, vecs in source.iter_vectors(batch_size, after):
            for start in range(0, len(keys), 1000):
                if checkpointed():
                    print("checkpoint", flush=True)
                    sys.stdin.readline()  # killed here
                yield keys[start : start + 1000], vecs[start : start + 1000]

index = DerivedIndex(folder, Pausing(), dim=384, db_uuid=store.database.uuid, params=params)
index.sync()
"""

NEW_RESUME = (
    f"N = {N}\n"
    + MAKE
    + """
import json, sys
from pathlib import Path
from lookalike.store import LocalStore
store = LocalStore(Path(sys.argv[1]), "photos")
status = store.sync_index()
hits = [[h.id for h in store.knn(q, 10)] for q in queries()]
store.close()
print(json.dumps({"origin": status.origin, "kind": status.kind, "hits": hits}))
"""
)


def _previous_src(tmp_path: Path) -> Path:
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"], capture_output=True
    )
    if found.returncode != 0:
        pytest.skip(f"needs the git history holding the previous version ({PREVIOUS})")
    out = tmp_path / "previous"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out / "src"


def _python(src: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_collection_of_the_previous_version_upgrades_through_a_kill_9(tmp_path: Path) -> None:
    old_src = _previous_src(tmp_path)
    new_src = REPO / "src"
    home = tmp_path / "home"
    folder = home / "collections" / "photos"
    old_hits = json.loads(_python(old_src, OLD_CHILD, str(folder)))
    assert sorted(p.suffix for p in folder.glob("ann-*")) == [
        ".crc", ".f32", ".json", ".keys", ".usearch"
    ]  # fmt: skip

    # the new code builds its graph (the old save is of no use to it) and is killed halfway
    child = subprocess.Popen(
        [sys.executable, "-c", NEW_PAUSING, str(folder)],
        env={**os.environ, "PYTHONPATH": str(new_src)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "checkpoint"
        # meanwhile another process searches correctly (read-only: it saves nothing)
        namespace: dict[str, object] = {"N": N}
        exec(MAKE, namespace)  # noqa: S102 - the same record maker as the children
        records = namespace["make"](N)  # type: ignore[operator]
        queries = namespace["queries"]()  # type: ignore[operator]
        reader = LocalStore(folder, "photos", readonly=True)
        assert [h.id for h in reader.knn(queries[0], 10)][:3] == old_hits[0][:3]
        reader.close()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    stamps = [json.loads(p.read_text()) for p in folder.glob("ann-*.json")]
    assert [(s["format"], s["partial_upto"]) for s in stamps] == [(4, 5000)]

    # the next open continues the build from the checkpoint and saves the whole graph
    resumed = json.loads(_python(new_src, NEW_RESUME, str(folder)))
    assert (resumed["origin"], resumed["kind"]) == ("resumed", "hnsw")
    assert sorted(p.suffix for p in folder.glob("ann-*")) == [".json", ".usearch"]
    matrix = np.stack([r.vector for r in records])
    ids = [r.id for r in records]
    found = {"old": 0, "new": 0}
    for q, old, new in zip(queries, old_hits, resumed["hits"], strict=True):
        exact = {ids[i] for i in np.argsort(-(matrix @ q))[:10]}
        assert new[0] == old[0]  # the best match, and nearly the same lists
        found["old"] += len(exact & set(old))
        found["new"] += len(exact & set(new))
    assert found["new"] >= max(0.95 * 10 * len(queries), found["old"] - 2)

    # nothing lost, nothing doubled, every vector as the previous version stored it
    store = LocalStore(folder, "photos")
    assert store.count() == N
    got = {r.id: r.vector for batch in store.iter_records(5000) for r in batch}
    assert len(got) == N
    for rec in records[::700]:
        assert np.array_equal(got[rec.id], rec.vector)
    store.close()
    check = subprocess.run(
        [sys.executable, "-m", "lookalike", "check", "-c", "photos", "--json"],
        env={**os.environ, "PYTHONPATH": str(new_src), "LOOKALIKE_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] and not report["problems"], report
    assert report["checked"]["documents"] == N and report["checked"]["saved_indexes"] == 1
