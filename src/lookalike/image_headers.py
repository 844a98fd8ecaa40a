"""Byte-level header parsing for images.py: format sniffing, EXIF orientation, JPEG frame
types and WebP sizes. Pure Python over bytes and file objects; nothing here raises on
malformed input (the answer is None) and nothing decodes pixels.
"""

from __future__ import annotations

import os
import struct
from typing import IO

__all__ = [
    "JPEG_PROGRESSIVE",
    "JPEG_SOF",
    "JPEG_SEQUENTIAL",
    "exif_orientation",
    "jpeg_frame_type",
    "sniff",
    "webp_header",
]

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
# JPEG frame types (SOFn markers). Sequential ones decode row by row, so draft() bounds
# the memory; progressive ones keep every DCT coefficient of the full image in memory;
# lossless and hierarchical ones cannot be scaled at all.
JPEG_SEQUENTIAL = frozenset({0xC0, 0xC1, 0xC9})
JPEG_PROGRESSIVE = frozenset({0xC2, 0xCA})
JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def sniff(head: bytes) -> str | None:
    """The format from the first bytes (64 are plenty), whatever the file is called."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[4:8] == b"ftyp":
        box = min(len(head), max(16, struct.unpack(">I", head[:4])[0]))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box - 3, 4)}
        if head[8:12] in _AVIF_BRANDS or (head[8:12] not in _HEIF_BRANDS and brands & _AVIF_BRANDS):
            return "avif"
        if brands & (_HEIF_BRANDS | {b"mif1", b"msf1"}):
            return "heif"
    return None


def exif_orientation(data: bytes) -> int | None:
    """The Orientation tag of IFD0 in a raw EXIF block (with or without the "Exif" prefix).

    Bounds-checked by hand, so no EXIF block can make it raise or warn.
    """
    if data.startswith(b"Exif\x00\x00"):
        data = data[6:]
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return None
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(e + "I", data, 4)
    if ifd + 2 > len(data):
        return None
    (count,) = struct.unpack_from(e + "H", data, ifd)
    for i in range(min(count, 512)):
        p = ifd + 2 + 12 * i
        if p + 12 > len(data):
            break
        tag, typ = struct.unpack_from(e + "HH", data, p)
        if tag == 0x0112:
            if typ == 3:
                return int(struct.unpack_from(e + "H", data, p + 8)[0])
            if typ == 4:
                return int(struct.unpack_from(e + "I", data, p + 8)[0])
            return None
    return None


def jpeg_frame_type(fp: IO[bytes]) -> int | None:
    """The first SOFn marker of a JPEG (which kind of JPEG it is), walking the segments."""
    fp.seek(2)
    garbage = 0
    for _ in range(10_000):
        byte = fp.read(1)
        while byte and byte != b"\xff":  # tolerate some garbage between segments
            garbage += 1
            if garbage > 65_536:
                return None
            byte = fp.read(1)
        marker = fp.read(1)
        while marker == b"\xff":
            marker = fp.read(1)
        if not marker:
            return None
        m = marker[0]
        if m in JPEG_SOF:
            return m
        if m in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        if m == 0x01 or 0xD0 <= m <= 0xD8:
            continue
        length = fp.read(2)
        if len(length) < 2:
            return None
        fp.seek(struct.unpack(">H", length)[0] - 2, os.SEEK_CUR)
    return None


def webp_header(fp: IO[bytes], *, want_exif: bool) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) from the RIFF chunks without building a decoder, which
    allocates the whole canvas; None when no chunk gives a size."""
    pos = 12
    size: tuple[int, int] | None = None
    orientation = 1
    for _ in range(64):
        fp.seek(pos)
        header = fp.read(8)
        if len(header) < 8:
            break
        kind, length = header[:4], struct.unpack("<I", header[4:])[0]
        data = fp.read(min(length, 1 << 20) if kind == b"EXIF" else min(length, 32))
        if size is None:
            size = _webp_chunk_size(kind, data)
            if size is not None and not want_exif:
                break
        elif kind == b"EXIF":
            orientation = exif_orientation(data) or 1
            break
        pos += 8 + length + (length & 1)
    if size is None:
        return None
    return size[0], size[1], orientation if 1 <= orientation <= 8 else 1


def _webp_chunk_size(kind: bytes, d: bytes) -> tuple[int, int] | None:
    if kind == b"VP8X" and len(d) >= 10:
        return 1 + int.from_bytes(d[4:7], "little"), 1 + int.from_bytes(d[7:10], "little")
    if kind == b"VP8 " and len(d) >= 10 and d[3:6] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(d[6:8], "little") & 0x3FFF,
            int.from_bytes(d[8:10], "little") & 0x3FFF,
        )
    if kind == b"VP8L" and len(d) >= 5 and d[0] == 0x2F:
        bits = int.from_bytes(d[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
