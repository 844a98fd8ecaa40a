"""A folder of real image files with planted groups of each duplicate kind.

``exact``: one picture and a byte-for-byte copy in another folder. ``near``: one
picture and three edits (JPEG quality 40, half size, a text overlay). ``similar``:
three shots of one scene framed differently, 2 s apart by EXIF DateTimeOriginal, and
an unrelated picture taken during the burst. Plus unrelated pictures.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867


def scene(seed: int, w: int = 320, h: int = 240) -> Image.Image:
    """Smooth colour fields with grain and a few shapes: each seed its own picture."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), "RGB")
    im = coarse.resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x, y, x + 40, y + 40), fill=colour)
    grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(im, np.float32) + grain, 0, 255).astype(np.uint8))


def save_taken(im: Image.Image, path: Path, taken: str, **options: object) -> Path:
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = taken
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", exif=exif.tobytes(), **options)
    return path


def plant(root: Path) -> dict[str, set[str]]:
    """Write the files; returns each kind's expected group as a set of POSIX paths."""
    root.mkdir(parents=True, exist_ok=True)
    day = 1_700_000_000
    groups: dict[str, set[str]] = {}

    a = root / "trip" / "a.jpg"
    a.parent.mkdir(parents=True)
    scene(1).save(a, "JPEG", quality=92)
    copy = root / "backup" / "a.jpg"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(a, copy)
    groups["exact"] = {a.as_posix(), copy.as_posix()}

    b_im = scene(2, 400, 300)
    b = root / "trip" / "b.jpg"
    b_im.save(b, "JPEG", quality=92)
    edits = root / "edits"
    edits.mkdir()
    b_im.save(edits / "b-q40.jpg", "JPEG", quality=40)
    b_im.resize((200, 150), Image.Resampling.BICUBIC).save(edits / "b-half.png")
    marked = b_im.copy()
    ImageDraw.Draw(marked).text((10, 270), "(c) lookalike", fill=(255, 255, 255))
    marked.save(edits / "b-text.jpg", "JPEG", quality=90)
    groups["near"] = {b.as_posix(), *(p.as_posix() for p in edits.iterdir())}

    big = scene(3, 480, 360)
    shots = set()
    for s, x in enumerate((0, 40, 80)):
        shot = big.crop((x, 20, x + 400, 320))
        shots.add(save_taken(shot, root / "burst" / f"c{s}.jpg", f"2024:05:01 10:00:0{2 * s}"))
    groups["similar"] = {p.as_posix() for p in shots}
    save_taken(scene(4), root / "burst" / "other.jpg", "2024:05:01 10:00:03")

    for k in range(6):
        p = root / "misc" / f"u{k}.jpg"
        p.parent.mkdir(exist_ok=True)
        scene(100 + k).save(p, "JPEG", quality=90)
    # files far apart in time, except the burst (whose EXIF time wins anyway)
    for k, p in enumerate(sorted(root.rglob("*.*"))):
        os.utime(p, (day + 3600 * k, day + 3600 * k))
    return groups
