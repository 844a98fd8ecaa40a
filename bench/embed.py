"""Embedding runtimes on a full-size random-weight ViT-B/32: speed and fidelity, in one process.

    python bench/embed.py [--models DIR] [--images N] [--threads T] [--seconds S]

Builds (once, cached in DIR) random-weight clip-ViT-B-32 and multilingual models
with scripts/make_random_models.py, then compares, on the same weights and the same
pre-decoded 224x224 images:

* the reference runtime (sentence-transformers, fp32),
* torch-fast fp32 and torch-fast bf16 (bf16 is forced; on a CPU without bf16
  instructions it runs, slowly, and the table says so),

giving images/s at batch 1, 8 and 32 (batch 32 over the N fidelity images, the
others for about S seconds each), the lowest cosine and the mean top-10 neighbour
overlap against the reference over N images, and the p50 of one short text query.

Then the text paths, for the multilingual model and the CLIP text tower: torch-fast
fp32, ONNX fp32 and ONNX int8 (exported into a fresh cache, then loaded again from
it), with the p50 and p99 of one short query (timed round-robin, so all paths share
the machine's mood), the lowest cosine to the reference, the load time with a cold
cache (export included) and a warm one. ``--text`` runs this part alone.
The machine is shared and noisy: read the figures as ratios within one run.

``--model NAME`` (a preset, see ``lookalike models --available``) instead builds a
full-size random-weight instance of that preset's architecture (cached in DIR) and
prints, for the reference runtime and the default fast one, the load time, images/s
at batch 8 and 32 and the p50 of one short text query. ``--model all`` runs every
preset lookalike loads, one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds modules named like the standard library's (http.py): keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "scripts"))
DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")
QUERIES = ["a photo of a cat", "ein Hund am Strand", "rote Autos", "sunset over the mountains",
           "une maison bleue", "кошка", "一只猫", "a person on a beach at sunset"]  # fmt: skip


def photo_like(n: int, seed: int = 0) -> list:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cells = int(rng.integers(2, 7))
        coarse = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), "RGB")
        base = np.asarray(coarse.resize((224, 224), Image.Resampling.BICUBIC), np.int16)
        grain = rng.integers(-10, 11, (224, 224, 1))
        out.append(Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB"))
    return out


def rate(embed, images: list, batch: int, seconds: float) -> float:
    """images/s at ``batch`` images per call, for about ``seconds`` after one warm-up call."""
    embed(images[:batch])
    done, started = 0, time.perf_counter()
    while True:
        start = done % max(1, len(images) - batch)
        embed(images[start : start + batch])
        done += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def top10_overlap(a: np.ndarray, b: np.ndarray) -> float:
    shares = []
    for v in (a, b):
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        shares.append(np.argsort(-sims, axis=1)[:, :10])
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(*shares, strict=True)]))


def text_p50_ms(embedder, repeat: int = 5) -> float:
    embedder.embed_texts([QUERIES[0]])
    times = []
    for _ in range(repeat):
        for q in QUERIES:
            started = time.perf_counter()
            embedder.embed_texts([q])
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


LONG_TEXTS = ["", "фото кошки на пляже", "a red car parked in front of a blue house " * 20]


def text_paths(image_model: str, text_model: str, repeat: int, scratch: Path) -> None:
    """One short query through each text path: p50/p99, cosine to the reference, load times."""
    from lookalike.models.sentence import SentenceTransformerEmbedder

    reference = SentenceTransformerEmbedder(image_model, text_model)
    texts = QUERIES + LONG_TEXTS
    expected = reference.embed_texts(texts).astype(np.float64)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="onnx-") as cache:
        _text_table(image_model, text_model, repeat, Path(cache), texts, expected)


def _text_table(
    image_model: str,
    text_model: str,
    repeat: int,
    cache: Path,
    texts: list[str],
    expected: np.ndarray,
) -> None:
    import torch

    from lookalike.models.fast_torch import FastTorchEmbedder

    plans = {
        "torch-fast fp32": {"onnx_cache": None},
        "onnx fp32": {"onnx_cache": cache, "onnx_precision": "fp32"},
        "onnx int8": {"onnx_cache": cache, "onnx_precision": "int8"},
        "onnx int8 1thr": {"onnx_cache": cache, "onnx_precision": "int8", "onnx_threads": 1},
    }
    paths, loads = {}, {}
    for name, options in plans.items():
        times = []
        rounds = 2 if options["onnx_cache"] and "onnx_threads" not in options else 1
        for _ in range(rounds):  # cold (export), then cached
            embedder = FastTorchEmbedder(image_model, text_model, precision="fp32", **options)
            started = time.perf_counter()
            embedder.load_texts()
            times.append(time.perf_counter() - started)
        paths[name], loads[name] = embedder, times
        print(f"  {name}: {' '.join(embedder.runtime_for('text'))}", flush=True)
    # the same torch embedder with one torch thread (two stall when another process is busy)
    paths["torch-fast fp32 1thr"], loads["torch-fast fp32 1thr"] = paths["torch-fast fp32"], []
    threads = torch.get_num_threads()
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for embedder in paths.values():
        embedder.embed_texts([QUERIES[0]])
    for i in range(repeat):
        query = [QUERIES[i % len(QUERIES)]]
        for name, embedder in paths.items():
            torch.set_num_threads(1 if name.endswith("1thr") else threads)
            started = time.perf_counter()
            embedder.embed_texts(query)
            timings[name].append((time.perf_counter() - started) * 1000)
    torch.set_num_threads(threads)
    base = statistics.median(timings["torch-fast fp32"])
    print(f"\n{'text path':<21}{'active':<17}{'p50 ms':>8}{'p99 ms':>8}{'x torch':>8}"
          f"{'min cos':>10}{'load s':>8}{'cached s':>9}{'export s':>9}")  # fmt: skip
    for name, embedder in paths.items():
        got = embedder.embed_texts(texts).astype(np.float64)
        cos = float((got * expected).sum(1).min())
        p50, p99 = np.percentile(timings[name], [50, 99])
        cold, *warm = loads[name] or [float("nan")]
        cached = f"{warm[0]:>9.2f}{cold - warm[0]:>9.1f}" if warm else ""
        active = embedder.runtime_for("text")[0]
        print(f"{name:<21}{active:<17}{p50:>8.2f}{p99:>8.2f}{base / p50:>7.1f}x{cos:>10.5f}"
              f"{cold:>8.2f}{cached}")  # fmt: skip
    print(f"one short query per call (embed_texts: clean, tokenize, run, normalise), {threads} "
          "threads unless 1thr; load: load_texts() with a cold cache (export included) and a "
          "warm one; export = the difference.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument(
        "--images", type=int, default=200, help="fidelity set (and batch-32 timing)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: all usable cores)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="timing budget at batch 1 and 8")
    parser.add_argument("--text", action="store_true", help="the text paths only")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per text path")
    parser.add_argument("--model", help="a preset name (or 'all'): its cost on this machine")
    args = parser.parse_args()
    if args.model:
        presets_table(args)
        return

    import torch
    from make_random_models import make_random_models

    from lookalike.core_split import usable_cores
    from lookalike.models.cpu import cpu_features

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    models = make_random_models(args.models)
    image_model, text_model = str(models["image"]), str(models["text"])
    features = cpu_features()
    print(f"models: {image_model} + {text_model} (random weights, full size)")
    unit = "AMX-BF16" if features.amx_bf16 else "AVX512-BF16" if features.avx512_bf16 else "none"
    print(f"torch {torch.__version__}, {threads} threads; CPU bf16: {unit}")
    if not args.text:
        images_and_runtimes(image_model, text_model, threads, args)
    for text in (text_model, "clip"):
        print(f"\ntext model: {text}", flush=True)
        text_paths(image_model, text, args.queries, args.models.parent)


def images_and_runtimes(
    image_model: str, text_model: str, threads: int, args: argparse.Namespace
) -> None:
    import torch

    from lookalike.models.fast_torch import FastTorchEmbedder
    from lookalike.models.sentence import SentenceTransformerEmbedder

    runtimes = {
        "reference fp32": SentenceTransformerEmbedder(image_model, text_model, batch_size=32),
        "torch-fast fp32": FastTorchEmbedder(
            image_model, text_model, precision="fp32", batch_size=32
        ),
        "torch-fast bf16": FastTorchEmbedder(
            image_model, text_model, precision="bf16", batch_size=32
        ),
    }
    images = photo_like(args.images)
    rows, vectors = [], {}
    for name, embedder in runtimes.items():
        started = time.perf_counter()
        embedder.load()
        loaded = time.perf_counter() - started
        r1 = rate(embedder.embed_images, images, 1, args.seconds)
        r8 = rate(embedder.embed_images, images, 8, args.seconds)
        started = time.perf_counter()
        vectors[name] = embedder.embed_images(images)
        r32 = len(images) / (time.perf_counter() - started)
        torch.set_num_threads(1)
        p50_1 = text_p50_ms(embedder)
        torch.set_num_threads(threads)
        p50 = text_p50_ms(embedder)
        active = embedder.runtime_for("image")[0] if hasattr(embedder, "runtime_for") else name
        rows.append((name, active, loaded, r1, r8, r32, p50, p50_1))
        print(f"  {name}: done", flush=True)

    ref = vectors["reference fp32"].astype(np.float64)
    base32 = rows[0][5]
    print()
    print(f"{'runtime':<17}{'active path':<19}{'load s':>7}{'b=1':>8}{'b=8':>8}{'b=32':>8}"
          f"{'x ref':>7}{'min cos':>10}{'top-10':>8}{'text ms':>9}{'(1 thr)':>9}")  # fmt: skip
    for name, active, loaded, r1, r8, r32, p50, p50_1 in rows:
        v = vectors[name].astype(np.float64)
        cos = float((v * ref).sum(1).min())
        overlap = top10_overlap(vectors[name], vectors["reference fp32"])
        speed = f"{loaded:>7.1f}{r1:>8.1f}{r8:>8.1f}{r32:>8.1f}{r32 / base32:>6.1f}x"
        print(f"{name:<17}{active:<19}{speed}{cos:>10.5f}{overlap:>8.3f}{p50:>9.1f}{p50_1:>9.1f}")
    print(f"\nimages/s on pre-decoded 224x224 images; cosine and top-10 over {len(images)} images "
          "against the reference; text: p50 of one short query (multilingual model), all threads "
          "and 1 thread.")  # fmt: skip


def preset_folders(name: str, models: Path) -> tuple[str, str]:
    """(image model, text model) folders of a full-size random instance of preset ``name``."""
    import shutil

    from make_random_models import make_random_models

    from lookalike.models.testing import build_random_hf_clip
    from lookalike.models.testing_siglip import build_random_siglip

    seed = make_random_models(models)
    builders = {
        "laion-b32": lambda f: build_random_hf_clip(f, size="base"),
        "datacomp-b32-256": lambda f: build_random_hf_clip(f, size="base", image_size=256),
        "siglip-b16": lambda f: build_random_siglip(f, size="base", vocab_size=32_000),
        "siglip2-b16": lambda f: build_random_siglip(f, size="base"),
    }
    if name == "seed":
        return str(seed["image"]), str(seed["text"])
    if name == "openai-b32":
        return str(seed["image"]), "clip"
    folder = models / f"{name}-random"
    if not (folder / "config.json").is_file():
        staging = models / f".{name}-building"
        shutil.rmtree(staging, ignore_errors=True)
        builders[name](staging)
        staging.rename(folder)
    return str(folder), "clip"


def presets_table(args: argparse.Namespace) -> None:
    """Each preset's cost here: reference and default runtimes, images/s, text p50."""
    import torch

    from lookalike.config import Settings
    from lookalike.core_split import usable_cores
    from lookalike.models import create_embedder
    from lookalike.presets import PRESETS

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    loadable = {"datacomp-b32-256"}  # measured as the converted transformers folder it needs
    names = list(PRESETS) if args.model == "all" else [args.model]
    if any(n not in PRESETS for n in names):
        sys.exit(f"unknown preset {args.model!r}: use one of {', '.join(PRESETS)} or 'all'")
    images = photo_like(args.images)
    print(f"{'preset':<18}{'runtime':<30}{'image path':<20}{'load s':>7}{'b=8':>8}{'b=32':>8}"
          f"{'text p50 ms':>12}")  # fmt: skip
    for name in names:
        if not PRESETS[name].loadable and name not in loadable:
            print(f"{name:<18}not loadable here (open_clip format only)")
            continue
        image_model, text_model = preset_folders(name, args.models)
        with tempfile.TemporaryDirectory(dir=args.models.parent, prefix="home-") as home:
            for runtime in ("torch", "auto"):
                settings = Settings(
                    home=Path(home), image_model=image_model, text_model=text_model,
                    runtime=runtime, batch_size=32,
                )  # fmt: skip
                embedder = create_embedder(settings)
                started = time.perf_counter()
                embedder.load()
                loaded = time.perf_counter() - started
                side = embedder.image_prep.size  # type: ignore[attr-defined]
                sized = [im.resize((side, side)) for im in images]
                r8 = rate(embedder.embed_images, sized, 8, args.seconds)
                started = time.perf_counter()
                embedder.embed_images(sized)
                r32 = len(sized) / (time.perf_counter() - started)
                p50 = text_p50_ms(embedder)
                path = embedder.runtime_for("image")[0] if hasattr(embedder, "runtime_for") else "-"
                text_path = (
                    embedder.runtime_for("text")[0] if hasattr(embedder, "runtime_for") else ""
                )
                print(f"{name:<18}{runtime + ' / ' + text_path:<30}{path:<20}{loaded:>7.1f}"
                      f"{r8:>8.1f}{r32:>8.1f}{p50:>12.1f}", flush=True)  # fmt: skip
                del embedder
    print(
        f"\nimages/s on pre-sized random photos ({len(images)} for b=32), {threads} threads; "
        "text: p50 of one short query; random weights at full size (cost only)."
    )


if __name__ == "__main__":
    main()
