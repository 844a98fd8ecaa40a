"""The derived index at 10M vectors, simulated: build (resumable), open, RAM, p50, recall.

    python -P bench/simulate_scale.py --n 10000000 --folder DIR [--time-limit 450]

Inserting 10M documents through ``LocalStore`` takes this 2-core machine over half an
hour (and 28 GB); this script leaves SQLite out and puts the synthetic vectors
(``bench/synthetic.py``, manifold data) in one float32 file (``DIR/vectors.f32``, 20 GB
at 10M x 512) that a ``VectorSource`` serves by memory-mapped row reads (key = row + 1).
Everything else is the store's own code: ``DerivedIndex`` builds the b1 graph with its
checkpoints, saves it, and a second ``DerivedIndex`` opens the save (it must rebuild
nothing) and answers the queries, rescoring each query's candidates (100 for a top 10)
from the file. ``bench/search.py --compare 1000000,10000000`` measures the same through
``LocalStore``, rescoring from ``store.db`` (its 10M inserts take about 21 minutes more).

With ``--time-limit`` the run stops when its time is up (exit status 3), keeping the
vectors written and the last build checkpoint; run it again to continue. Each run fits
the shared CPU lock's ~10 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.store import IndexParams
from lookalike.store.vectorindex.derived import DerivedIndex


def _sibling(name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MappedSource:
    """A VectorSource over a float32 file: key k is row k - 1; nothing ever changes."""

    def __init__(self, path: Path, n: int, dim: int) -> None:
        self.matrix = np.memmap(path, dtype="<f4", mode="r", shape=(n, dim))

    def snapshot(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def head(self) -> int:
        return 1

    def count(self) -> int:
        return len(self.matrix)

    def count_changes(self, after: int) -> int:
        return 0

    def changes(self, after: int) -> list[tuple[int, int, str]]:
        return []

    def vectors(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        ks = np.sort(np.asarray(keys, dtype=np.int64))
        return ks, np.asarray(self.matrix[ks - 1])

    def iter_vectors(
        self, batch_size: int, after: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(after, len(self.matrix), batch_size):
            rows = np.asarray(self.matrix[start : start + batch_size])
            yield np.arange(start + 1, start + 1 + len(rows), dtype=np.int64), rows


class OutOfTime(Exception):
    pass


def _write_vectors(dataset: Any, path: Path, progress: dict[str, Any], save: Any) -> None:
    mode = "r+b" if path.exists() else "w+b"
    with open(path, mode) as fh:
        for start, rows in dataset.chunks(progress["rows_written"]):
            fh.seek(start * dataset.dim * 4)
            fh.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
            progress["rows_written"] = start + len(rows)
            save()


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def _anon_mb() -> float:
    return _status_mb("RssAnon:")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--folder", type=Path, required=True)
    ap.add_argument("--time-limit", type=float)
    # small enough that a 450 s run on a busy machine always gets past one
    ap.add_argument("--checkpoint-every", type=int, default=250_000)
    args = ap.parse_args()

    args.folder.mkdir(parents=True, exist_ok=True)
    progress_file = args.folder / "progress.json"
    progress: dict[str, Any] = {"rows_written": 0, "write_s": 0.0, "build_s": 0.0, "runs": 0}
    if progress_file.is_file():
        progress = json.loads(progress_file.read_text())

    def save() -> None:
        peak = _status_mb("VmHWM:")  # the build's memory: it must fit 24 GiB
        progress["peak_rss_mb"] = max(progress.get("peak_rss_mb", 0.0), peak)
        progress_file.write_text(json.dumps(progress))

    dataset = _sibling("synthetic").Dataset("manifold", args.n, args.dim)
    vectors = args.folder / "vectors.f32"
    params = IndexParams(exact_threshold=0, checkpoint_every=args.checkpoint_every)
    index_dir = args.folder / "index"
    index_dir.mkdir(exist_ok=True)
    expired: list[bool] = []

    def out_of_time(_signum: int, _frame: Any) -> None:
        expired.append(True)
        raise OutOfTime

    if args.time_limit:
        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(max(1, int(args.time_limit)))
    phase, t = "write_s", time.perf_counter()
    progress["runs"] += 1
    try:
        _write_vectors(dataset, vectors, progress, save)
        progress["write_s"] += time.perf_counter() - t
        phase, t = "build_s", time.perf_counter()
        if not progress.get("built"):
            source = MappedSource(vectors, args.n, args.dim)
            builder = DerivedIndex(index_dir, source, dim=args.dim, db_uuid="sim", params=params)
            builder.sync()
            progress["build_origin"] = builder.status().origin
            builder.close()
            progress["build_s"] += time.perf_counter() - t
            progress["built"] = True
    except (OutOfTime, RuntimeError):  # usearch ends an add() a signal interrupts
        if not expired:
            raise
        progress[phase] += time.perf_counter() - t
        save()
        print(f"out of time during {phase[:-2]}; run again to continue", file=sys.stderr)
        raise SystemExit(3) from None
    finally:
        signal.alarm(0)
    save()

    fig: dict[str, Any] = {"n": args.n, "dim": args.dim, **progress}
    queries = dataset.queries(args.queries)
    truth = dataset.true_neighbours(queries, args.k)
    before = _anon_mb()
    source = MappedSource(vectors, args.n, args.dim)
    index = DerivedIndex(index_dir, source, dim=args.dim, db_uuid="sim", params=params)
    t = time.perf_counter()
    index.sync(load=True)
    fig["open_s"] = time.perf_counter() - t
    status = index.status()
    fig["open_origin"], fig["open_full_builds"] = status.origin, status.full_builds
    for q in queries[:50]:  # touch the mapped graph once
        index.candidates(q, args.k)
    times, hits = [], 0
    for q, want in zip(queries, truth, strict=True):
        t = time.perf_counter()
        got = index.candidates(q, args.k)
        times.append((time.perf_counter() - t) * 1000)
        hits += len(set((got.keys - 1).tolist()) & set(want.tolist()))
    times.sort()
    fig["vector_p50_ms"] = statistics.median(times)
    fig["vector_p99_ms"] = times[int(0.99 * (len(times) - 1))]
    fig["recall_at_k"] = hits / (args.k * len(queries))
    graph = sum(p.stat().st_size for p in index_dir.glob("ann-*.usearch"))
    fig["graph_bytes_per_dim"] = graph / (args.n * args.dim)
    fig["private_mb"] = _anon_mb() - before
    fig["search_ram_bytes_per_dim"] = (graph + max(0.0, fig["private_mb"]) * 2**20) / (
        args.n * args.dim
    )
    index.close()
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
