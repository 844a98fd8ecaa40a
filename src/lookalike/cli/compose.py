"""Composed queries on the command line: ``--like``, ``--unlike``, ``--not`` and weights.

    lookalike search "red car" --like ~/cat.jpg --like 3f2a9c0e --not night --unlike 2:9b1e...

A text is what to find; ``--like`` adds an image file or an indexed id to find
more of, ``--unlike`` one to find less of, ``--not`` a text to steer away from.
Any part may start with a weight and a colon (``2:red car``, ``0.5:~/cat.jpg``);
a text that itself starts with a number and a colon is written with an explicit
weight (``1:3:10 to Yuma``). A value that exists as a file is an image; one that
looks like a path (a slash, a leading ``~`` or ``.``, an image extension) but does
not exist is an error ("no such file"), so a typo never reads as an id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from lookalike.composing import Weighted, check_weight
from lookalike.errors import NotFoundError, QueryError

__all__ = ["ComposedParts", "image_or_id", "looks_like_path", "parse_parts", "split_weight"]

_WEIGHT = re.compile(r"^(\d{1,3}(?:\.\d+)?):(.+)$", re.DOTALL)
_IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic",
    ".heif", ".avif",
)  # fmt: skip

ComposedParts = dict[str, list[Any]]


def split_weight(value: str, field: str) -> tuple[str, float]:
    """``"2:red car"`` -> ``("red car", 2.0)``; no prefix means weight 1."""
    m = _WEIGHT.match(value)
    if not m:
        return value, 1.0
    return m.group(2), check_weight(float(m.group(1)), field)


def looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value.startswith(("~", "."))
        or value.lower().endswith(_IMAGE_SUFFIXES)
    )


def image_or_id(value: str, field: str) -> tuple[str, str]:
    """("image", absolute path) for an existing file, ("id", value) for an id-like value."""
    expanded = os.path.expanduser(value)
    if os.path.isfile(expanded):
        return "image", os.path.abspath(expanded)
    if os.path.exists(expanded):
        raise QueryError(f"{value} is a folder; give an image file or an indexed id", field=field)
    if looks_like_path(value):
        raise NotFoundError(f"no such file: {value}", field=field)
    return "id", value


def _wrap(value: Any, weight: float) -> Any:
    return value if weight == 1.0 else Weighted(value, weight)


def parse_parts(
    texts: Sequence[str], like: Sequence[str], unlike: Sequence[str], not_texts: Sequence[str]
) -> ComposedParts:
    """The ``Query`` keyword arguments for these command-line parts (weights applied)."""
    parts: ComposedParts = {
        "texts": [],
        "images": [],
        "ids": [],
        "negative_texts": [],
        "negative_images": [],
        "negative_ids": [],
    }
    for text in texts:
        value, weight = split_weight(text, "query")
        parts["texts"].append(_wrap(value, weight))
    for text in not_texts:
        value, weight = split_weight(text, "not")
        parts["negative_texts"].append(_wrap(value, weight))
    for side, values, field in (("", like, "like"), ("negative_", unlike, "unlike")):
        for raw in values:
            value, weight = split_weight(raw, field)
            kind, found = image_or_id(value, field)
            parts[f"{side}{kind}s"].append(_wrap(found, weight))
    return parts


def describe(parts: ComposedParts, negative_weight: float) -> dict[str, Any]:
    """The query as the JSON envelope shows it (the API's ``query`` member)."""

    def show(items: list[Any]) -> list[Any]:
        return [
            {"value": str(p.value), "weight": p.weight} if isinstance(p, Weighted) else str(p)
            for p in items
        ]

    out: dict[str, Any] = {"type": "composed"}
    for name, items in parts.items():
        if items:
            out[name] = show(items)
    if parts["negative_texts"] or parts["negative_images"] or parts["negative_ids"]:
        out["negative_weight"] = negative_weight
    return out
