#!/usr/bin/env python
"""Measure the duplicate thresholds instead of guessing them.

    python bench/duplicate_thresholds.py [--model DIR_OR_HUB_NAME] [--originals 24] [--out DIR]

Generates the sample pictures (scripts/make_samples.py), then for each one edits
that must count as near-duplicates (JPEG quality 30-95, resize 25-200 %, crop up
to 10 %, a small rotation, a text overlay, a colour shift) and a burst of similar
shots (the same scene framed 8-20 % differently and a little brighter or darker).
Every file is decoded and embedded the way the indexer does it. For each kind it
prints the cosine threshold with the best F1 over all pairs (a pair is positive
when both files come from the same original for near, the same scene for
similar), its precision and recall, the same with the difference-hash check for
near, and how far apart the positive and negative cosines lie (how much signal
the model gives). Without ``--model`` it builds the full-size random-weight ViT-B/32.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from make_samples import generate_samples, photo_like  # noqa: E402

from lookalike.duplicates.find import HASH_MAX_BITS  # noqa: E402
from lookalike.duplicates.pixels import hash_distance, phash  # noqa: E402

MAX_PIXELS = 100_000_000


def edits(im: Image.Image, rng: random.Random) -> dict[str, tuple[Image.Image, dict[str, int]]]:
    """Near-duplicate edits of one picture, each with the JPEG options it is saved with."""
    w, h = im.size
    out: dict[str, tuple[Image.Image, dict[str, int]]] = {}
    for q in (30, 60, 95):
        out[f"jpeg{q}"] = (im, {"quality": q})
    for pct in (25, 50, 200):
        size = (max(8, w * pct // 100), max(8, h * pct // 100))
        out[f"resize{pct}"] = (im.resize(size, Image.Resampling.BICUBIC), {"quality": 90})
    for pct in (5, 10):
        dx, dy = w * pct // 200, h * pct // 200
        out[f"crop{pct}"] = (im.crop((dx, dy, w - dx, h - dy)), {"quality": 90})
    angle = rng.choice((-3, -2, 2, 3))
    out["rotate"] = (im.rotate(angle, Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)), {})
    marked = im.copy()
    ImageDraw.Draw(marked).text((w // 20, h - h // 8), "(c) lookalike 2026", fill=(255, 255, 255))
    out["text"] = (marked, {"quality": 90})
    out["colour"] = (ImageEnhance.Color(im).enhance(1.4), {"quality": 90})
    return out


def burst(scene: Image.Image, rng: random.Random, shots: int = 4) -> list[Image.Image]:
    """Similar shots: one scene framed 8-20 % differently, a little brighter or darker."""
    w, h = scene.size
    cw, ch = int(w * 0.75), int(h * 0.75)
    out = []
    for _ in range(shots):
        x = rng.randint(0, w - cw)
        y = rng.randint(0, h - ch)
        shot = scene.crop((x, y, x + cw, y + ch))
        out.append(ImageEnhance.Brightness(shot).enhance(rng.uniform(0.85, 1.15)))
    return out


def write_set(folder: Path, originals: int) -> tuple[list[Path], list[str], list[str], np.ndarray]:
    """Files, the original each is an edit of (near), the scene it belongs to (similar), and
    when each was taken: bursts a couple of seconds apart, and some unrelated pictures
    taken during a burst (so the time alone does not make a group)."""
    rng = random.Random(13)
    files: list[Path] = []
    near: list[str] = []
    scene: list[str] = []
    times: list[float] = []
    scenes = max(4, originals // 3)
    sources = generate_samples(folder / "originals", originals)
    for k in range(originals):  # photo-like scenes too: the samples are drawings alike in kind
        path = folder / "originals" / "photos" / f"scene-{k:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo_like(random.Random(f"original-{k}"), 480, 360).save(path, "JPEG", quality=92)
        sources.append(path)
    for k, src in enumerate(sources):
        with Image.open(src) as opened:
            im = opened.convert("RGB")
        at = 500_000 + (k % scenes) * 1000 + 5 if k % 3 == 0 else k * 3600
        files.append(src)
        near.append(src.stem)
        scene.append(src.stem)
        times.append(at)
        for e, (name, (edited, options)) in enumerate(edits(im, rng).items()):
            path = folder / "edits" / f"{src.stem}-{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            edited.convert("RGB").save(path, "JPEG", **options)
            files.append(path)
            near.append(src.stem)
            scene.append(src.stem)
            times.append(at + 60 * (e + 1))  # edited later: not a burst
    for b in range(scenes):
        big = photo_like(random.Random(f"scene-{b}"), 800, 600)
        for s, shot in enumerate(burst(big, rng)):
            path = folder / "bursts" / f"scene{b:02d}-{s}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            shot.save(path, "JPEG", quality=90)
            files.append(path)
            near.append(path.stem)  # each shot is its own picture
            scene.append(f"scene{b}")
            times.append(500_000 + b * 1000 + 2 * s)
    return files, near, scene, np.array(times)


def embed(files: list[Path], model: str, batch: int = 16) -> np.ndarray:
    from lookalike.config import Settings
    from lookalike.images import clip_ready
    from lookalike.models import create_embedder

    embedder = create_embedder(Settings(image_model=model, text_model=model))
    out = []
    for start in range(0, len(files), batch):
        images = [
            clip_ready(str(f), max_pixels=MAX_PIXELS).image for f in files[start : start + batch]
        ]
        out.append(embedder.embed_images(images))
    return np.concatenate(out)


def best_threshold(sims: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(threshold, precision, recall) with the best F1 over the observed cosines."""
    order = np.argsort(-sims)
    s, t = sims[order], truth[order]
    tp = np.cumsum(t)
    precision = tp / np.arange(1, len(t) + 1)
    recall = tp / max(1, t.sum())
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    i = int(np.argmax(f1))
    return float(s[i]), float(precision[i]), float(recall[i])


def pr(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of a prediction over pairs."""
    tp = int((pred & truth).sum())
    return tp / max(1, int(pred.sum())), tp / max(1, int(truth.sum()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="image model (hub name or folder); default: random ViT-B/32")
    ap.add_argument("--originals", type=int, default=24, help="sample pictures to edit")
    ap.add_argument("--out", type=Path, help="keep the generated files here")
    ap.add_argument("--burst-seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dupthr-") as tmp:
        work = args.out or Path(tmp)
        model = args.model
        if model is None:
            from lookalike.models.testing import build_random_clip

            started = time.perf_counter()
            model = str(build_random_clip(Path(tmp) / "vit-b32", size="base", dim=512))
            print(f"built random-weight ViT-B/32 in {time.perf_counter() - started:.0f} s")
        files, near, scene, times = write_set(work, args.originals)
        started = time.perf_counter()
        cached = work / "vectors.npy"
        if args.out and cached.exists() and len(np.load(cached)) == len(files):
            vectors = np.load(cached)  # the same generated files: reuse their vectors
        else:
            vectors = embed(files, model)
            np.save(cached, vectors)
        print(f"{len(files)} files embedded in {time.perf_counter() - started:.0f} s ({model})")
        hashes = [phash(str(f), max_pixels=MAX_PIXELS) for f in files]
    n = len(files)
    i, j = np.triu_indices(n, 1)
    sims = np.einsum("ij,ij->i", vectors[i], vectors[j])
    near_a, scene_a = np.array(near), np.array(scene)
    is_near = near_a[i] == near_a[j]
    is_scene = (scene_a[i] == scene_a[j]) & ~is_near
    bits = np.array(
        [hash_distance(hashes[a] or 0, hashes[b] or 0) for a, b in zip(i, j, strict=True)]
    )
    print(f"pairs: {len(sims)}; near {int(is_near.sum())}, similar {int(is_scene.sum())}")
    print(f"cosine of near pairs: mean {sims[is_near].mean():.4f} min {sims[is_near].min():.4f}")
    others = ~is_near & ~is_scene
    print(f"cosine of unrelated pairs: mean {sims[others].mean():.4f} "
          f"p99 {np.quantile(sims[others], 0.99):.4f} max {sims[others].max():.4f}")  # fmt: skip
    shots = sims[is_scene]
    print(f"cosine of similar-shot pairs: mean {shots.mean():.4f} min {shots.min():.4f}")
    print(f"pHash bits apart: near p95 {np.quantile(bits[is_near], 0.95):.0f}, "
          f"unrelated p1 {np.quantile(bits[others], 0.01):.0f} "
          f"(gate {HASH_MAX_BITS})")  # fmt: skip

    t, p, r = best_threshold(sims, is_near)
    print(f"near     cosine alone: threshold {t:.4f} precision {p:.3f} recall {r:.3f}")
    for gate in (8, 12, 16, 20, 24):
        g = np.where(bits <= gate, sims, -1.0)
        tg, pg, rg = best_threshold(g, is_near)
        print(f"near     cosine + pHash<={gate}: threshold {tg:.4f} "
              f"precision {pg:.3f} recall {rg:.3f}")  # fmt: skip
    gated = np.where(bits <= HASH_MAX_BITS, sims, -1.0)
    t2, p2, r2 = best_threshold(gated, is_near)
    close = np.abs(times[i] - times[j]) <= args.burst_seconds
    not_near = ~is_near
    p0, r0 = pr(close[not_near], is_scene[not_near])
    print(f"similar  time alone (<= {args.burst_seconds:g} s): precision {p0:.3f} recall {r0:.3f}")
    timed = np.where(close, sims, -1.0)
    t3, p3, r3 = best_threshold(timed[not_near], is_scene[not_near])
    print(f"similar  cosine + time (near pairs left out): threshold {t3:.4f} "
          f"precision {p3:.3f} recall {r3:.3f}")  # fmt: skip
    origin = np.array(["originals" in f.parts for f in files])
    kind = np.array([f.stem.rsplit("-", 1)[-1] if f.parent.name == "edits" else "" for f in files])
    print(f"near recall per edit at the cosine + pHash threshold {t2:.4f}:")
    for name in sorted(set(kind) - {""}):
        mask = is_near & origin[i] & (kind[j] == name)
        _, rec = pr(gated >= t2, mask)
        worst = sims[mask].min()
        print(f"  {name:9s} recall {rec:.2f}  lowest cosine {worst:.4f}  "
              f"most pHash bits {bits[mask].max()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
