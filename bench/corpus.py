"""Generate benchmark image corpora: camera-like 12 MP JPEGs, 1080p images, small icons.

Camera-like means smooth gradients plus fine noise, saved at quality 90, so the JPEG
decoder does the same work as on real photos (flat colours would decode unrealistically fast).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = {"photo12mp": (4000, 3000), "hd1080": (1920, 1080), "icon": (128, 128)}


def _picture(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    # a low-resolution random field upscaled (smooth content) plus per-pixel noise (detail)
    base = rng.integers(0, 256, (max(2, h // 300), max(2, w // 300), 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.int16)
    noise = rng.integers(-12, 13, (h, w, 1), dtype=np.int16)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


def make_corpus(folder: Path, counts: dict[str, int], seed: int = 0) -> list[Path]:
    """Write ``counts[kind]`` images of each kind under ``folder/kind``; reuse existing files."""
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for kind, n in counts.items():
        w, h = SIZES[kind]
        sub = folder / kind
        sub.mkdir(parents=True, exist_ok=True)
        template = None
        for i in range(n):
            ext = "png" if kind == "icon" else "jpg"
            path = sub / f"{kind}-{i:05d}.{ext}"
            paths.append(path)
            if path.exists():
                continue
            if kind == "icon":
                _picture(w, h, rng).save(path)
                continue
            if template is None:
                template = _picture(w, h, rng)
            # cheap distinct variants of one large picture: shift and tint
            arr = np.roll(np.asarray(template), shift=int(rng.integers(0, w)), axis=1)
            arr = np.clip(arr.astype(np.int16) + rng.integers(-30, 31, (1, 1, 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(path, quality=90)
    return paths
