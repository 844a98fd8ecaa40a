"""A collection whose right answers are known: families of one picture and its near copies.

Each family ``famN`` holds the original, an exact copy (same pixels, another file) and
a slightly edited copy (brighter, a few pixels cropped). Whatever the model, an exact
copy embeds to the same vector, and a slight edit stays closer to its original than to
another family's picture, so relevance feedback has a right direction to move in.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance

__all__ = ["FAMILIES", "family_paths", "write_families"]

FAMILIES = 6
_COLOURS = [
    ((220, 20, 20), (250, 240, 230)),
    ((20, 160, 60), (20, 20, 20)),
    ((30, 60, 220), (240, 220, 20)),
    ((240, 200, 20), (120, 20, 160)),
    ((120, 120, 120), (250, 120, 20)),
    ((10, 10, 10), (20, 220, 220)),
]


def _picture(i: int, size: int = 160) -> Image.Image:
    bg, fg = _COLOURS[i % len(_COLOURS)]
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    kind = i % 3
    if kind == 0:
        draw.ellipse((30, 30, size - 30, size - 30), fill=fg)
    elif kind == 1:
        for x in range(0, size, 16):
            draw.rectangle((x, 0, x + 7, size), fill=fg)
    else:
        draw.polygon([(size // 2, 10), (size - 10, size - 10), (10, size - 10)], fill=fg)
    return im


def family_paths(root: Path, i: int) -> dict[str, Path]:
    return {kind: root / f"fam{i}" / f"{kind}.png" for kind in ("orig", "copy", "edit")}


def write_families(root: Path, count: int = FAMILIES) -> list[dict[str, Path]]:
    """``count`` families under ``root/famN/{orig,copy,edit}.png``."""
    out = []
    for i in range(count):
        paths = family_paths(root, i)
        paths["orig"].parent.mkdir(parents=True, exist_ok=True)
        im = _picture(i)
        im.save(paths["orig"])
        im.save(paths["copy"])
        edited = ImageEnhance.Brightness(im.crop((4, 4, im.width - 4, im.height - 4))).enhance(1.08)
        edited.save(paths["edit"])
        out.append(paths)
    return out
