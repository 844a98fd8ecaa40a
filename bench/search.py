"""Benchmark the embedded store: insert, index build, open, query latency and recall.

    python -P bench/search.py [--n 100000] [--data manifold|isotropic] [--queries 300] ...
    python -P bench/search.py --compare 1000000,10000000 --baseline-src OLD/src

The second form prints the old and new structures side by side (bench/compare_structures.py).

Synthetic unit vectors go through ``LocalStore`` exactly as the indexer would put
them. Two kinds of data (``--data``):

* ``manifold`` (default): clusters on a 32-dimensional latent space mapped into 512
  dimensions, plus 20 % isotropic noise; queries are new points from the same
  distribution. Its similarity profile (query to its 1st / 10th / 100th / 1000th
  neighbour ~0.85 / 0.82 / 0.77 / 0.57) and low intrinsic dimension are those of
  image embeddings, where neighbours are few and clearly closer than the rest.
* ``isotropic``: tight clusters of 100 points with isotropic 512-d noise, queries a
  data point plus more noise than the clusters' spread. Inside a cluster all points
  are nearly equidistant from the query, so the true top 10 is decided by noise: a
  worst case for any graph index, kept as a stress test.

In one process it prints: insert rate; index build time (HNSW from SQLite); open
time from the saved index (must not rebuild); single-query p50/p99 of ``knn`` (with
the hits' records) and of the vector search alone, recall@10 against an exact numpy
search run in the same process (the baseline), filtered-query latency (broad,
selective, folder); bytes per dimension on disk; peak RSS. The machine is shared
and noisy: compare figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.records import Filters, ModelInfo, Record
from lookalike.store import IndexParams, LocalStore

MODEL = ModelInfo("bench/synthetic-clustered", 512, "none")


def _sibling(name: str) -> Any:
    """A module from this folder (scripts run with ``python -P``, which leaves the
    script's folder off sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OutOfTime(Exception):
    """The run's --time-limit passed: what is done is kept, the next run continues."""


def records(vectors: np.ndarray, start: int, folders: int) -> list[Record]:
    rng = np.random.default_rng(start)
    out = []
    for i, v in enumerate(vectors, start=start):
        folder = f"/bench/f{i % folders:04d}"
        fmt = "jpeg" if i % 2 else "png"
        out.append(
            Record(
                id=f"f{i % folders:04d}/img{i:08d}.{fmt}",
                path=f"{folder}/img{i:08d}.{fmt}",
                root="/bench",
                relpath=f"f{i % folders:04d}/img{i:08d}.{fmt}",
                format=fmt,
                size=int(rng.integers(10_000, 10_000_000)),
                mtime=float(1_600_000_000 + i),
                sha256=f"{i:064x}",
                width=4000,
                height=3000,
                vector=v,
            )
        )
    return out


def memory_mb() -> dict[str, float]:
    """Resident memory in MB: total, peak, private (anonymous) and file-backed (mapped
    files such as the saved index: shared between processes and reclaimable)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    names = {"rss": "VmRSS", "peak": "VmHWM", "anon": "RssAnon", "file": "RssFile"}
    return {k: int(fields[v].split()[0]) / 1024 for k, v in names.items()}


def numpy_exact_p50(dataset: Any, queries: np.ndarray, k: int) -> float:
    """p50 of an exact numpy search over up to 1M rows, scaled linearly to all of them."""
    rows = np.concatenate([r for _s, r in itertools.islice(dataset.chunks(), 20)])
    p50, _, _ = latencies(lambda q: np.argpartition(-(rows @ q), k)[:k], queries)
    return float(p50 * dataset.n / len(rows))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def latencies(
    fn: Callable[[np.ndarray], Any], queries: np.ndarray
) -> tuple[float, float, list[Any]]:
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q))
        times.append(time.perf_counter() - t)
    ms = sorted(x * 1000 for x in times)
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.99 * len(ms)))], results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument(
        "--clusters",
        type=int,
        default=0,
        help="number of clusters (default: n/1000 for manifold, n/100 for isotropic data)",
    )
    ap.add_argument("--data", choices=["manifold", "isotropic"], default="manifold")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000, help="records per upsert")
    ap.add_argument("--folders", type=int, default=200)
    # index parameters: only those given are passed, so the same script also runs
    # against the previous version's code (--baseline-src), with its own defaults
    ap.add_argument("--dtype", help="graph codes: b1, i8, bf16, f16, f32 (default: the store's)")
    ap.add_argument("--connectivity", type=int)
    ap.add_argument("--expansion-add", type=int)
    ap.add_argument("--expansion-search", type=int, help="default: grows with the index")
    ap.add_argument("--overfetch", type=int, help="candidates rescored per wanted hit")
    ap.add_argument(
        "--rerank", type=int, help="b1: codes re-ranked by the float query per candidate"
    )
    ap.add_argument(
        "--overfetch-cap",
        type=int,
        help="wanted hits that get --overfetch candidates each (past them, one each)",
    )
    ap.add_argument("--checkpoint-every", type=int, help="vectors between build checkpoints")
    ap.add_argument("--threshold", type=int, default=20_000, help="exact below this many docs")
    ap.add_argument(
        "--vector-precision",
        choices=["float32", "float16"],
        default="float32",
        help="how store.db keeps the vectors (a new collection's vector_precision)",
    )
    ap.add_argument("--folder", type=Path, help="collection folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the collection folder")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue with the collection already in --folder (same --n, --data): insert "
        "the rows it lacks, continue its build from the last checkpoint, then measure",
    )
    ap.add_argument(
        "--time-limit",
        type=float,
        help="seconds for inserting and building in this run; past it, exit with status 3 "
        "keeping what is done (run again with --resume to continue)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument(
        "--skip-filters", action="store_true", help="leave out the filtered-query latencies"
    )
    ap.add_argument(
        "--compare",
        metavar="SIZES",
        help="comma-separated sizes (e.g. 1000000,10000000): run this script for each size in "
        "subprocesses, with this checkout's code and with --baseline-src, and print old and new "
        "side by side (see bench/compare_structures.py)",
    )
    ap.add_argument("--baseline-src", type=Path, help="the previous version's src folder")
    ap.add_argument(
        "--old-max-n",
        type=int,
        default=1_000_000,
        help="with --compare: sizes above this are projected for the old structure from its "
        "largest measured size instead of built (a 10M int8 graph takes hours here)",
    )
    args = ap.parse_args()
    if args.compare:
        _sibling("compare_structures").compare(args)
        return

    model = ModelInfo(MODEL.model_id, args.dim, MODEL.preprocess)
    given = {
        "dtype": args.dtype,
        "connectivity": args.connectivity,
        "expansion_add": args.expansion_add,
        "expansion_search": args.expansion_search,
        "overfetch": args.overfetch,
        "overfetch_cap": args.overfetch_cap,
        "rerank": args.rerank,
        "checkpoint_every": args.checkpoint_every,
    }
    params = IndexParams(**{k: v for k, v in given.items() if v is not None})
    base = args.folder or Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    folder = base / "collection"
    progress_file = base / "progress.json"
    resume = args.resume and (folder / "store.db").is_file()
    if folder.exists() and not resume:
        shutil.rmtree(folder)
        progress_file.unlink(missing_ok=True)
    progress: dict[str, Any] = {"insert_s": 0.0, "build_s": 0.0, "build_runs": 0, "done": False}
    if resume and progress_file.is_file():
        progress = json.loads(progress_file.read_text())
    resolved = params.resolved(args.dim) if hasattr(params, "resolved") else params
    fig: dict[str, Any] = {
        "n": args.n,
        "dim": args.dim,
        "dtype": resolved.dtype,
        "M": resolved.connectivity,
        "ef_search": resolved.ef_for(args.n),
        "overfetch": resolved.overfetch,
        "rerank": getattr(resolved, "rerank", None),
    }

    def open_store() -> LocalStore:
        extra = (
            {"vector_precision": args.vector_precision}
            if args.vector_precision != "float32"
            else {}
        )
        return LocalStore(
            folder, "bench", exact_threshold=args.threshold, index_params=params, **extra
        )

    fig["data"] = args.data
    fig["vector_precision"] = args.vector_precision
    dataset = _sibling("synthetic").Dataset(args.data, args.n, args.dim, args.clusters)
    fig["clusters"] = dataset.clusters
    queries = dataset.queries(args.queries)

    expired: list[bool] = []

    def out_of_time(_signum: int, _frame: Any) -> None:
        expired.append(True)
        raise OutOfTime

    if args.time_limit:
        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(max(1, int(args.time_limit)))
    phase, t = "insert_s", time.perf_counter()
    status = None
    try:
        store = open_store()
        store.bind_model(model)
        for start, rows in dataset.chunks(store.count()) if not progress["done"] else ():
            for at in range(0, len(rows), args.batch):
                part = rows[at : at + args.batch]
                store.upsert(records(part, start + at, args.folders))
        progress["insert_s"] += 0 if progress["done"] else time.perf_counter() - t
        phase, t = "build_s", time.perf_counter()
        status = store.sync_index()  # continues from the last build checkpoint, if any
        progress["build_s"] += 0 if progress["done"] else time.perf_counter() - t
        store.close()
    except (OutOfTime, RuntimeError):  # usearch ends an add() a signal interrupts
        if not expired:
            raise
        progress[phase] += time.perf_counter() - t
        progress["build_runs"] += phase == "build_s"
        base.mkdir(parents=True, exist_ok=True)
        progress_file.write_text(json.dumps(progress))
        print(f"out of time during {phase[:-2]}; run again with --resume", file=sys.stderr)
        raise SystemExit(3) from None
    finally:
        signal.alarm(0)
    if not progress["done"]:
        progress["build_runs"] += 1
        progress["done"] = True
        progress["build_origin"] = status.origin if status is not None else "?"
        progress_file.write_text(json.dumps(progress))
    fig["insert_per_s"] = args.n / progress["insert_s"] if progress["insert_s"] else None
    fig["build_s"] = progress["build_s"]
    fig["build_runs"] = progress["build_runs"]  # runs the build was spread over (checkpoints)
    fig["build_origin"] = progress["build_origin"]  # e.g. "resumed" after a checkpoint

    # exact numpy baseline (timed on up to 1M rows in memory, scaled beyond) and the truth
    fig["numpy_exact_p50_ms"] = numpy_exact_p50(dataset, queries[: min(30, args.queries)], args.k)
    truth = dataset.true_neighbours(queries, args.k)

    mem_before = memory_mb()
    store = open_store()
    fig["open_s"], status = timed(lambda: store.sync_index(persist=False))
    fig["open_origin"] = status.origin
    fig["open_full_builds"] = status.full_builds

    def search(q: np.ndarray) -> list[int]:
        return [int(h.id.split("img")[1].split(".")[0]) for h in store.knn(q, args.k)]

    # first pass: pages of the mapped index files are touched for the first time
    fig["knn_cold_p50_ms"], fig["knn_cold_p99_ms"], _ = latencies(search, queries)
    fig["knn_p50_ms"], fig["knn_p99_ms"], got = latencies(search, queries)
    # queries not asked before: what the two passes above cached of store.db does not
    # help them (once the database outgrows the RAM, this is the steady state)
    unseen = _sibling("synthetic").Dataset(args.data, args.n, args.dim, dataset.clusters, seed=7)
    fig["knn_unseen_p50_ms"], fig["knn_unseen_p99_ms"], _ = latencies(
        search, unseen.queries(min(100, args.queries))
    )
    hits = sum(len(set(g) & set(t.tolist())) for g, t in zip(got, truth, strict=True))
    fig["recall_at_k"] = hits / (args.k * len(queries))
    fig["speedup_vs_numpy"] = fig["numpy_exact_p50_ms"] / fig["knn_p50_ms"]
    # the vector search itself (HNSW walk + exact rescoring of the candidates), without
    # fetching the hits' records from SQLite: what the issue's 1 ms goal is about
    index = store._index  # noqa: SLF001 - the bench looks inside on purpose
    assert index is not None
    fig["vector_p50_ms"], fig["vector_p99_ms"], _ = latencies(
        lambda q: index.candidates(q, args.k), queries
    )

    filters = {
        "broad_format": Filters(formats=("jpeg",)),  # half of everything
        "folder": Filters(folder="/bench/f0007"),  # 1 / folders
        "size_range": Filters(min_size=1_000_000, max_size=1_300_000),  # about 3 %
    }
    chosen: dict[str, Filters] = {} if args.skip_filters else filters
    for name, f in chosen.items():
        count = store.count(f)
        p50, p99, _ = latencies(lambda q, f=f: store.knn(q, args.k, filters=f), queries[:100])
        fig[f"filter_{name}_p50_ms"] = p50
        fig[f"filter_{name}_p99_ms"] = p99
        fig[f"filter_{name}_matches"] = count

    stats = store.stats()
    cells = args.n * args.dim
    fig["db_bytes_per_dim"] = stats.details["db_bytes"] / cells
    graph = sum(p.stat().st_size for p in folder.glob("ann-*.usearch"))
    saved = sum(p.stat().st_size for p in folder.glob("ann-*"))
    fig["graph_bytes_per_dim"] = graph / cells  # the HNSW and its codes (mapped)
    fig["saved_copies_bytes_per_dim"] = (saved - graph) / cells  # e.g. the old .f32 file
    fig["disk_bytes_per_dim"] = stats.index_bytes / cells
    mem = memory_mb()
    fig["rss_mb"], fig["peak_rss_mb"] = mem["rss"], mem["peak"]
    fig["store_private_mb"] = mem["anon"] - mem_before["anon"]
    # what search keeps resident: the graph and what the store holds privately (the delta,
    # the removed set); rescoring reads a few candidate rows per query through the page cache
    fig["search_ram_bytes_per_dim"] = (graph + max(0.0, fig["store_private_mb"]) * 2**20) / cells
    fig["store_mapped_files_mb"] = mem["file"] - mem_before["file"]
    store.close()
    if not args.keep and args.folder is None:
        shutil.rmtree(base)

    if args.json:
        print(json.dumps(fig))
        return
    for key, value in fig.items():
        print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")


if __name__ == "__main__":
    main()
