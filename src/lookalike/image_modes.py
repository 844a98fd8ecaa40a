"""Colour modes for images.py: turn whatever Pillow decoded into 8-bit RGB on white."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lookalike.errors import UnsupportedImageError

__all__ = ["high_bit_grey", "to_rgb"]

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}


def to_rgb(im: Image.Image, path: str | None = None) -> Image.Image:
    """Any Pillow mode as RGB: alpha and transparency composited on white, CMYK, palette,
    1-bit and high-bit-depth grey converted. ``path`` only names the file in errors."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I") or mode == "F":
        return high_bit_grey(im).convert("RGB")
    try:
        has_alpha = mode in _ALPHA_MODES or "transparency" in im.info
        if mode == "P" and im.palette is not None and im.palette.mode == "RGBA":
            has_alpha = True
        if not has_alpha:
            return im.convert("RGB")
        rgba = im.convert("RGBA")
    except ValueError as exc:  # modes Pillow cannot convert
        raise UnsupportedImageError(
            f"its colour mode {mode} cannot be converted to RGB ({exc}); convert the file to sRGB",
            path=path,
        ) from exc
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def high_bit_grey(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey to 8 bits, scaled by the range the data is in."""
    a = np.asarray(im).astype(np.float32)
    if im.mode.startswith("I;16"):
        a /= 257.0
    else:
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
            a *= 255.0
        elif lo >= 0.0 and hi <= 255.0:
            pass
        elif lo >= 0.0 and hi <= 65535.0:
            a /= 257.0
        else:
            a = (a - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
