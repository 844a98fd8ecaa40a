"""Benchmark the command line cold: one fresh process per command, as a terminal user runs it.

    python bench/cli.py [--n 10000] [--runs 3] [--home DIR] [--json]

Set-up (not timed): full-size random-weight models (``lookalike.models.testing``,
ViT-B/32 + multilingual DistilBERT, 512-d), a collection of ``--n`` documents
filled with synthetic clustered vectors straight through the store and bound to
the image model (so searches run against the real model binding), and the query
exports made as the first ``lookalike index`` makes them (the ONNX text and image
encoders in ``<home>/onnx``). Embedding 10k images would take most of an hour
here and would not change what a query costs.

Timed: each command in a fresh ``python -m lookalike`` process, ``--runs`` times
(median reported). Wall time is measured around the child's whole life; peak RSS
is the child's own high-water mark (``ru_maxrss`` from ``wait4``, i.e. VmHWM), CPU
time its user + system seconds (what a quiet machine's wall time would approach;
ONNX Runtime's threads can make it exceed the wall time).
The baselines run the same way in the same run: ``python -c "import torch"`` (what
any torch-based query path costs before it does anything) and ``python -c pass``.
The machine is shared: compare the ratios, and note the load (printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.models import create_embedder
from lookalike.models.testing import build_random_clip, build_random_multilingual
from lookalike.records import Record

#: command name -> (arguments after ``lookalike``, wall goal in s, peak RSS goal in MB or None)
GOALS: dict[str, tuple[float, float | None]] = {
    "search TEXT": (1.0, 350.0),
    "similar FILE": (2.5, None),
    "similar ID": (0.5, None),
    "stats": (0.5, None),
    "collections": (0.5, None),
}


def clustered(n: int, dim: int, seed: int = 1, clusters: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = centers[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def prepare(home: Path, n: int) -> tuple[Settings, str, Path]:
    """Models, a filled and bound collection, the query exports; (settings, an id, a query file)."""
    models = home / "models"
    clip, text = models / "clip-base", models / "text-base"
    if not (clip / "modules.json").is_file():
        print("building the random-weight ViT-B/32 (tens of seconds) ...", file=sys.stderr)
        build_random_clip(clip, size="base", dim=512)
    if not (text / "modules.json").is_file():
        print("building the random-weight multilingual text model ...", file=sys.stderr)
        build_random_multilingual(text, size="base", dim=512)
    settings = Settings(
        home=home / "home", image_model=str(clip), text_model=str(text), collection="bench"
    )
    query = home / "query.jpg"
    if not query.is_file():
        rng = np.random.default_rng(7)
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
        coarse.resize((1600, 1200), Image.Resampling.BICUBIC).save(query, "JPEG", quality=88)
    embedder = create_embedder(settings)
    with Collection(settings, embedder=embedder) as col:
        if col.store.count() != n:
            print(f"filling the collection with {n} synthetic vectors ...", file=sys.stderr)
            fill(col, n)
        print("making the query exports (as the first index does) ...", file=sys.stderr)
        prepare_queries = getattr(embedder, "prepare_queries", None)
        if prepare_queries is not None:
            prepare_queries()
        else:
            embedder.load_texts()  # type: ignore[attr-defined]
    return settings, f"{n // 2:012x}", query


def fill(col: Collection, n: int, batch: int = 2000) -> None:
    store = col.store
    store.bind_model(col.embedder.info)
    vectors = clustered(n, col.embedder.dim)
    for start in range(0, n, batch):
        rows = [
            Record(
                id=f"{i:012x}", path=f"/bench/f{i % 100:03d}/img{i:07d}.jpg", root="/bench",
                relpath=f"f{i % 100:03d}/img{i:07d}.jpg", format="jpeg", size=200_000 + i,
                mtime=1_600_000_000.0 + i, sha256=f"{i:064x}", width=4000, height=3000,
                vector=vectors[i],
            )
            for i in range(start, min(n, start + batch))
        ]  # fmt: skip
        store.upsert(rows)
    store.flush()
    sync = getattr(store, "sync_index", None)
    if sync is not None:
        sync()


# Runs in its own small interpreter: a child forked from this process would inherit this
# process's memory high-water mark (Linux keeps it across fork and exec), and the set-up
# above has loaded gigabytes of models here.
_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "maxrss_kb": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime,
                  "exit": os.waitstatus_to_exitcode(status)}))
"""


def child_env(home: Path) -> dict[str, str]:
    """The children's environment: with bytecode caches, as an installed package has.

    Some shells here set PYTHONDONTWRITEBYTECODE, which makes every cold start compile
    each module of lookalike again (about 0.1 s); the caches go under ``home``.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int, str]:
    """(wall s, CPU s, peak RSS MB, exit code, last stderr line) of one fresh child process."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *argv],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    fig = json.loads(done.stdout.strip().splitlines()[-1])
    tail = done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else []
    return fig["wall"], fig["cpu"], fig["maxrss_kb"] / 1024, fig["exit"], " ".join(tail)


def measure(argv: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Median wall and the highest peak RSS over ``runs`` fresh processes, after one
    untimed run (it writes the bytecode caches and warms the OS file cache, as any
    earlier use of the command would have)."""
    run_once(argv, env)
    walls, cpus, rss = [], [], []
    code, tail = 0, ""
    for _ in range(runs):
        wall, cpu, peak, code, tail = run_once(argv, env)
        walls.append(wall)
        cpus.append(cpu)
        rss.append(peak)
    return {
        "wall_s": round(statistics.median(walls), 3),
        "wall_min_s": round(min(walls), 3),
        "wall_max_s": round(max(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
        "peak_rss_mb": round(max(rss), 1),
        "exit": code,
        **({"stderr": tail} if code else {}),
    }


def commands(settings: Settings, doc_id: str, query: Path) -> dict[str, list[str]]:
    common = ["--home", str(settings.home), "-c", settings.collection,
              "--model", settings.image_model, "--text-model", settings.text_model]  # fmt: skip
    lookalike = [sys.executable, "-m", "lookalike"]
    return {
        "search TEXT": [*lookalike, "search", "a red car at night", *common],
        "similar FILE": [*lookalike, "similar", str(query), *common],
        "similar ID": [*lookalike, "similar", doc_id, *common],
        "stats": [*lookalike, "stats", *common],
        "collections": [*lookalike, "collections", "--home", str(settings.home)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="documents in the collection")
    ap.add_argument("--runs", type=int, default=3, help="cold runs per command (median)")
    ap.add_argument("--home", type=Path, help="keep models, collection and exports here")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.home is not None:
            home = args.home.resolve()
            home.mkdir(parents=True, exist_ok=True)
        else:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lookalike-cli-")))
        settings, doc_id, query = prepare(home, args.n)
        load = os.getloadavg()[0]
        env = child_env(home)
        py = sys.executable
        results: dict[str, Any] = {
            "python -c pass": measure([py, "-c", "pass"], args.runs, env),
            "python -c 'import torch'": measure([py, "-c", "import torch"], args.runs, env),
        }
        for name, argv in commands(settings, doc_id, query).items():
            results[name] = measure(argv, args.runs, env)
        load = max(load, os.getloadavg()[0])
    base = results["python -c 'import torch'"]
    for name, fig in results.items():
        fig["vs_import_torch"] = round(fig["wall_s"] / base["wall_s"], 2)
        fig["rss_vs_import_torch"] = round(fig["peak_rss_mb"] / base["peak_rss_mb"], 2)
        if name in GOALS:
            wall_goal, rss_goal = GOALS[name]
            fig["goal"] = f"<= {wall_goal} s" + (f", <= {rss_goal:.0f} MB" if rss_goal else "")
            fig["met"] = (
                fig["exit"] == 0
                and fig["wall_s"] <= wall_goal
                and (rss_goal is None or fig["peak_rss_mb"] <= rss_goal)
            )
    if args.json:
        print(json.dumps({"n": args.n, "runs": args.runs, "load": load, "results": results},
                         indent=2))  # fmt: skip
        return
    print(f"\ncold CLI, {args.n} documents, full-size random-weight models, median of "
          f"{args.runs} runs; load average up to {load:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'command':<26} {'wall s':>7} {'(min-max)':>13} {'CPU s':>6} {'peak MB':>8} "
          f"{'x torch':>8} {'RSS x':>6}  goal")  # fmt: skip
    for name, fig in results.items():
        goal = fig.get("goal", "")
        if goal:
            goal += "  met" if fig["met"] else "  MISSED"
        if fig["exit"]:
            goal += f"  exit {fig['exit']}: {fig.get('stderr', '')}"
        spread = f"({fig['wall_min_s']:.2f}-{fig['wall_max_s']:.2f})"
        print(
            f"{name:<26} {fig['wall_s']:>7.2f} {spread:>13} {fig['cpu_s']:>6.2f}"
            f" {fig['peak_rss_mb']:>8.0f} {fig['vs_import_torch']:>8.2f}"
            f" {fig['rss_vs_import_torch']:>6.2f}  {goal}"
        )


if __name__ == "__main__":
    main()
