"""Ingest throughput: the seed's pipeline against lookalike's, in the same process, same weights.

    python bench/ingest.py [--photos N] [--hd N] [--icons N] [--seed-sample N]
                           [--models DIR] [--corpus DIR] [--no-rss]

Generates (once, cached in --corpus) a mixed corpus with bench/corpus.py: 12 MP
camera-like JPEGs, 1080p JPEGs and 128x128 PNG icons, and builds (once) a
random-weight ViT-B/32 with scripts/make_random_models.py. Then, per kind:

(a) the seed's pipeline, reproduced: ``Image.open`` + full decode with Pillow, then
    ``SentenceTransformer.encode`` on that one image, fp32, one image at a time
    (torch's default threads; and again on 1 thread, its best case on a busy machine).
    It has no batching and no state, so its rate is measured on the first
    --seed-sample images of each kind;
(b) lookalike's pipeline: the real ``Indexer`` (scan, hash, reduced-size decoding in
    worker processes, batched embedding with the default runtime, SQLite store) into
    a fresh collection;
(c) the model-only ceiling of lookalike's runtime: ``embed_images`` on pre-decoded
    224x224 images, batch 32, the better of 1 thread and all cores.

Each kind is measured in --rounds interleaved rounds (ceiling, seed, lookalike), and
the speed-up and the fraction of the ceiling are taken within each round, then the
median over rounds: on a shared machine the speed of everything drifts by several
times within minutes. Prints images/s for each, lookalike's speed-up over the seed,
its fraction of the ceiling, and the core split the indexer went through. Then,
unless --no-rss, the peak RSS of a whole ingest of the photo folder (a fresh process
running the indexer, plus its decode workers), sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds modules named like the standard library's (http.py): keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "scripts"))
# Nothing heavy is imported at module level: decode workers are spawned processes
# that import this module again.

DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")
DEFAULT_CORPUS = Path("/tmp/lookalike-bench/corpus")
KINDS = {"photo12mp": "12 MP JPEG", "hd1080": "1080p JPEG", "icon": "128 px PNG icon"}
GOALS = {"photo12mp": 10.0, "icon": 5.0}


def seed_model(model_dir: Path):
    """The seed's model: SentenceTransformer as loaded (fp32), torch's default threads."""
    from sentence_transformers import SentenceTransformer

    from lookalike.models.sentence import _quiet_loading

    with _quiet_loading():
        return SentenceTransformer(str(model_dir), device="cpu")


def seed_pipeline(model, paths: list[Path]) -> tuple[float, float, float]:
    """The seed's loop. Returns (images/s, decode ms per image, embed ms per image)."""
    import torch
    from PIL import Image

    decode = embed = 0.0
    with Image.open(paths[0]) as warm:
        model.encode(warm.convert("RGB"))
    for path in paths:
        started = time.perf_counter()
        img = Image.open(path)
        img.load()  # the full-size decode
        decoded = time.perf_counter()
        with torch.inference_mode():
            model.encode(img)
        embed += time.perf_counter() - decoded
        decode += decoded - started
    n = len(paths)
    return n / (decode + embed), decode / n * 1000, embed / n * 1000


@contextlib.contextmanager
def one_thread():
    """The seed's loop again with 1 torch thread: its best case when another process holds a
    core (its default 2 threads then stall each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def lookalike_pipeline(settings, embedder, folder: Path) -> tuple[float, str]:
    """Index ``folder`` into a fresh collection. Returns (images/s, the core split's history)."""
    from lookalike.collection import Collection

    with Collection(settings, embedder=embedder) as col:
        indexer = col.indexer
        report = indexer.index([folder])
    assert report.indexed > 0 and not report.skipped, report.to_dict()
    split = indexer.split
    history = " > ".join(f"{s.workers}w/{s.threads}t" for s in split.history) if split else "-"
    return report.images_per_second, history


def ceiling(embedder, batch: int, seconds: float) -> float:
    """images/s of the runtime alone on pre-decoded 224x224 images: the best of 1 thread
    and all cores (on a busy machine all cores can be far slower than one)."""
    import numpy as np
    import torch
    from PIL import Image

    from lookalike.core_split import usable_cores

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), "RGB")
        for _ in range(batch)
    ]
    before = torch.get_num_threads()
    best = 0.0
    try:
        for threads in sorted({1, usable_cores()}):
            torch.set_num_threads(threads)
            embedder.embed_images(images)  # warm-up
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds / 2:
                embedder.embed_images(images)
                done += batch
            best = max(best, done / (time.perf_counter() - started))
        return best
    finally:
        torch.set_num_threads(before)


def make_settings(home: Path, models: dict[str, Path], batch: int):
    from lookalike.config import Settings

    return Settings(
        home=home,
        image_model=str(models["image"]),
        text_model=str(models["text"]),
        batch_size=batch,
    )


# -- peak RSS in a fresh process ----------------------------------------------------------


def rss_child(folder: Path, models: dict[str, Path], batch: int) -> None:
    """Run one ingest of ``folder`` and print {"peak_mb": ..., "images": ...} as JSON."""
    import psutil

    me = psutil.Process()
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    total += proc.memory_info().rss
            peak = max(peak, total)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    from lookalike.models import create_embedder

    with tempfile.TemporaryDirectory() as home:
        settings = make_settings(Path(home), models, batch)
        speed, history = lookalike_pipeline(settings, create_embedder(settings), folder)
    stop.set()
    sampler.join()
    print(json.dumps({"peak_mb": peak / 2**20, "images_per_s": speed, "split": history}))


def peak_rss(folder: Path, models: dict[str, Path], batch: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--rss-child",
        str(folder),
        "--models",
        str(models["image"].parent),
    ]
    out = subprocess.run(
        cmd + ["--batch", str(batch)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the report ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=60, help="12 MP JPEGs")
    parser.add_argument("--hd", type=int, default=100, help="1080p JPEGs")
    parser.add_argument("--icons", type=int, default=300, help="128x128 PNG icons")
    parser.add_argument("--seed-sample", type=int, default=20, help="images per kind for (a)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--ceiling-seconds", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS run")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from make_random_models import make_random_models

    make_corpus = _bench_module("corpus").make_corpus

    models = make_random_models(args.models)
    if args.rss_child:
        rss_child(args.rss_child, models, args.batch)
        return

    from lookalike.core_split import usable_cores
    from lookalike.models import create_embedder

    counts = {"photo12mp": args.photos, "hd1080": args.hd, "icon": args.icons}
    started = time.perf_counter()
    make_corpus(args.corpus, {k: n for k, n in counts.items() if n > 0})
    print(f"corpus: {args.corpus} ({time.perf_counter() - started:.0f} s to generate or check)")
    print(f"models: {models['image']} (random weights, ViT-B/32 full size); "
          f"{usable_cores()} cores")  # fmt: skip

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp) / "warm", models, args.batch)
        embedder = create_embedder(settings)
        embedder.load_images()
        runtime, why = embedder.runtime_for("image")  # type: ignore[attr-defined]
        print(f"lookalike runtime: {runtime} ({why})")
        seed = seed_model(models["image"])
        for kind, n in counts.items():
            if n <= 0:
                continue
            paths = sorted((args.corpus / kind).iterdir())[:n]
            folder = Path(tmp) / f"in-{kind}"  # exactly the first n files of the cached corpus
            folder.mkdir()
            for p in paths:
                os.symlink(p, folder / p.name)
            for r in range(args.rounds):  # interleaved, so a busy spell hits all three alike
                top = ceiling(embedder, args.batch, args.ceiling_seconds)
                sample = paths[: args.seed_sample]
                seed_rate, dec_ms, emb_ms = seed_pipeline(seed, sample)
                with one_thread():
                    seed_1t = seed_pipeline(seed, sample)[0]
                ours, history = lookalike_pipeline(
                    make_settings(Path(tmp) / f"{kind}-{r}", models, args.batch), embedder, folder
                )
                rows.append((kind, n, r, top, seed_rate, seed_1t, dec_ms, emb_ms, ours, history))
                print(f"  {kind} round {r + 1}: seed {seed_rate:.2f}/s (1 thread {seed_1t:.2f}/s), "
                      f"lookalike {ours:.1f}/s, ceiling {top:.1f}/s", flush=True)  # fmt: skip
        rss = None
        if not args.no_rss and counts["photo12mp"] > 0:
            rss = peak_rss(Path(tmp) / "in-photo12mp", models, args.batch)

    print()
    head = f"{'images':<16}{'n':>4}{'rd':>3}{'seed':>7}{'(dec+emb ms)':>14}{'seed 1t':>8}"
    print(f"{head}{'ours':>6}{'ceil.':>6}{'x seed':>7}{'x 1t':>6}{'of ceil.':>9}  core split")
    for kind, n, r, top, seed_rate, seed_1t, dec_ms, emb_ms, ours, history in rows:
        ms = f"({dec_ms:.0f}+{emb_ms:.0f})"
        print(f"{KINDS[kind]:<16}{n:>4}{r + 1:>3}{seed_rate:>7.2f}{ms:>14}{seed_1t:>8.2f}"
              f"{ours:>6.1f}{top:>6.1f}{ours / seed_rate:>6.1f}x{ours / seed_1t:>5.1f}x"
              f"{ours / top:>9.2f}  {history}")  # fmt: skip
    print("\nmedians over the rounds (each ratio taken within its round):")
    for kind in counts:
        mine = [row for row in rows if row[0] == kind]
        if not mine:
            continue
        speedup = statistics.median(row[8] / row[4] for row in mine)
        speedup_1t = statistics.median(row[8] / row[5] for row in mine)
        of_top = statistics.median(row[8] / row[3] for row in mine)
        goal = f" (goal >= {GOALS[kind]:.0f}x)" if kind in GOALS else ""
        goal_top = " (goal >= 0.8)" if kind == "icon" else ""
        print(f"  {KINDS[kind]:<16} {speedup:5.1f}x the seed{goal:<16}({speedup_1t:.1f}x the seed "
              f"on 1 thread)  {of_top:5.2f} of the ceiling{goal_top}")  # fmt: skip
    print(f"\nceiling: {runtime}, batch {args.batch}, pre-decoded 224x224, best of 1 thread and "
          "all cores. lookalike's "
          "figures include scanning, hashing, decoding, embedding and SQLite writes.")  # fmt: skip

    if rss is not None:
        print(f"\npeak RSS, whole ingest of {counts['photo12mp']} 12 MP photos in a fresh process "
              f"(main + decode workers): {rss['peak_mb']:.0f} MB (goal < 1536 MB); "
              f"{rss['images_per_s']:.1f} images/s, split {rss['split']}")  # fmt: skip


if __name__ == "__main__":
    main()
