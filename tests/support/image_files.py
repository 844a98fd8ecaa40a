"""Fixtures that generate image files of every awkward kind (owned by the images work).

``image_zoo`` (session) maps a short name to a generated file; ``small_collection``
(per test) is a folder of 12 small, visually distinct images in two subfolders.
``make_jpeg``, ``write_flat_jpeg`` and ``write_png_bomb`` are plain helpers.

Everything is written on the fly and kept small: the 16000x16000 JPEG is written
by hand as a valid baseline stream whose blocks all repeat the first one (3 MB),
and the 50000x50000 PNG is a zlib stream of repeated, byte-aligned deflate
chunks (300 KB), so neither needs the pixels in memory.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

__all__ = [
    "BLUE",
    "GREEN",
    "HEIF_WRITABLE",
    "RED",
    "YELLOW",
    "image_zoo",
    "make_jpeg",
    "quadrants",
    "small_collection",
    "write_flat_jpeg",
    "write_png_bomb",
]

RGB = tuple[int, int, int]
RED, GREEN, BLUE, YELLOW = (220, 20, 20), (20, 200, 40), (20, 40, 220), (240, 220, 20)


def _heif_writable() -> bool:
    try:
        import pillow_heif

        return bool(pillow_heif.libheif_info().get("HEIF"))
    except Exception:
        return False


HEIF_WRITABLE = _heif_writable()


def make_jpeg(
    path: str | os.PathLike[str],
    w: int = 64,
    h: int = 48,
    color: RGB = RED,
    *,
    quality: int = 90,
    orientation: int | None = None,
    mode: str = "RGB",
    exif: bytes | None = None,
) -> Path:
    """Write a JPEG of one colour (``mode`` "RGB", "L" or "CMYK"); optionally with EXIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (w, h), color)
    if mode != "RGB":
        im = im.convert(mode)
    options: dict[str, object] = {"quality": quality}
    if orientation is not None:
        tags = Image.Exif()
        tags[0x0112] = orientation
        options["exif"] = tags.tobytes()
    elif exif is not None:
        options["exif"] = exif
    im.save(path, "JPEG", **options)
    return path


def quadrants(w: int, h: int, colors: Sequence[RGB] = (RED, BLUE, GREEN, YELLOW)) -> Image.Image:
    """An asymmetric test card: top-left, top-right, bottom-left, bottom-right colours."""
    im = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(im)
    for i, color in enumerate(colors):
        x, y = (i % 2) * w // 2, (i // 2) * h // 2
        draw.rectangle((x, y, x + w // 2 - 1, y + h // 2 - 1), fill=color)
    return im


def _rgb_to_ycbcr(rgb: RGB) -> tuple[float, float, float]:
    r, g, b = rgb
    return (
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    )


def write_flat_jpeg(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    color: RGB = (40, 160, 60),
    *,
    sof: int = 0xC0,
    truncate: bool = False,
) -> Path:
    """A genuinely valid one-colour JPEG of any size, written without holding its pixels.

    Quantisation is all ones and every 8x8 block has only a DC term; after the first
    block each DC difference is 0 and each block costs two 1-bit codes, so the scan is
    almost all zero bytes. ``sof`` sets the frame marker (0xC2 for progressive: only
    meaningful with ``truncate``, which stops right after the scan header).
    """
    comps = [round((v - 128) * 8) for v in _rgb_to_ycbcr(color)]

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload

    out = bytearray(b"\xff\xd8")
    out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += segment(0xDB, b"\x00" + b"\x01" * 64)
    frame = struct.pack(">BHHB", 8, height, width, 3)
    out += segment(sof, frame + b"".join(bytes([i + 1, 0x11, 0]) for i in range(3)))
    # DC table: category c has code '1'*c + '0'; AC table: EOB is the single code '0'
    out += segment(0xC4, b"\x00" + bytes([1] * 12 + [0] * 4) + bytes(range(12)))
    out += segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")
    out += segment(0xDA, b"\x03" + b"".join(bytes([i + 1, 0]) for i in range(3)) + b"\x00\x3f\x00")
    if truncate:
        Path(path).write_bytes(bytes(out) + b"\x00" * 64)
        return Path(path)
    first = ""
    for v in comps:
        cat = abs(v).bit_length()
        mag = format(v if v >= 0 else v + (1 << cat) - 1, f"0{cat}b") if cat else ""
        first += "1" * cat + "0" + mag + "0"
    blocks = -(-width // 8) * -(-height // 8)
    total = len(first) + 6 * (blocks - 1)
    nbytes = -(-total // 8)
    pad = nbytes * 8 - total
    head_len = -(-len(first) // 8)
    if head_len * 8 + 8 > total:  # tiny image: spell every bit out
        bits = first + "0" * (total - len(first)) + "1" * pad
        data = int(bits, 2).to_bytes(nbytes, "big")
    else:
        head = int(first.ljust(head_len * 8, "0"), 2).to_bytes(head_len, "big")
        tail = bytes([(1 << pad) - 1]) if pad else b""
        data = head + bytes(nbytes - head_len - len(tail)) + tail
    out += data.replace(b"\xff", b"\xff\x00") + b"\xff\xd9"
    Path(path).write_bytes(bytes(out))
    return Path(path)


def write_png_bomb(path: str | os.PathLike[str], width: int = 50_000, height: int = 50_000) -> Path:
    """A valid 1-bit PNG of ``width`` x ``height`` (all black) that is a few hundred KB."""
    row = 1 + -(-width // 8)  # filter byte + packed bits
    rows_per_chunk = 100
    while height % rows_per_chunk:
        rows_per_chunk -= 1
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, byte-aligned by the full flush
    chunk = comp.compress(bytes(row * rows_per_chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    total = row * height
    adler = ((total % 65521) << 16) | 1  # adler32 of `total` zero bytes
    idat = (
        b"\x78\xda"
        + chunk * (height // rows_per_chunk)
        + b"\x03\x00"  # final empty block
        + struct.pack(">I", adler)
    )

    def chunk_bytes(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    png = b"\x89PNG\r\n\x1a\n" + chunk_bytes(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    )
    png += chunk_bytes(b"IDAT", idat) + chunk_bytes(b"IEND", b"")
    Path(path).write_bytes(png)
    return Path(path)


def _save(im: Image.Image, path: Path, fmt: str, **options: object) -> Path:
    im.save(path, fmt, **options)
    return path


def _build_zoo(d: Path) -> dict[str, Path]:
    z: dict[str, Path] = {}
    card = quadrants(96, 64)
    z["jpeg"] = _save(card, d / "card.jpg", "JPEG", quality=92)
    z["png"] = _save(card, d / "card.png", "PNG")
    z["webp"] = _save(card, d / "card.webp", "WEBP", lossless=True)
    z["gif"] = _save(card.convert("P", palette=Image.Palette.ADAPTIVE), d / "card.gif", "GIF")
    z["bmp"] = _save(card, d / "card.bmp", "BMP")
    z["tiff"] = _save(card, d / "card.tiff", "TIFF", compression="tiff_deflate")
    z["tif"] = _save(card, d / "card2.tif", "TIFF")
    z["jpe"] = make_jpeg(d / "plain.jpe", 40, 30, BLUE)
    z["upper_jpg"] = make_jpeg(d / "UPPER.JPG", 50, 40, GREEN)
    z["jpeg_ext"] = make_jpeg(d / "long.jpeg", 40, 50, YELLOW)
    z["mixed_png"] = _save(Image.new("RGB", (30, 30), RED), d / "Mixed.Png", "PNG")
    z["grey_jpeg"] = make_jpeg(d / "grey.jpg", 40, 30, (128, 128, 128), mode="L")
    z["cmyk_jpeg"] = make_jpeg(d / "cmyk.jpg", 64, 48, RED, mode="CMYK")
    z["exif_rotated"] = _save(
        quadrants(64, 32), d / "rotated.jpg", "JPEG", quality=95, exif=_exif(6)
    )
    z["exif_mirrored"] = _save(quadrants(64, 32), d / "mirrored.png", "PNG", exif=_exif(2))
    bad_exif = b"Exif\x00\x00II*\x00\xff\xff\x00\x00garbage"
    z["bad_exif"] = make_jpeg(d / "bad-exif.jpg", 40, 30, BLUE, exif=bad_exif)
    z["bad_orientation"] = make_jpeg(d / "bad-orientation.jpg", 40, 30, BLUE, orientation=9)
    # high bit depths
    ramp = [[x * 256 for x in range(256)] for _ in range(4)]  # 0..65280 left to right
    im16 = Image.new("I;16", (256, 4))
    im16.putdata([v for row in ramp for v in row])
    z["png16"] = _save(im16, d / "grey16.png", "PNG")
    z["tiff16"] = _save(im16, d / "grey16.tiff", "TIFF")
    flt = Image.new("F", (16, 16), 0.5)
    z["tiff_float"] = _save(flt, d / "float.tiff", "TIFF")
    z["tiff_int32"] = _save(Image.new("I", (16, 16), 40000), d / "int32.tiff", "TIFF")
    # transparency
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle((20, 0, 39, 19), fill=(*BLUE, 255))
    z["rgba_png"] = _save(rgba, d / "alpha.png", "PNG")
    z["half_alpha_png"] = _save(Image.new("RGBA", (8, 8), (255, 0, 0, 128)), d / "half.png", "PNG")
    z["la_png"] = _save(Image.new("LA", (8, 8), (0, 0)), d / "la.png", "PNG")
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0, *BLUE] + [0] * (254 * 3))
    ImageDraw.Draw(pal).rectangle((10, 0, 19, 19), fill=1)
    z["palette_png_trns"] = _save(pal, d / "palette-trns.png", "PNG", transparency=0)
    z["webp_rgba"] = _save(rgba, d / "alpha.webp", "WEBP", lossless=True)
    z["one_bit_png"] = _save(Image.new("1", (16, 8), 1), d / "bits.png", "PNG")
    # animations and pages: the first frame is red
    frames = [Image.new("RGB", (32, 24), c) for c in (RED, GREEN, BLUE)]
    z["animated_gif"] = _save(
        frames[0], d / "anim.gif", "GIF", save_all=True, append_images=frames[1:]
    )
    z["animated_webp"] = _save(
        frames[0], d / "anim.webp", "WEBP", save_all=True, append_images=frames[1:], lossless=True
    )
    z["apng"] = _save(frames[0], d / "anim.png", "PNG", save_all=True, append_images=frames[1:])
    z["multipage_tiff"] = _save(
        frames[0], d / "pages.tiff", "TIFF", save_all=True, append_images=frames[1:]
    )
    # hostile and broken files
    z["bomb_png"] = write_png_bomb(d / "bomb.png")
    z["huge_jpeg"] = write_flat_jpeg(d / "huge-16000.jpg", 16000, 16000, (40, 160, 60))
    z["unreducible_jpeg"] = write_flat_jpeg(d / "huge-65000.jpg", 65000, 65000, truncate=True)
    z["progressive_huge_jpeg"] = write_flat_jpeg(
        d / "huge-progressive.jpg", 16000, 16000, sof=0xC2, truncate=True
    )
    good = z["jpeg"].read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) * 2 // 3])
    z["truncated_jpeg"] = d / "truncated.jpg"
    big_png = io.BytesIO()
    Image.effect_noise((200, 200), 60).save(big_png, "PNG")
    (d / "truncated.png").write_bytes(big_png.getvalue()[: len(big_png.getvalue()) // 2])
    z["truncated_png"] = d / "truncated.png"
    (d / "header-only.png").write_bytes(big_png.getvalue()[:20])
    z["header_only_png"] = d / "header-only.png"
    (d / "empty.jpg").write_bytes(b"")
    z["empty"] = d / "empty.jpg"
    (d / "notes.jpg").write_text("these are my holiday notes, not a picture\n")
    z["text_as_jpg"] = d / "notes.jpg"
    (d / "mislabelled.jpg").write_bytes(z["png"].read_bytes())
    z["png_as_jpg"] = d / "mislabelled.jpg"
    (d / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    z["garbage_png"] = d / "garbage.png"
    if HEIF_WRITABLE:
        import pillow_heif

        heif = pillow_heif.from_pillow(card)
        heif.save(d / "card.heic", quality=95)
        z["heic"] = d / "card.heic"
    with contextlib.suppress(KeyError, OSError, ValueError):  # no AVIF encoder in this Pillow
        z["avif"] = _save(card, d / "card.avif", "AVIF", quality=95)
    # junk that a scan must ignore
    (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    z["ds_store"] = d / ".DS_Store"
    (d / "._card.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(32))
    z["appledouble"] = d / "._card.jpg"
    (d / "Thumbs.db").write_bytes(bytes(64))
    z["thumbs_db"] = d / "Thumbs.db"
    # a folder whose symlinks loop back on themselves, plus a dangling one
    loop = d / "loop"
    (loop / "sub").mkdir(parents=True)
    make_jpeg(loop / "a.jpg", 20, 20, RED)
    make_jpeg(loop / "sub" / "b.jpg", 20, 20, BLUE)
    os.symlink("..", loop / "sub" / "back-up")
    os.symlink(".", loop / "self")
    os.symlink("missing-target.jpg", loop / "dangling.jpg")
    z["loop_dir"] = loop
    return z


def _exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


@pytest.fixture(scope="session")
def image_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> generated file (or folder, for ``loop_dir``); see ``_build_zoo`` for the list."""
    return _build_zoo(tmp_path_factory.mktemp("zoo"))


def _shape(i: int, w: int, h: int) -> Image.Image:
    palette = [RED, GREEN, BLUE, YELLOW, (240, 120, 20), (140, 30, 200)]
    bg = palette[i % len(palette)]
    fg = palette[(i * 5 + 3) % len(palette)]
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    kind = i % 4
    if kind == 0:
        draw.ellipse((w // 5, h // 5, w * 4 // 5, h * 4 // 5), fill=fg)
    elif kind == 1:
        for x in range(0, w, 12):
            draw.rectangle((x, 0, x + 5, h), fill=fg)
    elif kind == 2:
        draw.polygon([(w // 2, 4), (w - 4, h - 4), (4, h - 4)], fill=fg)
    else:
        for y in range(0, h, 10):
            draw.line((0, y, w, y + 20), fill=fg, width=4)
    return im


@pytest.fixture
def small_collection(tmp_path: Path) -> Path:
    """A folder with 12 distinct small images: ``shapes/`` (6) and ``more/`` (6), mixed formats."""
    root = tmp_path / "collection"
    for i in range(12):
        folder = root / ("shapes" if i < 6 else "more")
        folder.mkdir(parents=True, exist_ok=True)
        ext, fmt = [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")][i % 3]
        _shape(i, 96 + 8 * (i % 3), 72 + 4 * (i % 2)).save(folder / f"image-{i:02d}.{ext}", fmt)
    return root
