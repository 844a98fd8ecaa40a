#!/usr/bin/env python
"""Generate a deterministic sample collection to try lookalike on.

    python scripts/make_samples.py OUTDIR [--count N]

Three kinds of picture, in three folders:

- ``recycle/``: the recycling symbol (three chasing arrows) in several colours and styles;
- ``estimated/``: the "℮" estimated-quantity mark of EU packaging, drawn from shapes
  (and from a font as well when one with the glyph is installed);
- ``distractors/``: circles, stripes, gradients, checkers and photo-like noise.

Mixed formats (JPEG, PNG, WebP) and sizes, a couple of larger photo-like JPEGs, and
file names that say what each picture is. Importable: ``generate_samples(outdir, count)``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
GREEN, DARK_GREEN, BLUE, GREY = (0, 150, 70), (0, 100, 50), (30, 90, 200), (110, 110, 110)
FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 90}),
    ".webp": ("WEBP", {"quality": 85}),
}

Painter = Callable[[random.Random], Image.Image]


# -- recycling symbol ---------------------------------------------------------------------------


def _arrowhead(
    draw: ImageDraw.ImageDraw, tip: tuple[float, float], angle: float, size: float, fill: RGB
) -> None:
    """A filled triangle pointing along ``angle`` (radians) with its point at ``tip``."""
    back = (tip[0] - size * math.cos(angle), tip[1] - size * math.sin(angle))
    side = (-math.sin(angle) * size * 0.75, math.cos(angle) * size * 0.75)
    draw.polygon(
        [tip, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])],
        fill=fill,
    )


def recycle_circular(size: int, fg: RGB, bg: RGB, width_ratio: float = 0.11) -> Image.Image:
    """Three arcs chasing each other round a circle, each ending in an arrowhead."""
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    c, r = size / 2, size * 0.33
    width = max(3, int(size * width_ratio))
    for k in range(3):
        start = k * 120 - 90 + 12
        end = start + 84
        draw.arc((c - r, c - r, c + r, c + r), start, end, fill=fg, width=width)
        a = math.radians(end)
        mid = r - width / 2
        tip_angle = a + math.pi / 2  # tangent, clockwise
        base = (c + mid * math.cos(a), c + mid * math.sin(a))
        tip = (
            base[0] + width * 1.3 * math.cos(tip_angle),
            base[1] + width * 1.3 * math.sin(tip_angle),
        )
        _arrowhead(draw, tip, tip_angle, width * 1.6, fg)
    return im


def recycle_triangle(size: int, fg: RGB, bg: RGB, width_ratio: float = 0.09) -> Image.Image:
    """Three bent arrows along the sides of a triangle, the classic Möbius-loop layout."""
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    c, r = size / 2, size * 0.38
    corners = [
        (
            c + r * math.cos(math.radians(-90 + 120 * k)),
            c + 0.08 * size + r * math.sin(math.radians(-90 + 120 * k)),
        )
        for k in range(3)
    ]
    width = max(3, int(size * width_ratio))
    for k in range(3):
        p, q = corners[k], corners[(k + 1) % 3]
        start = (p[0] + (q[0] - p[0]) * 0.12, p[1] + (q[1] - p[1]) * 0.12)
        end = (p[0] + (q[0] - p[0]) * 0.68, p[1] + (q[1] - p[1]) * 0.68)
        draw.line([start, end], fill=fg, width=width)
        angle = math.atan2(q[1] - p[1], q[0] - p[0])
        tip = (p[0] + (q[0] - p[0]) * 0.86, p[1] + (q[1] - p[1]) * 0.86)
        _arrowhead(draw, tip, angle, width * 2.0, fg)
        # the folded corner: a short stub bending round towards the next side
        draw.line(
            [start, (start[0] - (p[0] - c) * 0.12, start[1] - (p[1] - c) * 0.12)],
            fill=fg,
            width=width,
        )
    return im


def _recycle_painters() -> list[tuple[str, Painter]]:
    styles: list[tuple[str, Callable[..., Image.Image], RGB, RGB]] = [
        ("green", recycle_circular, GREEN, WHITE),
        ("blue", recycle_circular, BLUE, WHITE),
        ("black", recycle_circular, BLACK, WHITE),
        ("white-on-green", recycle_circular, WHITE, GREEN),
        ("triangle-green", recycle_triangle, GREEN, WHITE),
        ("triangle-black", recycle_triangle, BLACK, WHITE),
        ("triangle-white-on-blue", recycle_triangle, WHITE, BLUE),
        ("dark-green-on-cream", recycle_circular, DARK_GREEN, (245, 240, 220)),
    ]
    out: list[tuple[str, Painter]] = []
    for name, fn, fg, bg in styles:

        def paint(
            rng: random.Random, fn: Callable[..., Image.Image] = fn, fg: RGB = fg, bg: RGB = bg
        ) -> Image.Image:
            im = fn(rng.choice([192, 256, 320, 400]), fg, bg, rng.uniform(0.08, 0.13))
            return im.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC, fillcolor=bg)

        out.append((f"recycle-{name}", paint))
    return out


# -- the estimated sign ℮ -----------------------------------------------------------------------


def e_mark(size: int, fg: RGB, bg: RGB, stroke: float = 0.085, filled: bool = False) -> Image.Image:
    """The ℮ mark from shapes: an open ring (gap at lower right) crossed by a full-width bar."""
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    c, r = size / 2, size * 0.34
    width = max(2, int(size * stroke))
    color = fg
    if filled:  # a solid disc with the mark cut out of it
        draw.ellipse((c - r - width, c - r - width, c + r + width, c + r + width), fill=fg)
        color = bg
    draw.arc((c - r, c - r, c + r, c + r), 40, 360, fill=color, width=width)
    draw.rectangle((c - r, c - width / 2, c + r, c + width / 2), fill=color)
    return im


def _font_with_e_mark(size: int) -> ImageFont.FreeTypeFont | None:
    for name in (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "FreeSans.ttf",
        "LiberationSans-Regular.ttf",
    ):
        try:
            font = ImageFont.truetype(name, size)
        except OSError:
            continue
        if font.getbbox("\u212e")[2] > 0 and font.getmask("\u212e").getbbox():
            return font
    return None


def e_mark_font(size: int, fg: RGB, bg: RGB) -> Image.Image:
    font = _font_with_e_mark(int(size * 0.8))
    if font is None:  # no font installed: fall back to the drawn mark
        return e_mark(size, fg, bg, stroke=0.07)
    im = Image.new("RGB", (size, size), bg)
    ImageDraw.Draw(im).text((size / 2, size / 2), "\u212e", font=font, fill=fg, anchor="mm")
    return im


def e_mark_on_label(size: int, fg: RGB, bg: RGB) -> Image.Image:
    """A packaging label: lines of 'text' as bars, a quantity, and a small ℮ in the corner."""
    im = Image.new("RGB", (size * 3 // 2, size), bg)
    draw = ImageDraw.Draw(im)
    for i in range(4):
        y = size * (0.15 + 0.12 * i)
        draw.rectangle((size * 0.1, y, size * (1.2 - 0.15 * i), y + size * 0.05), fill=GREY)
    mark = e_mark(size // 3, fg, bg, stroke=0.1)
    im.paste(mark, (size * 3 // 2 - size // 3 - size // 12, size - size // 3 - size // 12))
    return im


def _estimated_painters() -> list[tuple[str, Painter]]:
    def sized(rng: random.Random) -> int:
        return rng.choice([160, 224, 288, 360])

    return [
        ("e-mark-outline", lambda rng: e_mark(sized(rng), BLACK, WHITE, rng.uniform(0.06, 0.1))),
        ("e-mark-filled", lambda rng: e_mark(sized(rng), BLACK, WHITE, 0.08, filled=True)),
        ("e-mark-inverted", lambda rng: e_mark(sized(rng), WHITE, BLACK, rng.uniform(0.06, 0.1))),
        ("e-mark-blue", lambda rng: e_mark(sized(rng), BLUE, WHITE, rng.uniform(0.06, 0.1))),
        ("e-mark-font", lambda rng: e_mark_font(sized(rng), BLACK, WHITE)),
        ("e-mark-on-label", lambda rng: e_mark_on_label(sized(rng), BLACK, (250, 250, 245))),
    ]


# -- distractors ----------------------------------------------------------------------------------


def _random_color(rng: random.Random) -> RGB:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def circles(rng: random.Random) -> Image.Image:
    size = rng.choice([200, 256, 300])
    im = Image.new("RGB", (size, size), _random_color(rng))
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(1, 5)):
        r = rng.randint(size // 10, size // 3)
        x, y = rng.randint(0, size), rng.randint(0, size)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_random_color(rng))
    return im


def stripes(rng: random.Random) -> Image.Image:
    w, h = rng.choice([(320, 200), (256, 256), (200, 300)])
    im = Image.new("RGB", (w, h), _random_color(rng))
    draw = ImageDraw.Draw(im)
    step, fg = rng.randint(10, 40), _random_color(rng)
    for x in range(-h, w, step):
        draw.line((x, 0, x + h, h), fill=fg, width=step // 2)
    return im


def gradient(rng: random.Random) -> Image.Image:
    w, h = rng.choice([(320, 240), (240, 320), (256, 256)])
    a, b = np.array(_random_color(rng), np.float32), np.array(_random_color(rng), np.float32)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    row = a * (1 - t) + b * t
    return Image.fromarray(np.repeat(row, h, axis=0).astype(np.uint8), "RGB")


def checker(rng: random.Random) -> Image.Image:
    size, cell = rng.choice([240, 256]), rng.choice([16, 24, 32])
    yy, xx = np.mgrid[0:size, 0:size]
    mask = ((xx // cell + yy // cell) % 2).astype(bool)
    out = np.empty((size, size, 3), np.uint8)
    out[mask], out[~mask] = _random_color(rng), _random_color(rng)
    return Image.fromarray(out, "RGB")


def photo_like(rng: random.Random, w: int = 400, h: int = 300) -> Image.Image:
    """Smooth colour fields plus grain: compresses and decodes like a photograph."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    coarse = Image.fromarray(np_rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    im = coarse.resize((w, h), Image.Resampling.BICUBIC)
    grain = np_rng.normal(0, 9, (h, w, 1)).astype(np.float32)
    return Image.fromarray(
        np.clip(np.asarray(im, np.float32) + grain, 0, 255).astype(np.uint8), "RGB"
    )


def _distractor_painters() -> list[tuple[str, Painter]]:
    return [
        ("circles", circles),
        ("stripes", stripes),
        ("gradient", gradient),
        ("checker", checker),
        ("photo", photo_like),
        ("photo-large", lambda rng: photo_like(rng, 2400, 1600)),
    ]


# -- the collection ----------------------------------------------------------------------------


def _plan(count: int) -> list[tuple[str, str, Painter]]:
    """(folder, name, painter) for `count` pictures, the three kinds interleaved 3:2:3 so
    that even a small count holds some of each; at most two large photos."""
    groups = {
        "recycle": _recycle_painters(),
        "estimated": _estimated_painters(),
        "distractors": _distractor_painters(),
    }
    pattern = [
        "recycle",
        "estimated",
        "distractors",
        "recycle",
        "distractors",
        "estimated",
        "recycle",
        "distractors",
    ]
    seen: dict[str, int] = {}
    per_name: dict[str, int] = {}
    large = 0
    plan: list[tuple[str, str, Painter]] = []
    i = 0
    while len(plan) < count:
        folder = pattern[i % len(pattern)]
        painters = groups[folder]
        n = seen.get(folder, 0)
        seen[folder] = n + 1
        i += 1
        name, painter = painters[n % len(painters)]
        if name == "photo-large":
            if large >= 2:
                name, painter = "photo", photo_like
            else:
                large += 1
        per_name[name] = per_name.get(name, 0) + 1
        plan.append((folder, f"{name}-{per_name[name]:02d}", painter))
    return plan


def generate_samples(outdir: Path, count: int = 48) -> list[Path]:
    """Write `count` pictures under `outdir` (deterministic: same bytes every run)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    outdir = Path(outdir)
    paths: list[Path] = []
    extensions = list(FORMATS)
    for index, (folder, stem, painter) in enumerate(_plan(count)):
        rng = random.Random(f"{folder}/{stem}")
        im = painter(rng)
        ext = ".jpg" if "photo" in stem else extensions[index % len(extensions)]
        fmt, options = FORMATS[ext]
        path = outdir / folder / f"{stem}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, fmt, **options)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="folder to write the pictures into")
    parser.add_argument("--count", type=int, default=48, help="how many pictures (default 48)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    paths = generate_samples(args.outdir, args.count)
    print(f"wrote {len(paths)} images under {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
