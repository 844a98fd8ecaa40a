"""Cheap second looks at the files themselves: a perceptual hash, and when a photo was taken.

The perceptual hash (pHash) shrinks the picture to 32x32 grey pixels, takes their
2-d DCT and keeps one bit per low frequency (the 8x8 block without the constant
term): is it above the block's median? Re-encoding, resizing and recolouring barely
move it; a different picture lands about 32 bits away out of 64, even a flat symbol
on white (where a difference hash is mostly zeros). It is computed with numpy from
the safely decoded image (``lookalike.images``: pixel budget, JPEG draft decoding);
no extra dependency is needed.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

import numpy as np
from PIL import Image

from lookalike.errors import LookalikeError
from lookalike.images import load_image

__all__ = ["hash_distance", "phash", "phash_image", "taken_at"]

log = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME = 306


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m: np.ndarray = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(32)


def phash_image(image: Image.Image) -> int:
    """The 64-bit perceptual hash of a decoded image."""
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    px = np.asarray(grey, dtype=np.float64)
    low = (_DCT @ px @ _DCT.T)[:8, :8].reshape(-1)[1:]
    bits = low > np.median(low)
    return int(sum(1 << i for i, bit in enumerate(bits.tolist()) if bit))


def phash(path: str, *, max_pixels: int) -> int | None:
    """The file's perceptual hash, or None when it cannot be decoded now (gone, damaged)."""
    try:
        decoded = load_image(path, max_pixels=max_pixels, size=128, crop=False)
    except (LookalikeError, OSError) as exc:
        log.debug("no perceptual hash for %s: %s", path, exc)
        return None
    return phash_image(decoded.image)


def hash_distance(a: int, b: int) -> int:
    """Hamming distance between two perceptual hashes (0..64)."""
    return (a ^ b).bit_count()


def taken_at(path: str) -> float | None:
    """EXIF DateTimeOriginal (else DateTime) as a timestamp read as UTC, or None.

    EXIF times carry no zone; read as UTC they still give the right gap between two
    photos from the same camera, which is all a burst needs.
    """
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            text = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if not isinstance(text, str):
        return None
    with contextlib.suppress(ValueError):
        moment = datetime.strptime(text.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
        return moment.replace(tzinfo=UTC).timestamp()
    return None
