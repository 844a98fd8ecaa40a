"""Image format names as users write them (jpg, JPEG, .png, "jpg,png") and their checking.

One parser for the CLI, the API and the page, so ``--format jpgg`` and
``format=jpgg`` fail the same way, naming the formats that exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from lookalike.errors import QueryError

__all__ = ["ALIASES", "known_formats", "parse_formats"]

ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heic": "heif"}
_COMMON = "jpeg, png, webp, gif, tiff, bmp, heif, avif"


@cache
def known_formats() -> frozenset[str]:
    """Lower-case Pillow format names (what the indexer records), plus the HEIF plugin's."""
    from PIL import Image

    Image.init()
    return frozenset({f.lower() for f in Image.registered_extensions().values()} | {"heif", "avif"})


def parse_formats(values: Iterable[str], field: str = "format") -> tuple[str, ...]:
    """Canonical names from repeated and/or comma-separated values; unknown names fail."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().lstrip(".")
            if not name:
                continue
            name = ALIASES.get(name, name)
            if name not in known_formats():
                raise QueryError(
                    f"unknown image format {part.strip()[:20]!r}; use names such as {_COMMON} "
                    "(several: repeat the option or separate them with commas)",
                    field=field,
                )
            if name not in out:
                out.append(name)
    return tuple(out)
