"""Region search: does a small symbol in a large photo come back for an image of the symbol?

    python bench/regions.py [--scenes N] [--megapixels MP] [--model DIR] [--work DIR]

Generates (cached in --work) large cluttered scenes (12 MP JPEGs by default: a smooth
random field with per-pixel noise under a few hundred random shapes). Half of them get
one of two symbols painted by scripts/make_samples.py (the green recycling arrows, the
estimated-quantity mark) pasted at 1-5 % of the area, at a random place, scale and
rotation; the other half have none. The same folder is indexed twice with the real
Indexer: into a plain collection and into one with ``--regions``. Each symbol, drawn
clean and upright, is then the image query; the right answers are the scenes holding it.

Prints, for whole-image search and for region search: recall@10, the AUC (the chance
that a scene holding the symbol outscores one without it: 0.5 is no signal), the mean
score of the right scenes and of the best wrong one, and for region hits how often the reported box
holds the symbol's centre; then the ingest time ratio (regions / plain, same run),
vectors per image and bytes per image (on disk, and the vectors held in memory).

Weights: full-size random ViT-B/32 (scripts/make_random_models.py, built once into
/tmp/lookalike-bench/models) unless ``--model`` names real weights (a folder or a Hub
id in the cache). Random weights carry no meaning, but a pasted copy of the query's
pixels still gives a tile close to the query: that is the only signal here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds modules named like the standard library's: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "scripts"))

DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")
DEFAULT_WORK = Path("/tmp/lookalike-bench/regions")
K = 10


@dataclass
class Placed:
    symbol: str
    box: tuple[float, float, float, float]  # fractions of the scene


def _samples() -> Any:
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "scripts/make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def symbols() -> dict[str, Any]:
    """The two query symbols, clean and upright, 400 px."""
    samples = _samples()
    return {
        "recycle": samples.recycle_circular(400, samples.GREEN, samples.WHITE),
        "e-mark": samples.e_mark(400, samples.BLACK, samples.WHITE),
    }


def clutter(w: int, h: int, rng: random.Random) -> Any:
    """A cluttered background: smooth random colour field, fine noise, many random shapes."""
    import numpy as np
    from PIL import Image, ImageDraw

    gen = np.random.default_rng(rng.randrange(2**32))
    base = gen.integers(0, 256, (max(2, h // 250), max(2, w // 250), 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), np.int16)
    noise = gen.integers(-14, 15, (h, w, 1), dtype=np.int16)
    im = Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(300):
        x, y = rng.randrange(w), rng.randrange(h)
        s = rng.randrange(w // 80, w // 12)
        colour = tuple(rng.randrange(256) for _ in range(3))
        kind = rng.random()
        if kind < 0.4:
            draw.rectangle((x, y, x + s, y + rng.randrange(s // 4, s)), fill=colour)
        elif kind < 0.7:
            draw.ellipse((x, y, x + s, y + s), outline=colour, width=max(2, s // 10))
        else:
            draw.line((x, y, x + rng.randrange(-s, s), y + rng.randrange(-s, s)), colour, s // 8)
    return im


def paste(scene: Any, symbol: Any, rng: random.Random) -> tuple[float, float, float, float]:
    """Paste ``symbol`` at 1-5 % of the scene's area, rotated, at a random place."""
    from PIL import Image

    w, h = scene.size
    side = int(math.sqrt(rng.uniform(0.01, 0.05) * w * h))
    sym = symbol.resize((side, side), Image.Resampling.BICUBIC)
    mask = Image.new("L", sym.size, 255)
    angle = rng.uniform(-35, 35)
    sym = sym.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    mask = mask.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    x, y = rng.randrange(0, w - sym.width), rng.randrange(0, h - sym.height)
    scene.paste(sym, (x, y), mask)
    return (x / w, y / h, (x + sym.width) / w, (y + sym.height) / h)


def make_scenes(folder: Path, count: int, megapixels: float, seed: int) -> dict[str, Placed]:
    """Write the scenes (reused when already there); returns {path: where the symbol is}."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "placed.json"
    if manifest.exists():
        raw = json.loads(manifest.read_text())
        if raw.get("key") == [count, megapixels, seed]:
            return {p: Placed(v["symbol"], tuple(v["box"])) for p, v in raw["placed"].items()}
    for old in folder.glob("*.jpg"):
        old.unlink()
    rng = random.Random(seed)
    w = int(math.sqrt(megapixels * 1e6 * 4 / 3))
    h = w * 3 // 4
    marks = symbols()
    names = sorted(marks)
    placed: dict[str, Placed] = {}
    for i in range(count):
        scene = clutter(w, h, rng)
        path = folder / f"scene-{i:03d}.jpg"
        if i % 2 == 0:  # every other scene holds a symbol, the two symbols in turn
            name = names[(i // 2) % len(names)]
            placed[path.as_posix()] = Placed(name, paste(scene, marks[name], rng))
        scene.save(path, quality=90)
    data = {p: {"symbol": v.symbol, "box": list(v.box)} for p, v in placed.items()}
    manifest.write_text(json.dumps({"key": [count, megapixels, seed], "placed": data}))
    return placed


def index(
    settings: Any, embedder: Any, folder: Path, *, regions: bool, grids: tuple[int, ...] = (2, 3)
) -> tuple[float, dict[str, Any]]:
    """Index ``folder`` into a fresh collection; (seconds, store stats). The embedder is
    shared and already loaded, so neither run pays for loading the model."""
    from lookalike.collection import Collection

    with Collection(settings, embedder=embedder) as col:
        col.store.drop()
    with Collection(settings, embedder=embedder) as col:
        if regions:
            from lookalike.regions import RegionSpec

            col.store.set_region_spec(RegionSpec(grids=grids))
        started = time.perf_counter()
        col.indexer.index([folder], regions=regions)
        seconds = time.perf_counter() - started
        stats = col.store.stats()
        return seconds, {"documents": stats.documents, "bytes": stats.index_bytes, **stats.details}


def evaluate(
    settings: Any, embedder: Any, placed: dict[str, Placed], *, regions: bool
) -> dict[str, float]:
    """recall@10, mean score of right and best wrong scenes, box hits (region search)."""
    from lookalike.collection import Collection
    from lookalike.search import Query

    recalls, right_scores, wrong_scores, centred, boxed, aucs = [], [], [], 0, 0, []
    with Collection(settings, embedder=embedder) as col:
        for name, image in symbols().items():
            truth = {p for p, v in placed.items() if v.symbol == name}
            hits = col.searcher.search(Query(images=[image], k=K, regions=regions))
            top = [h.path for h in hits]
            recalls.append(len(truth & set(top)) / len(truth))
            every = col.searcher.search(Query(images=[image], k=100, regions=regions))
            right_scores += [h.score for h in every if h.path in truth]
            right = [h.score for h in every if h.path in truth]
            wrong = [h.score for h in every if h.path not in truth]
            wrong_scores.append(max(wrong) if wrong else float("nan"))
            # AUC: the chance that a right scene outscores a wrong one (0.5: no signal)
            pairs = [(r > w) + 0.5 * (r == w) for r in right for w in wrong]
            aucs.append(sum(pairs) / len(pairs) if pairs else float("nan"))
            for h in hits:
                if h.path in truth and h.region is not None:
                    boxed += 1
                    x0, y0, x1, y1 = placed[h.path].box
                    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                    rx0, ry0, rx1, ry1 = h.region
                    centred += rx0 <= cx <= rx1 and ry0 <= cy <= ry1
    return {
        "recall_at_10": sum(recalls) / len(recalls),
        "mean_right_score": sum(right_scores) / max(1, len(right_scores)),
        "mean_best_wrong_score": sum(wrong_scores) / len(wrong_scores),
        "auc": sum(aucs) / len(aucs),
        "region_hits_on_right_scenes": boxed,
        "boxes_holding_the_symbol": centred,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenes",
        type=int,
        default=40,
        help="scenes (half hold a symbol); 200 for a firmer figure",
    )
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--model", help="real image weights: a folder or a cached Hub id")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="random models here")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--grids", default="2,3", help="region grids, e.g. 2,3 or 2,3,4")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from lookalike.config import Settings

    if args.model:
        image_model = args.model
    else:
        from make_random_models import make_random_models

        image_model = str(make_random_models(args.models)["image"])
    started = time.perf_counter()
    folder = args.work / "scenes"
    placed = make_scenes(folder, args.scenes, args.megapixels, args.seed)
    made = time.perf_counter() - started
    base = Settings(home=args.work / "home", image_model=image_model, batch_size=args.batch)
    plain = base.with_overrides(collection="plain")
    tiled = base.with_overrides(collection="regions")
    from lookalike.models import create_embedder

    embedder = create_embedder(base)
    embedder.embed_images(list(symbols().values()))  # load and warm up before any clock
    plain_s, plain_stats = index(plain, embedder, folder, regions=False)
    grids = tuple(int(g) for g in args.grids.split(","))
    tiled_s, tiled_stats = index(tiled, embedder, folder, regions=True, grids=grids)
    whole = evaluate(plain, embedder, placed, regions=False)
    region = evaluate(tiled, embedder, placed, regions=True)
    docs = max(1, plain_stats["documents"])
    regions_info = tiled_stats["regions"]
    figures = {
        "scenes": args.scenes,
        "with_symbol": len(placed),
        "megapixels": args.megapixels,
        "model": "random ViT-B/32" if not args.model else args.model,
        "grids": list(grids),
        "load": os.getloadavg()[0],
        "whole_image": whole,
        "regions": region,
        "chance_recall_at_10": min(1.0, K / args.scenes),
        "ingest_seconds": {"plain": round(plain_s, 1), "regions": round(tiled_s, 1)},
        "ingest_time_ratio": round(tiled_s / plain_s, 2),
        "embed_time_ratio": regions_info["embed_time_ratio"],
        "vectors_per_image": regions_info["vectors_per_image"],
        "bytes_per_image_on_disk": {
            "plain": round(plain_stats["bytes"] / docs),
            "regions": round(tiled_stats["bytes"] / docs),
            "region_rows_only": round(regions_info["region_db_bytes"] / docs),
        },
        "vector_bytes_per_image_in_memory": {
            "plain": round(regions_info["whole_ram_bytes"] / docs),
            "regions": round(
                (regions_info["whole_ram_bytes"] + regions_info["region_ram_bytes"]) / docs
            ),
            "regions_if_float32": round(
                regions_info["whole_ram_bytes"] / docs * regions_info["vectors_per_image"]
            ),
        },
        "scene_generation_seconds": round(made, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{args.scenes} scenes of {args.megapixels:g} MP, {len(placed)} with a symbol; "
        f"{figures['model']}; grids {args.grids}; load {figures['load']:.1f}"
    )
    print(f"{'':22}{'recall@10':>10}{'AUC':>7}{'right':>8}{'best wrong':>12}")
    for label, m in (("whole-image search", whole), ("region search", region)):
        print(
            f"{label:22}{m['recall_at_10']:>10.2f}{m['auc']:>7.2f}{m['mean_right_score']:>8.3f}"
            f"{m['mean_best_wrong_score']:>12.3f}"
        )
    print(
        f"(chance: recall@10 {figures['chance_recall_at_10']:.2f}, AUC 0.50; right: mean score "
        "of the scenes holding the symbol, best wrong: the best scene without it)"
    )
    print(
        f"region hits on right scenes: {region['region_hits_on_right_scenes']}, "
        f"box holds the symbol's centre: {region['boxes_holding_the_symbol']}"
    )
    print(
        f"ingest: {plain_s:.1f} s plain, {tiled_s:.1f} s with regions "
        f"(x{figures['ingest_time_ratio']}; embedding x{figures['embed_time_ratio']})"
    )
    mem = figures["vector_bytes_per_image_in_memory"]
    disk = figures["bytes_per_image_on_disk"]
    print(
        f"vectors per image: {figures['vectors_per_image']}\n"
        f"bytes per image on disk: {disk['plain']:,} plain, {disk['regions']:,} with regions "
        f"(the region rows themselves: {disk['region_rows_only']:,}; a small collection is "
        "dominated by fixed SQLite overhead)\n"
        f"vector bytes per image in memory: {mem['plain']:,} plain, {mem['regions']:,} with "
        f"int8 regions ({mem['regions_if_float32']:,} if they were float32)"
    )


if __name__ == "__main__":
    main()
