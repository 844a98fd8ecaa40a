"""Safe image decoding: sniff by content, pixel budget, JPEG draft decoding, RGB on white.

Every public function takes a path, ``bytes`` or a binary file object and either
returns pixels or raises an :class:`~lookalike.errors.ImageError` subclass whose
message names the file and says what to do.

How the pixel budget works without touching Pillow's global guard: the format
is sniffed from the first bytes and the matching Pillow plugin class is built
directly, which parses only the header. The budget is then checked against the
size that will actually be decoded. For sequential JPEGs that is the size after
``draft()`` (DCT scaling by 1/2, 1/4 or 1/8), so a 16000x16000 photo decodes at
2000x2000; for every other format it is the header size. Nothing global is
changed, so this is thread-safe, and no image larger than
``min(max_pixels, PIL.Image.MAX_IMAGE_PIXELS)`` is ever decoded, so Pillow's
``DecompressionBombWarning`` cannot fire for an image we accept.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from typing import IO, Any

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
    features,
)

from lookalike.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    LookalikeError,
    QueryError,
    UnsupportedImageError,
)
from lookalike.image_headers import (
    JPEG_PROGRESSIVE,
    JPEG_SEQUENTIAL,
    exif_orientation,
    jpeg_frame_type,
    sniff,
    webp_header,
)
from lookalike.image_modes import to_rgb
from lookalike.image_prep import ImagePrep

__all__ = [
    "IMAGE_EXTENSIONS",
    "PREPROCESS_VERSION",
    "DecodedImage",
    "ImageInfo",
    "Source",
    "clip_and_reduced",
    "clip_crop",
    "clip_ready",
    "model_ready",
    "prep_image",
    "is_image_name",
    "load_image",
    "make_thumbnail",
    "probe",
]

PREPROCESS_VERSION = "rgb-on-white/short224-bicubic/center-crop/v1"
CLIP_SIZE = 224

_HAS_HEIF = find_spec("pillow_heif") is not None
_HAS_AVIF = bool(features.check_module("avif"))
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    [".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"]
    + ([".heic", ".heif"] if _HAS_HEIF else [])
    + ([".avif"] if _HAS_AVIF else [])
)

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


class _JpegFile(JpegImagePlugin.JpegImageFile):
    """A JPEG (or the first picture of an MPO) whose header parse skips Pillow's EXIF DPI
    lookup: that parses the whole EXIF block and warns on the broken ones many cameras and
    editors write, and lookalike has no use for DPI."""

    def _read_dpi_from_exif(self) -> None:
        return None


_PLUGINS: dict[str, type[ImageFile.ImageFile]] = {
    "jpeg": _JpegFile,
    "png": PngImagePlugin.PngImageFile,
    "gif": GifImagePlugin.GifImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
}
#: WebP, HEIF and AVIF files are read whole before decoding; larger ones are refused
MAX_WHOLE_FILE_BYTES = 256 * 2**20
_WHOLE_FILE_FORMATS = {"webp", "heif", "avif"}
_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIF or AVIF"
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_BICUBIC = Image.Resampling.BICUBIC
_RESAMPLE = {"bicubic": _BICUBIC, "bilinear": Image.Resampling.BILINEAR}
# Downscales by more than 6x first average whole blocks (Image.reduce), then resample
# bicubically: 4-5x faster on a 12 MP PNG, and within 0.2 grey levels on average (at most
# 1) of a pure bicubic resize on photographs. Smaller downscales are pure bicubic.
_GAP = 3.0
_THUMB_FORMATS = {"webp": "WEBP", "jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}
_DAMAGED = "re-export or re-download the file, or remove it from the folder"


@dataclass(frozen=True)
class ImageInfo:
    """What the file holds: format (lower-case) and size as displayed (after EXIF orientation)."""

    format: str
    width: int
    height: int


@dataclass
class DecodedImage:
    """RGB pixels ready for use; ``decoded_size`` is what the decoder produced before resizing
    (smaller than ``info`` when a JPEG was decoded at a reduced scale)."""

    image: Image.Image
    info: ImageInfo
    decoded_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.decoded_size is None:
            self.decoded_size = self.image.size


def is_image_name(name: str) -> bool:
    """True for a name with an image extension (any case); hidden and ``._*`` files excluded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not base or base.startswith("."):
        return False
    ext = os.path.splitext(base)[1].lower()
    return ext in IMAGE_EXTENSIONS


def probe(source: Source) -> ImageInfo:
    """Format and displayed size from the header alone; no pixels are decoded."""
    with _opened(source) as (fp, path, fmt):
        if fmt == "webp":
            w, h, orientation = _webp_size(fp, path, want_exif=True)
        else:
            im = _construct(fmt, fp, path)
            w, h = im.size
            orientation = _orientation(im, fmt)
        return _info(fmt, w, h, orientation)


def load_image(
    source: Source, *, max_pixels: int, size: int | None = CLIP_SIZE, crop: bool = True
) -> DecodedImage:
    """Decode to RGB (alpha composited on white, EXIF orientation applied, first frame).

    With ``size``, the shortest side is resized to ``size`` (bicubic) and, with ``crop``,
    the centre ``size`` x ``size`` square is kept. With ``size=None`` the full image is returned.
    """
    if size is not None and size <= 0:
        raise QueryError(f"size must be a positive number of pixels, not {size}", field="size")
    return _decode(source, max_pixels, ("short", size, crop) if size else ("full", 0, False))


def clip_ready(source: Source, *, max_pixels: int) -> DecodedImage:
    """224x224 RGB, as CLIP's preprocessing expects: shortest side 224 bicubic, centre crop."""
    return load_image(source, max_pixels=max_pixels, size=CLIP_SIZE, crop=True)


def model_ready(source: Source, *, max_pixels: int, prep: ImagePrep) -> DecodedImage:
    """RGB pixels as ``prep`` (the model's preprocessing) wants them: CLIP's shortest side
    and centre crop, or SigLIP's whole image squashed to a square."""
    if prep.crop:
        return load_image(source, max_pixels=max_pixels, size=prep.size, crop=True)
    return _decode(source, max_pixels, ("square", prep.size, False), _RESAMPLE[prep.resample])


def prep_image(image: Image.Image, prep: ImagePrep) -> Image.Image:
    """An already-decoded PIL image made ready for ``prep`` as ``model_ready`` does a file."""
    rgb = to_rgb(image)
    target: _Target = ("short", prep.size, True) if prep.crop else ("square", prep.size, False)
    return _fit(rgb, target, rgb.width * rgb.height, None, _RESAMPLE[prep.resample])


def clip_crop(image: Image.Image) -> Image.Image:
    """An already-decoded PIL image made CLIP-ready exactly as ``clip_ready`` does a file:
    RGB (alpha on white), shortest side 224 bicubic, centre crop. The caller decoded it, so
    no pixel budget applies here."""
    rgb = to_rgb(image)
    return _fit(rgb, ("short", CLIP_SIZE, True), rgb.width * rgb.height, None)


def make_thumbnail(source: Source, *, max_pixels: int, size: int = 256, fmt: str = "webp") -> bytes:
    """Encoded thumbnail bytes whose longest side is at most ``size`` (never upscaled, no crop)."""
    pil_format = _THUMB_FORMATS.get(fmt.lower())
    if pil_format is None:
        choices = ", ".join(sorted(_THUMB_FORMATS))
        raise QueryError(f"unknown thumbnail format {fmt!r}; use one of {choices}", field="fmt")
    if size <= 0:
        raise QueryError(f"thumbnail size must be positive, not {size}", field="size")
    decoded = _decode(source, max_pixels, ("fit", size, False))
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": 80} if pil_format in ("WEBP", "JPEG") else {}
    decoded.image.save(out, pil_format, **options)
    return out.getvalue()


# -- decoding -------------------------------------------------------------------------------

_Target = tuple[str, int, bool]  # ("short" | "square" | "fit" | "full", size, crop)


def _decode(
    source: Source, max_pixels: int, target: _Target, resample: Image.Resampling = _BICUBIC
) -> DecodedImage:
    rgb, info, decoded_size, budget, path = _decode_rgb(source, max_pixels, target)
    return DecodedImage(_fit(rgb, target, budget, path, resample), info, decoded_size)


def clip_and_reduced(
    source: Source, *, max_pixels: int, short_side: int, prep: ImagePrep | None = None
) -> tuple[DecodedImage, Image.Image]:
    """One decode, two outputs: the model-ready image (``prep``, CLIP's by default) and a
    reduced RGB copy whose short side is at most ``short_side`` (never upscaled), which
    region tiles are cut from. A JPEG is drafted for the larger of the two, so its pixels
    cost what the copy needs."""
    want: _Target = ("short", short_side, False)
    rgb, info, decoded_size, budget, path = _decode_rgb(source, max_pixels, want)
    if prep is None:
        model = _fit(rgb, ("short", CLIP_SIZE, True), budget, path)
    else:
        target: _Target = ("short", prep.size, True) if prep.crop else ("square", prep.size, False)
        model = _fit(rgb, target, budget, path, _RESAMPLE[prep.resample])
    if min(rgb.size) > short_side:
        rgb = _fit(rgb, want, budget, path)
    return DecodedImage(model, info, decoded_size), rgb


def _decode_rgb(
    source: Source, max_pixels: int, target: _Target
) -> tuple[Image.Image, ImageInfo, tuple[int, int], int, str | None]:
    budget = _budget(max_pixels)
    with _opened(source) as (fp, path, fmt):
        if fmt == "webp":  # the WebP decoder allocates its canvas when built: check first
            w, h, _ = _webp_size(fp, path, want_exif=False)
            _check_budget(w, h, w * h, budget, path)
        im = _construct(fmt, fp, path)
        w, h = im.size
        request = _request(w, h, target)
        if fmt == "jpeg":
            _prepare_jpeg(im, fp, path, request, budget)
        else:
            tile = getattr(im, "_tile_size", im.size)
            _check_budget(w, h, max(w * h, tile[0] * tile[1]), budget, path)
        im.load()
        orientation = _orientation(im, fmt)
        info = _info(fmt, w, h, orientation)
        pixels: Image.Image = im
        if orientation in _TRANSPOSE:
            pixels = pixels.transpose(_TRANSPOSE[orientation])
        decoded_size = pixels.size
        return to_rgb(pixels, path), info, decoded_size, budget, path


def _request(w: int, h: int, target: _Target) -> tuple[int, int] | None:
    """The output size in stored orientation (resizing is symmetric: rotation does not matter)."""
    kind, size, _ = target
    if kind == "short":
        return _short_side_size(w, h, size)
    if kind == "square":
        return size, size
    if kind == "fit" and max(w, h) > size:
        return _fit_size(w, h, size)
    return None


def _prepare_jpeg(
    im: ImageFile.ImageFile,
    fp: IO[bytes],
    path: str | None,
    request: tuple[int, int] | None,
    budget: int,
) -> None:
    w, h = im.size
    sof = jpeg_frame_type(fp)
    scale = 1
    if request and sof in JPEG_SEQUENTIAL | JPEG_PROGRESSIVE:
        # Pillow's draft() picks the largest of 8, 4, 2, 1 that keeps both sides >= request
        ratio = min(w // request[0], h // request[1])
        scale = next((s for s in (8, 4, 2) if ratio >= s), 1)
    dw, dh = -(-w // scale), -(-h // scale)
    _check_budget(w, h, dw * dh, budget, path, scale=scale)
    if sof not in JPEG_SEQUENTIAL and w * h > budget:
        raise ImageTooLargeError(
            f"{w}x{h} is a progressive or lossless JPEG of {_mp(w * h)}, over the budget of "
            f"{_mp(budget)}; such files must be held whole in memory to decode. Re-save it as a "
            "baseline JPEG or at a smaller size, or raise max_pixels",
            path=path,
        )
    if scale > 1 and request:
        im.draft("RGB", request)
        _check_budget(w, h, im.size[0] * im.size[1], budget, path, scale=scale)


def _fit(
    im: Image.Image,
    target: _Target,
    budget: int,
    path: str | None,
    resample: Image.Resampling = _BICUBIC,
) -> Image.Image:
    kind, size, crop = target
    w, h = im.size
    if kind == "square":  # as SigLIP's processor: the whole image, aspect not kept
        return im if (w, h) == (size, size) else im.resize((size, size), resample)
    if kind == "fit":
        if max(w, h) <= size:
            return im
        return im.resize(_fit_size(w, h, size), _BICUBIC, reducing_gap=_GAP)
    if kind != "short":
        return im
    nw, nh = _short_side_size(w, h, size)
    if not crop:
        if nw * nh > budget:
            _check_budget(nw, nh, nw * nh, budget, path)
        return im if (nw, nh) == (w, h) else im.resize((nw, nh), _BICUBIC, reducing_gap=_GAP)
    # Resize then centre-crop, computed in one step: resample only the source box that
    # lands in the crop (identical pixels, and no huge upscale for extreme aspect ratios).
    left, top = (nw - size) // 2, (nh - size) // 2
    sx, sy = w / nw, h / nh
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return im.resize((size, size), _BICUBIC, box=box, reducing_gap=_GAP)


def _short_side_size(w: int, h: int, size: int) -> tuple[int, int]:
    # as CLIPImageProcessor: the long side is truncated, not rounded
    if w <= h:
        return size, max(size, int(size * h / w))
    return max(size, int(size * w / h)), size


def _fit_size(w: int, h: int, size: int) -> tuple[int, int]:
    scale = size / max(w, h)
    return max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))


# -- opening and header parsing ---------------------------------------------------------------


@contextmanager
def _opened(source: Source) -> Iterator[tuple[IO[bytes], str | None, str]]:
    """Yield (seekable file, path for messages, sniffed format); map every failure to ImageError."""
    with _readable(source) as (fp, path):
        try:
            head = fp.read(64)
            fp.seek(0)
            if not head:
                raise CorruptImageError(f"the file is empty (0 bytes); {_DAMAGED}", path=path)
            fmt = sniff(head)
            if fmt is None:
                raise UnsupportedImageError(
                    f"not a supported image: the content is not {_FORMAT_NAMES}, whatever the "
                    "file name says; convert it to JPEG or PNG, or remove it from the folder",
                    path=path,
                )
            yield fp, path, fmt
        except LookalikeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(
                f"too many pixels to decode safely ({exc}); downscale the file", path=path
            ) from exc
        except MemoryError:
            raise ImageTooLargeError(
                "not enough memory to decode it; lower max_pixels or downscale the file", path=path
            ) from None
        except Exception as exc:  # any decoder failure on bad input is a damaged file
            detail = str(exc) or type(exc).__name__
            raise CorruptImageError(
                f"cannot decode it: the data is truncated or damaged ({detail}); {_DAMAGED}",
                path=path,
            ) from exc


@contextmanager
def _readable(source: Source) -> Iterator[tuple[IO[bytes], str | None]]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source), None
        return
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            # O_NONBLOCK: opening a FIFO named photo.jpg must not hang
            fd = os.open(
                path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ImageError(
                f"cannot read the file ({reason}); check that it exists and is readable", path=path
            ) from exc
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if not regular:
            os.close(fd)
            raise UnsupportedImageError("not a regular file; give an image file", path=path)
        with open(fd, "rb") as file:
            yield file, path
        return
    stream: IO[bytes] = source
    try:
        stream.seek(0)
    except (AttributeError, OSError, ValueError):  # not seekable: read what it holds
        try:
            stream = io.BytesIO(source.read())
        except (AttributeError, OSError, ValueError) as exc:
            raise ImageError(f"cannot read the image data ({exc}); send the file again") from exc
    yield stream, None


def _construct(fmt: str, fp: IO[bytes], path: str | None) -> ImageFile.ImageFile:
    """Parse the header with the format's Pillow plugin, bypassing ``Image.open``'s global limit
    (the callers apply the stricter per-call budget instead)."""
    if fmt == "heif":
        try:
            from pillow_heif.as_plugin import HeifImageFile
        except ImportError:
            raise UnsupportedImageError(
                "HEIC/HEIF images need the pillow-heif package: pip install 'lookalike[heif]'",
                path=path,
            ) from None
        cls: type[ImageFile.ImageFile] = HeifImageFile
    elif fmt == "avif":
        from PIL import AvifImagePlugin

        if not AvifImagePlugin.SUPPORTED:
            raise UnsupportedImageError(
                "this Pillow has no AVIF support; install a Pillow build with AVIF "
                "(pip install -U pillow) or convert the file to JPEG",
                path=path,
            )
        cls = AvifImagePlugin.AvifImageFile
    else:
        cls = _PLUGINS[fmt]
    if fmt in _WHOLE_FILE_FORMATS:  # these plugins read the whole file into memory
        size = fp.seek(0, os.SEEK_END)
        if size > MAX_WHOLE_FILE_BYTES:
            raise ImageTooLargeError(
                f"the {fmt.upper()} file is {size / 2**20:.0f} MiB, over the limit of "
                f"{MAX_WHOLE_FILE_BYTES // 2**20} MiB for this format; convert it to JPEG",
                path=path,
            )
    fp.seek(0)
    im = cls(fp)
    if im.size[0] <= 0 or im.size[1] <= 0:
        raise CorruptImageError(f"the header gives an empty size {im.size}; {_DAMAGED}", path=path)
    return im


def _budget(max_pixels: int) -> int:
    if max_pixels <= 0:
        raise QueryError(f"max_pixels must be positive, not {max_pixels}", field="max_pixels")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return min(max_pixels, int(pillow_limit)) if pillow_limit else max_pixels


def _check_budget(
    w: int, h: int, decoded: int, budget: int, path: str | None, *, scale: int = 1
) -> None:
    if decoded <= budget:
        return
    how = f" even when decoded at 1/{scale} scale" if scale > 1 else ""
    raise ImageTooLargeError(
        f"{w}x{h} is {_mp(w * h)}, over the budget of {_mp(budget)} decoded pixels{how}; "
        "downscale the file or raise max_pixels (LOOKALIKE_MAX_PIXELS)",
        path=path,
    )


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} megapixels"


def _info(fmt: str, w: int, h: int, orientation: int) -> ImageInfo:
    return ImageInfo(fmt, h, w) if orientation in (5, 6, 7, 8) else ImageInfo(fmt, w, h)


def _orientation(im: Image.Image, fmt: str) -> int:
    """The EXIF orientation (1-8), or 1 when absent or unreadable. Parsed here, not by Pillow,
    so broken EXIF can neither raise nor warn."""
    if fmt in ("tiff", "heif"):  # their plugins report the displayed size and rotate on load
        return 1
    try:
        raw = im.info.get("exif")
        value = exif_orientation(bytes(raw)) if isinstance(raw, bytes | bytearray) else None
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _webp_size(fp: IO[bytes], path: str | None, *, want_exif: bool) -> tuple[int, int, int]:
    found = webp_header(fp, want_exif=want_exif)
    if found is None:
        raise CorruptImageError(f"the WebP header holds no image size; {_DAMAGED}", path=path)
    return found
