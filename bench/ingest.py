"""Ingest as a user runs it: ``lookalike index`` timed as a subprocess, cold and warm, against
the seed's pipeline and the hardware's ceilings, all in one run.

    python -P bench/ingest.py [--icons N] [--hd N] [--photos N] [--kinds icon,hd1080,...]
                              [--seed-sample N] [--runtimes torch-fp32,torch-bf16]
                              [--models DIR] [--corpus DIR] [--repeats N]

Generates (once, cached in --corpus) 128 px PNG icons, 1080p JPEGs and 12 MP
camera-like JPEGs with bench/corpus.py, and builds (once) random-weight full-size
ViT-B/32 and multilingual text models with scripts/make_random_models.py. Then:

* **model-only ceiling**, each runtime of bench/ceiling.py (torch fp32 and bf16 at
  batch 1 and 32, pre-decoded 224x224 input, best of --repeats), in a fresh process,
  at the start of the run and again at its end (the better of the two counts);
* per kind of image:
  - **decode ceiling** (JPEG photos only): lookalike's reduced-scale decode
    (``lookalike.images.clip_ready``: JPEG draft, resize, crop) alone, in 2 processes;
  - **the seed's pipeline** as the seed's script ran it, in a fresh process:
    ``SentenceTransformer(folder)``, then per image ``Image.open`` + full decode and
    ``model.encode(image)``, fp32, one image at a time, torch's default threads; its
    rate counts decode and encode only (its own start and model load are left out,
    which flatters it);
  - **cold**: ``python -m lookalike index FOLDER --json`` in a fresh home (no ONNX
    export, no cached anything), wall-clock from process start to exit. The index
    leaves the query exports to a background process (``lookalike.query_export_job``);
    the bench then waits for it (its time is reported, not counted) so that it
    disturbs nothing after;
  - **warm**: the same, into a new collection of that home (exports and caches
    present).
  For cold and warm: images/s over the whole wall time, the run's own embedding rate
  (its ``--json`` ``images_per_second``: decode-and-embed phase only), the fixed cost
  (wall minus that phase) and the core split the run went through.

Prints a table with the ratios: against the seed, against the bf16 batch-32 ceiling,
and for photos against min(model ceiling, decode ceiling); the CPU flags, the load
average before and after. Figures drift several-fold on a shared machine: run it
alone (``flock /work/notes/cpu.lock ...`` here) and read ratios within one run.
``--json FILE`` also writes every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds modules named like the standard library's (http.py): keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "scripts"))
# Nothing heavy at module level: the decode processes import this module again.

DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")
DEFAULT_CORPUS = Path("/tmp/lookalike-bench/corpus")
KINDS = {"icon": "128 px PNG icons", "hd1080": "1080p JPEGs", "photo12mp": "12 MP JPEGs"}
PHOTOS = ("hd1080", "photo12mp")
BEST = "torch-bf16"  # the runtime whose batch-32 ceiling the runs are held against


def _bench_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-P", *args], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _env(home: Path, models: dict[str, Path], collection: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT / "src"),
        "LOOKALIKE_HOME": str(home),
        "LOOKALIKE_MODEL": str(models["image"]),
        "LOOKALIKE_TEXT_MODEL": str(models["text"]),
        "LOOKALIKE_COLLECTION": collection,
        "HF_HUB_OFFLINE": "1",
    }


# -- the seed's pipeline, in its own process --------------------------------------------


def seed_child(folder: Path, model_dir: Path, sample: int) -> None:
    """The seed's loop over the first ``sample`` images of ``folder``; prints JSON."""
    started = time.perf_counter()
    import torch
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    from lookalike.models.sentence import _quiet_loading

    with _quiet_loading():
        model = SentenceTransformer(str(model_dir), device="cpu")
    loaded = time.perf_counter() - started
    paths = sorted(folder.iterdir())[: sample or None]
    with Image.open(paths[0]) as first:  # the first call's one-off costs are not the rate's
        model.encode(first.convert("RGB"))
    decode = embed = 0.0
    for path in paths:
        t0 = time.perf_counter()
        img = Image.open(path)
        img.load()  # the full-size decode
        t1 = time.perf_counter()
        with torch.inference_mode():
            model.encode(img)
        embed += time.perf_counter() - t1
        decode += t1 - t0
    n = len(paths)
    print(json.dumps({
        "images": n, "images_per_s": n / (decode + embed), "decode_ms": decode / n * 1000,
        "embed_ms": embed / n * 1000, "load_s": loaded, "threads": torch.get_num_threads(),
    }))  # fmt: skip


# -- the decode ceiling ----------------------------------------------------------------------


def _decode(path: str) -> int:
    from lookalike.images import clip_ready

    return clip_ready(path, max_pixels=64_000_000).image.size[0]


def decode_ceiling(paths: list[Path], processes: int = 2) -> float:
    """images/s of lookalike's reduced-scale decode alone, in ``processes`` processes."""
    from concurrent.futures import ProcessPoolExecutor

    names = [str(p) for p in paths]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_decode, names[: processes * 2]))  # start and import first
        started = time.perf_counter()
        list(pool.map(_decode, names, chunksize=4))
        return len(names) / (time.perf_counter() - started)


# -- lookalike index, as a user runs it ------------------------------------------------------


def index_run(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """``lookalike index FOLDER --json`` in a fresh process: wall time and its report."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lookalike", "index", str(folder), "--json", "--quiet"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"lookalike index failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    report["wall_s"] = wall
    report["fixed_s"] = wall - report["embed_seconds"]
    job = report.get("query_export")
    if job:  # wait for the background export, so it disturbs nothing after
        report["export_after_exit_s"] = _wait_unlocked(Path(env["LOOKALIKE_HOME"]))
    return report


def _wait_unlocked(home: Path) -> float:
    """Seconds until the background query export for ``home`` ends (the library's wait)."""
    from lookalike.config import Settings
    from lookalike.query_export_job import wait_for_job

    started = time.perf_counter()
    wait_for_job(Settings(home=home), timeout=3600)
    return time.perf_counter() - started


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- the report ------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    ceilings = result["ceiling"]["runtimes"]
    print("\nmodel-only ceiling (images/s, pre-decoded 224x224, "
          f"{result['ceiling']['cores']} threads, best of {result['repeats']} at the start "
          "and the end of the run):")  # fmt: skip
    for name, entry in ceilings.items():
        rest = "  ".join(f"batch {b}: {v:6.2f}" for b, v in entry.items() if b != "cosine")
        print(f"  {name:<14} {rest}  (cosine to fp32 {entry['cosine']:.5f})")
    top = ceilings[BEST]["32"] if BEST in ceilings else max(e["32"] for e in ceilings.values())
    head = f"\n{'images':<18}{'n':>5}{'run':>6}{'wall s':>8}{'img/s':>8}{'x seed':>8}"
    print(f"{head}{'embed/s':>9}{'/ceil':>7}{'/min':>6}{'fixed s':>9}{'export s':>9}  core split")
    for kind, k in result["kinds"].items():
        n, seed = k["n"], k["seed"]["images_per_s"]
        low = min(top, k["decode_ceiling"]) if "decode_ceiling" in k else None
        line = f"{KINDS[kind]:<18}{n:>5}"
        print(f"{line}{'seed':>6}{n / seed:>8.1f}{seed:>8.2f}{1:>7.1f}x"
              f"   ({k['seed']['decode_ms']:.0f} ms decode + {k['seed']['embed_ms']:.0f} ms "
              f"encode per image, {k['seed']['threads']} threads)")  # fmt: skip
        for run in ("cold", "warm"):
            r = k[run]
            rate = n / r["wall_s"]
            emb = r["images_per_second"]
            vs_min = f"{emb / low:>6.2f}" if low else f"{'-':>6}"
            bg = r.get("export_after_exit_s")
            export = f"{bg:>9.1f}" if bg is not None else f"{'-':>9}"
            print(f"{'':<23}{run:>6}{r['wall_s']:>8.1f}{rate:>8.2f}{rate / seed:>7.1f}x"
                  f"{emb:>9.2f}{emb / top:>7.2f}{vs_min}{r['fixed_s']:>9.1f}{export}"
                  f"  {r.get('core_split', '-')}")  # fmt: skip
        if low:
            dec = k["decode_ceiling"]
            print(f"{'':<23}decode ceiling (2 processes, reduced-scale): "
                  f"{dec:.1f} images/s; min(model, decode) = {low:.1f}")  # fmt: skip
    flags = result["ceiling"]["cpu_flags"]
    print("\nimg/s and x seed: whole wall time of `lookalike index` (start to exit) per image; "
          "embed/s: the run's own decode-and-embed rate; /ceil: embed/s over the "
          f"{BEST} batch-32 ceiling ({top:.1f}); /min: over min(model, decode) ceiling; fixed s: "
          "wall minus the decode-and-embed phase (start, imports, scan, hash, model load); "
          "export s: the background query export, after index exited (not in wall).")  # fmt: skip
    said = ", ".join(f"{name}={'yes' if on else 'no'}" for name, on in flags.items())
    print(f"CPU flags: {said}")
    print(f"load average before {result['load_before']}, after {result['load_after']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--icons", type=int, default=1000, help="128 px PNG icons")
    parser.add_argument("--hd", type=int, default=200, help="1080p JPEGs")
    parser.add_argument("--photos", type=int, default=100, help="12 MP JPEGs")
    parser.add_argument("--kinds", default=",".join(KINDS), help="which kinds to run")
    parser.add_argument("--seed-sample", type=int, default=0, help="seed images (0: all)")
    parser.add_argument("--runtimes", default="", help="ceiling runtimes (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="ceiling: best of N")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--seed-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from make_random_models import make_random_models

    models = make_random_models(args.models)
    if args.seed_child:
        seed_child(args.seed_child, models["image"], args.seed_sample)
        return
    counts = {"icon": args.icons, "hd1080": args.hd, "photo12mp": args.photos}
    kinds = [k for k in args.kinds.split(",") if k and counts.get(k, 0) > 0]
    _bench_module("corpus").make_corpus(args.corpus, {k: counts[k] for k in kinds})
    result: dict[str, Any] = {"load_before": _load(), "repeats": args.repeats, "kinds": {}}
    print(f"models: {models['image']} (random weights, full size); corpus: {args.corpus}; "
          f"load average {result['load_before']}", flush=True)  # fmt: skip
    ceiling_args = ["bench/ceiling.py", "--models", str(args.models)]
    ceiling_args += ["--repeats", str(args.repeats)]
    if args.runtimes:
        ceiling_args += ["--runtimes", args.runtimes]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result["ceiling"] = _json_child(ceiling_args, env)
    print(f"ceiling: {json.dumps(result['ceiling']['runtimes'])}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lookalike-ingest-") as tmp:
        for kind in kinds:
            n = counts[kind]
            paths = sorted((args.corpus / kind).iterdir())[:n]
            folder = Path(tmp) / f"in-{kind}"  # exactly the first n files of the corpus
            folder.mkdir()
            for p in paths:
                os.symlink(p, folder / p.name)
            k: dict[str, Any] = {"n": n}
            if kind in PHOTOS:
                k["decode_ceiling"] = decode_ceiling(paths)
            sample = ["--seed-sample", str(args.seed_sample)]
            k["seed"] = _json_child(
                ["bench/ingest.py", "--seed-child", str(folder), "--models", str(args.models),
                 *sample], env,
            )  # fmt: skip
            home = Path(tmp) / f"home-{kind}"  # fresh: no exports, no caches
            k["cold"] = index_run(folder, _env(home, models, "cold"))
            k["warm"] = index_run(folder, _env(home, models, "warm"))
            result["kinds"][kind] = k
            seed, cold, warm = k["seed"]["images_per_s"], k["cold"]["wall_s"], k["warm"]["wall_s"]
            print(f"{kind}: seed {seed:.2f}/s, cold {cold:.1f} s, warm {warm:.1f} s", flush=True)
    # the ceiling again at the end: a busy spell at the start must not lower it
    again = _json_child(ceiling_args, env)
    print(f"ceiling again: {json.dumps(again['runtimes'])}", flush=True)
    for name, entry in again["runtimes"].items():
        first = result["ceiling"]["runtimes"][name]
        for key, value in entry.items():
            if key != "cosine":
                first[key] = max(first[key], value)
    result["load_after"] = _load()
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
