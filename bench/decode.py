"""Time ``images.clip_ready`` against a plain Pillow full decode, in the same process.

    python bench/decode.py [--repeat N]

Photo-like files (smooth colour fields plus grain, so they compress like photographs)
are generated in a temporary folder. Figures are milliseconds per image, one thread,
median of N runs; compare them only as ratios within one run (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.images import clip_ready

CASES = [
    ("640x480", 640, 480, "JPEG"),
    ("1920x1080", 1920, 1080, "JPEG"),
    ("4000x3000", 4000, 3000, "JPEG"),
    ("4000x3000 PNG", 4000, 3000, "PNG"),
]


def photo_like(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), "RGB")
    base = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), np.float32)
    grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB")


def pillow_full(path: Path) -> Image.Image:
    """The naive pipeline: full decode, shortest side to 224 bicubic, centre crop."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    nw, nh = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
    rgb = rgb.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - 224) // 2, (nh - 224) // 2
    return rgb.crop((left, top, left + 224, top + 224))


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        header = ("image", "full decode ms", "clip_ready ms", "speed-up", "mean |diff|")
        print(f"{header[0]:<16}{header[1]:>16}{header[2]:>16}{header[3]:>10}{header[4]:>13}")
        for i, (label, w, h, fmt) in enumerate(CASES):
            path = Path(tmp) / f"img{i}.{fmt.lower()}"
            photo_like(w, h, i).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            base = median_ms(lambda p=path: pillow_full(p), args.repeat)
            ours = median_ms(lambda p=path: clip_ready(p, max_pixels=64_000_000), args.repeat)
            diff = np.abs(
                np.asarray(pillow_full(path), np.int16)
                - np.asarray(clip_ready(path, max_pixels=64_000_000).image, np.int16)
            ).mean()
            print(f"{label:<16}{base:>16.1f}{ours:>16.1f}{base / ours:>9.1f}x{diff:>13.2f}")


if __name__ == "__main__":
    main()
