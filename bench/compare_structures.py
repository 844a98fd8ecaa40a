"""Old and new vector structures side by side, for ``bench/search.py --compare SIZES``.

For each size, ``bench/search.py`` runs in a subprocess twice on the same generated data:
with this checkout's ``src`` (the b1 graph rescored from the database) and with
``--baseline-src`` (e.g. the previous version, ``git archive 9229bd2 src | tar -x -C DIR``:
an int8 graph plus a float32 rescoring file beside the float32 database). Sizes above
``--old-max-n`` are not built with the old code (at 10M its int8 graph takes hours on
2 cores and 46+ GB of disk); its figures there are projections from its largest
measured size, labelled as such: disk and RAM per dimension stay constant per vector,
build time grows as n log n, latency and recall are not projected.

Every measurement is kept in ``--folder`` (``DATA-new-N.json``; delete one to measure it
again: with ``--keep`` its collection stays in ``DATA-new-N/`` and the next run measures
it without rebuilding), and with ``--time-limit``
a run stops when its time is up (exit status 3) keeping its collection, so one long
comparison can be split into several runs under the shared CPU lock: run the same
command again until it prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["compare"]

ROWS = (
    ("search RAM (B/dim)", "search_ram_bytes_per_dim", "{:.3f}"),
    ("  graph file (B/dim)", "graph_bytes_per_dim", "{:.3f}"),
    ("  private (MB)", "store_private_mb", "{:.0f}"),
    ("recall@10 vs exact", "recall_at_k", "{:.4f}"),
    ("vector search p50 (ms)", "vector_p50_ms", "{:.2f}"),
    ("vector search p99 (ms)", "vector_p99_ms", "{:.2f}"),
    ("knn with records p50 (ms)", "knn_p50_ms", "{:.2f}"),
    ("knn with records p99 (ms)", "knn_p99_ms", "{:.2f}"),
    ("knn, first pass p50 (ms)", "knn_cold_p50_ms", "{:.2f}"),
    ("knn, unseen queries p50 (ms)", "knn_unseen_p50_ms", "{:.2f}"),
    ("knn, unseen queries p99 (ms)", "knn_unseen_p99_ms", "{:.2f}"),
    ("disk, all (B/dim)", "disk_bytes_per_dim", "{:.2f}"),
    ("  store.db (B/dim)", "db_bytes_per_dim", "{:.2f}"),
    ("  saved copies (B/dim)", "saved_copies_bytes_per_dim", "{:.2f}"),
    ("insert (vectors/s)", "insert_per_s", "{:,.0f}"),
    ("build (s)", "build_s", "{:.1f}"),
    ("open (s)", "open_s", "{:.2f}"),
    ("open rebuilt anything", "open_full_builds", "{}"),
    ("peak RSS (MB)", "peak_rss_mb", "{:,.0f}"),
)


def _run(args: argparse.Namespace, src: Path, n: int, folder: Path) -> dict[str, Any] | None:
    """The figures of one structure at one size; None when the run's --time-limit passed
    first (what it did is kept in ``folder``: the next run continues)."""
    script = Path(__file__).with_name("search.py")
    cmd = [sys.executable, "-P", str(script), "--n", str(n), "--data", args.data, "--resume"]
    cmd += ["--queries", str(args.queries), "--k", str(args.k), "--json", "--skip-filters"]
    cmd += ["--folder", str(folder)]
    if args.time_limit:
        cmd += ["--time-limit", str(args.time_limit)]
    if args.checkpoint_every and src.resolve() != Path(args.baseline_src).resolve():
        cmd += ["--checkpoint-every", str(args.checkpoint_every)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode == 3:
        return None
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _project(measured: dict[str, Any], n: int) -> dict[str, Any]:
    m = int(measured["n"])
    growth = n / m * math.log(n) / math.log(m)
    return {
        "n": n,
        "projected": True,
        **{k: measured[k] for k in ("search_ram_bytes_per_dim", "graph_bytes_per_dim")},
        **{k: measured[k] for k in ("disk_bytes_per_dim", "db_bytes_per_dim")},
        "saved_copies_bytes_per_dim": measured["saved_copies_bytes_per_dim"],
        "store_private_mb": measured["store_private_mb"] * n / m,
        "build_s": measured["build_s"] * growth,
    }


def compare(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in str(args.compare).split(",") if s]
    new_src = Path(__file__).resolve().parents[1] / "src"
    if args.baseline_src is None:
        raise SystemExit("--compare needs --baseline-src (the previous version's src folder)")
    work = Path(args.folder or tempfile.mkdtemp(prefix="lookalike-compare-"))
    results: dict[int, dict[str, dict[str, Any]]] = {}
    old_measured: dict[str, Any] | None = None
    for n in sizes:
        results[n] = {}
        for name, src in (("new", new_src), ("old", Path(args.baseline_src))):
            if name == "old" and n > args.old_max_n:
                assert old_measured is not None, "measure the old structure at a smaller size"
                results[n][name] = _project(old_measured, n)
                continue
            saved = work / f"{args.data}-{name}-{n}.json"  # measured by an earlier run
            if saved.is_file():
                results[n][name] = json.loads(saved.read_text())
            else:
                figures = _run(args, src, n, work / f"{args.data}-{name}-{n}")
                if figures is None:
                    print(f"{name} at n={n:,}: out of time; run the same command again to "
                          "continue", file=sys.stderr)  # fmt: skip
                    raise SystemExit(3)
                saved.write_text(json.dumps(figures))
                if not args.keep:  # --keep: the collection stays, to measure it again
                    shutil.rmtree(work / f"{args.data}-{name}-{n}", ignore_errors=True)
                results[n][name] = figures
                print(f"# measured {name} at n={n:,}", file=sys.stderr, flush=True)
            if name == "old":
                old_measured = results[n][name]
    if args.json:
        print(json.dumps({str(n): r for n, r in results.items()}))
        return
    head = f"{'':28s}" + "".join(f"{f'{n:,} new':>16s}{f'{n:,} old':>16s}" for n in sizes)
    print(f"data: {args.data}, {args.queries} queries, k={args.k}; 'proj.': projected")
    print(head)
    for label, key, fmt in ROWS:
        cells = []
        for n in sizes:
            for name in ("new", "old"):
                fig = results[n][name]
                text = fmt.format(fig[key]) if key in fig else "-"
                cells.append(
                    f"{text + (' proj.' if fig.get('projected') and key in fig else ''):>16s}"
                )
        print(f"{label:28s}" + "".join(cells))
