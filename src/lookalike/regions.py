"""Region tiles: where to cut an image so that a small symbol gets a vector of its own.

A whole-image CLIP vector sees a 224x224 summary of the picture, in which a mark
covering 1-3 % of a photo is a few pixels wide. Regions are square tiles laid in
overlapping grids (each grid ``n`` puts ``n`` tiles of half-overlap across the
short side and proportionally more across the long side: 4 + 9 tiles for a square
photo, 6 + 12 for a 4:3 one), each resized to 224x224
and embedded like a whole image. Boxes are fractions of the displayed image
(``x0, y0, x1, y1`` in [0, 1]), so they outlive any resizing.

Tiles are cut from a reduced copy whose short side is just large enough that the
smallest tile keeps its own resolution at 224 pixels (``RegionSpec.work_side``):
more pixels would be thrown away by the resize anyway.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookalike.errors import ConfigError, QueryError

__all__ = ["Box", "Region", "RegionSpec", "check_box", "crop_part", "cut_tiles", "tile_boxes"]

Box = tuple[float, float, float, float]

_TILE = 224  # CLIP's input side
_BICUBIC = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class RegionSpec:
    """Which grids to cut, and from which image size on (``min_side``: the short side in
    pixels below which an image gets no regions: its details are already in the whole view)."""

    grids: tuple[int, ...] = (2, 3)
    min_side: int = 448

    def __post_init__(self) -> None:
        if not self.grids or any(not isinstance(g, int) or not 2 <= g <= 8 for g in self.grids):
            raise ConfigError(
                f"region grids must be whole numbers from 2 to 8, not {self.grids!r}",
                field="region_grids",
            )
        if not isinstance(self.min_side, int) or self.min_side < _TILE:
            raise ConfigError(
                f"region min_side must be at least {_TILE} pixels, not {self.min_side!r}",
                field="region_min_side",
            )

    @property
    def work_side(self) -> int:
        """Short side of the reduced copy tiles are cut from: the finest grid's tile is 224."""
        return _TILE * (max(self.grids) + 1) // 2

    def applies(self, width: int, height: int) -> bool:
        return min(width, height) >= self.min_side

    def to_json(self) -> str:
        return json.dumps({"grids": list(self.grids), "min_side": self.min_side})

    @classmethod
    def from_json(cls, raw: str) -> RegionSpec:
        try:
            data = json.loads(raw)
            return cls(grids=tuple(int(g) for g in data["grids"]), min_side=int(data["min_side"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the recorded region settings {raw!r} are unreadable ({exc}); "
                "index again with --regions to record them anew",
                field="regions",
            ) from exc


@dataclass
class Region:
    """One tile's vector (L2-normalised float32) and its box."""

    box: Box
    vector: np.ndarray


def _starts(length: int, tile: int, count: int) -> list[int]:
    if count <= 1 or length <= tile:
        return [max(0, (length - tile) // 2)]
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def tile_boxes(width: int, height: int, spec: RegionSpec) -> list[Box]:
    """The tiles of an image of this size as fractional boxes; none when it is too small."""
    if width <= 0 or height <= 0 or not spec.applies(width, height):
        return []
    short = min(width, height)
    boxes: list[Box] = []
    for n in spec.grids:
        side = 2 * short / (n + 1)  # n tiles overlapping by half span the short side
        across = max(n, round(n * width / short))  # about half-overlapping on the long side
        down = max(n, round(n * height / short))
        tile = round(side)
        for y in _starts(height, tile, down):
            for x in _starts(width, tile, across):
                x1, y1 = min(1.0, (x + tile) / width), min(1.0, (y + tile) / height)
                boxes.append((x / width, y / height, x1, y1))
    return boxes


def cut_tiles(image: Image.Image, boxes: Sequence[Box]) -> list[Image.Image]:
    """Each box of ``image`` resized to 224x224 (bicubic; boxes are square in pixels)."""
    w, h = image.size
    return [
        image.resize((_TILE, _TILE), _BICUBIC, box=(x0 * w, y0 * h, x1 * w, y1 * h))
        for x0, y0, x1, y1 in boxes
    ]


#: short side of the copy a part is cropped from ("search this part"): sharp enough for a
#: box of a tenth of the image, at the cost of a reduced decode, never a full one
_PART_SIDE = 1344


def check_box(box: Sequence[float] | str) -> Box:
    """A box as fractions ``x0, y0, x1, y1`` (a sequence or "x0,y0,x1,y1"), validated."""
    values: list[float]
    try:
        if isinstance(box, str):
            values = [float(v) for v in box.split(",")]
        else:
            values = [float(v) for v in box]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise QueryError(
            "box must be four numbers x0,y0,x1,y1 (fractions of the image, 0 to 1)", field="box"
        )
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise QueryError(
            f"box {x0:g},{y0:g},{x1:g},{y1:g} must lie inside the image (0 to 1) with "
            "x0 < x1 and y0 < y1",
            field="box",
        )
    return (x0, y0, x1, y1)


def crop_part(path: str, box: Box, *, max_pixels: int) -> Image.Image:
    """The part of the image file inside ``box``, from one reduced decode."""
    from lookalike.images import clip_and_reduced

    _, reduced = clip_and_reduced(path, max_pixels=max_pixels, short_side=_PART_SIDE)
    w, h = reduced.size
    x0, y0, x1, y1 = box
    left, top = int(x0 * w), int(y0 * h)
    right, bottom = max(left + 1, round(x1 * w)), max(top + 1, round(y1 * h))
    return reduced.crop((left, top, right, bottom))
