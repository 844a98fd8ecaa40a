"""Where a ``lookalike index`` run spends its time: py-spy over the whole process tree,
summed into the stages of the pipeline.

    python -P bench/profile_ingest.py FOLDER [--home DIR] [--models DIR] [--rate HZ]
                                      [--raw FILE]

Runs ``python -m lookalike index FOLDER --json`` under ``py-spy record --subprocesses
--idle --threads`` (pip install py-spy; it is in the dev extra) with the random-weight
models of scripts/make_random_models.py, into a new collection of --home (a fresh
home when omitted: a cold run; pass the same --home twice for a warm one), and
prints seconds per stage:

* the main thread, whose samples (idle ones included) add up to the wall time:
  imports, model load, load-time checks, scan and hash, worker spawn, waiting for
  decoded images, preprocessing, the model's forward pass, SQLite writes, export;
* the decode workers: seconds decoding, starting (imports), and idle; and the
  background query export, which py-spy follows after the index exits.

The stages are matched on function names (``STAGES``), first match wins.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "scripts"))
DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")

#: (stage, any of these "function file" fragments in the stack); first match wins
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("export (inline)", ("prepare_queries ", "prepare_warm_start ")),
    ("import torch", ("<module> torch/__init__.py",)),
    ("import sentence-transformers", ("<module> sentence_transformers/", "<module> transformers/")),
    ("load-time checks (+ bf16 rounding)", ("_attach_vision ",)),
    ("model load: saved tower", ("load_saved ",)),
    ("model load: sentence-transformers", ("SentenceTransformerEmbedder._load ",)),
    ("model forward", ("Module._call_impl ", "RecursiveScriptModule")),
    ("preprocessing (pixels to tensor)",
     ("SavedVision.__call__ ", "Vision.pixels ", "Vision.__call__ ")),
    ("SQLite writes", ("upsert ", ".flush ", "remember_failures ", "bind_model ")),
    ("waiting for decoded images", ("DecodePool.decode ",)),
    ("worker spawn", ("DecodePool.__init__ ", "DecodePool.__enter__ ")),
    ("scan and hash", ("scan ", "_settle_by_hash ", "_hash_file ", ".manifest ")),
    ("imports (other)", ("<module> ",)),
]  # fmt: skip


def _frames(stack: str) -> list[str]:
    out = []
    for frame in stack.split(";"):
        m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
        if m:
            path = m.group(2).split("site-packages/")[-1].split("src/")[-1]
            out.append(f"{m.group(1)} {path}")
        else:
            out.append(frame)
    return out


def stage_of(frames: list[str]) -> str:
    if not frames:
        return "interpreter start and exit (no Python frame)"
    for name, marks in STAGES:
        if any(mark in frame for frame in frames for mark in marks):
            return name
    return "other"


def summarise(raw: Path, rate: int) -> dict[str, dict[str, float]]:
    """Seconds per stage: {"main": {...}, "workers": {...}}."""
    main: collections.Counter[str] = collections.Counter()
    workers: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # a command line may hold ";" itself: find the thread, then what runs it
        found = list(re.finditer(r"(?:^|;)thread \((\d+)\): ([^;]*)", stack))
        if not found:
            continue
        where = found[-1]
        owners = stack[: where.start()]
        child = len(re.findall(r"process \d+:\"", owners)) > 1
        if "query_export_job" in owners:  # detached: py-spy follows it past the index's exit
            if where.group(2) == "MainThread":
                workers["background export (after index exit)"] += int(count)
            continue
        frames = _frames(stack[where.end() + 1 :])
        n = int(count)
        if where.group(2) != "MainThread":
            continue  # helper threads (feeders, executor managers)
        if not child:
            main[stage_of(frames)] += n
        elif any("_decode_one " in f for f in frames):
            workers["decoding"] += n
        elif any(f.startswith("_find_and_load ") for f in frames):
            workers["starting (imports)"] += n
        else:
            workers["idle or other"] += n
    return {
        "main": {k: v / rate for k, v in main.most_common()},
        "workers": {k: v / rate for k, v in workers.most_common()},
    }


def wait_unlocked(home: Path) -> float:
    """Seconds until the background query export for ``home`` ends (the library's wait)."""
    import time

    from lookalike.config import Settings
    from lookalike.query_export_job import wait_for_job

    started = time.perf_counter()
    wait_for_job(Settings(home=home), timeout=3600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--home", type=Path, help="default: a fresh one (a cold run)")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw samples here")
    parser.add_argument("--collection", default="profiled")
    args = parser.parse_args()
    from make_random_models import make_random_models

    models = make_random_models(args.models)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="lookalike-profile-") as tmp:
        home = args.home or Path(tmp) / "home"
        raw = args.raw or Path(tmp) / "samples.raw"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
        env = {
            **clean, "PYTHONPATH": str(ROOT / "src"), "LOOKALIKE_HOME": str(home),
            "LOOKALIKE_MODEL": str(models["image"]), "LOOKALIKE_TEXT_MODEL": str(models["text"]),
            "LOOKALIKE_COLLECTION": args.collection, "HF_HUB_OFFLINE": "1",
        }  # fmt: skip
        cmd = [spy, "record", "--subprocesses", "--idle", "--threads", "-r", str(args.rate),
               "-f", "raw", "-o", str(raw), "--", sys.executable, "-m", "lookalike", "index",
               str(args.folder), "--json", "--quiet"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"profiling failed:\n{done.stderr[-3000:]}")
        out = done.stdout  # py-spy's own lines follow the report
        report = json.JSONDecoder().raw_decode(out[out.index("{") :])[0]
        stages = summarise(raw, args.rate)
        if report.get("query_export"):  # the background export: let it end before what follows
            print(f"(waited {wait_unlocked(home):.1f} s for the background query export)")
    total = sum(stages["main"].values())
    print(f"indexed {report['indexed']}, embed phase {report['embed_seconds']:.1f} s "
          f"({report['images_per_second']:.1f} images/s), core split "
          f"{report.get('core_split', '-')}; main thread {total:.1f} s sampled")  # fmt: skip
    for name, seconds in stages["main"].items():
        print(f"  {name:<38}{seconds:7.2f} s {seconds / total:6.1%}")
    print("decode workers (all processes together):")
    for name, seconds in stages["workers"].items():
        print(f"  {name:<38}{seconds:7.2f} s")
    print(json.dumps({"report": report, "stages": stages}))


if __name__ == "__main__":
    main()
