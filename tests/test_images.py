"""Safe decoding on real generated files (see tests/support/image_files.py for the zoo).

Nothing is mocked except, in one test, the absence of pillow-heif (it is installed here).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import image_headers, images
from lookalike.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    QueryError,
    UnsupportedImageError,
)
from lookalike.images import (
    IMAGE_EXTENSIONS,
    PREPROCESS_VERSION,
    clip_crop,
    clip_ready,
    is_image_name,
    load_image,
    make_thumbnail,
    probe,
)
from support.image_files import BLUE, GREEN, RED, YELLOW, make_jpeg, quadrants

BUDGET = 64_000_000
ROOT = Path(__file__).resolve().parents[1]


def close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def corners(im: Image.Image, inset: int = 3) -> list[tuple[int, ...]]:
    w, h = im.size
    return [
        im.getpixel(p)
        for p in [
            (inset, inset),
            (w - 1 - inset, inset),
            (inset, h - 1 - inset),
            (w - 1 - inset, h - 1 - inset),
        ]
    ]


def full(path: Path | bytes) -> Image.Image:
    return load_image(path, max_pixels=BUDGET, size=None).image


# -- formats and extensions -------------------------------------------------------------------

CARDS = {
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
    "gif": "gif",
    "bmp": "bmp",
    "tiff": "tiff",
    "tif": "tiff",
    "heic": "heif",
    "avif": "avif",
    "png_as_jpg": "png",
}


@pytest.mark.parametrize("key", sorted(CARDS))
def test_every_format_decodes_to_clip_ready_rgb(image_zoo: dict[str, Path], key: str) -> None:
    if key not in image_zoo:
        pytest.skip(f"this Pillow/pillow-heif cannot write {key}")
    path = image_zoo[key]
    decoded = clip_ready(path, max_pixels=BUDGET)
    assert decoded.image.size == (224, 224) and decoded.image.mode == "RGB"
    assert decoded.info == images.ImageInfo(CARDS[key], 96, 64) == probe(path)
    tol = 40 if key == "gif" else 14  # GIF is quantised to a palette
    for got, want in zip(corners(full(path)), [RED, BLUE, GREEN, YELLOW], strict=True):
        assert close(got, want, tol), (key, got, want)


@pytest.mark.parametrize("key", ["jpe", "upper_jpg", "jpeg_ext", "mixed_png", "grey_jpeg"])
def test_odd_extensions_and_grey_decode(image_zoo: dict[str, Path], key: str) -> None:
    im = clip_ready(image_zoo[key], max_pixels=BUDGET).image
    assert im.size == (224, 224) and im.mode == "RGB"


def test_sources_path_bytes_and_file_objects(image_zoo: dict[str, Path]) -> None:
    path = image_zoo["jpeg"]
    data = path.read_bytes()

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self._buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

        def seekable(self) -> bool:
            return False

        def seek(self, *args: object) -> int:
            raise io.UnsupportedOperation("seek")

    expected = clip_ready(path, max_pixels=BUDGET).image.tobytes()
    with open(path, "rb") as fh:
        fh.read(10)  # a file object not at its start is read from the start
        sources = [
            str(path),
            data,
            bytearray(data),
            memoryview(data),
            io.BytesIO(data),
            fh,
            Unseekable(),
        ]
        for source in sources:
            assert clip_ready(source, max_pixels=BUDGET).image.tobytes() == expected


# -- the pixel budget -------------------------------------------------------------------------


def test_png_bomb_is_refused_from_the_header(image_zoo: dict[str, Path]) -> None:
    path = image_zoo["bomb_png"]
    assert probe(path) == images.ImageInfo("png", 50_000, 50_000)
    started = time.perf_counter()
    for call in (
        lambda: clip_ready(path, max_pixels=BUDGET),
        lambda: make_thumbnail(path, max_pixels=BUDGET),
    ):
        with pytest.raises(ImageTooLargeError) as err:
            call()
        assert err.value.path == str(path)
        assert str(path) in str(err.value) and "max_pixels" in str(err.value)
    assert time.perf_counter() - started < 0.5


def test_huge_jpeg_decodes_at_reduced_scale(image_zoo: dict[str, Path]) -> None:
    path = image_zoo["huge_jpeg"]
    decoded = clip_ready(path, max_pixels=BUDGET)
    assert decoded.info == images.ImageInfo("jpeg", 16_000, 16_000)
    assert decoded.decoded_size == (2000, 2000)  # DCT scaling by 1/8, not a 256 MP decode
    assert decoded.image.size == (224, 224)
    assert close(decoded.image.getpixel((112, 112)), (40, 160, 60), 3)
    thumb = Image.open(io.BytesIO(make_thumbnail(path, max_pixels=BUDGET)))
    assert thumb.size == (256, 256) and thumb.format == "WEBP"
    # the budget applies to the reduced size: 2000x2000 = 4 MP
    assert clip_ready(path, max_pixels=4_000_000).decoded_size == (2000, 2000)
    with pytest.raises(ImageTooLargeError, match="1/8 scale"):
        clip_ready(path, max_pixels=3_999_999)
    with pytest.raises(ImageTooLargeError):  # no reduction asked for: the full size counts
        load_image(path, max_pixels=BUDGET, size=None)


def test_jpegs_that_cannot_be_reduced_enough_are_refused(image_zoo: dict[str, Path]) -> None:
    with pytest.raises(ImageTooLargeError, match="1/8 scale"):
        clip_ready(image_zoo["unreducible_jpeg"], max_pixels=BUDGET)
    # progressive JPEGs keep every coefficient in memory, so their full size counts
    with pytest.raises(ImageTooLargeError, match="progressive"):
        clip_ready(image_zoo["progressive_huge_jpeg"], max_pixels=BUDGET)


def test_oversized_whole_file_formats_are_refused(
    image_zoo: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebP/HEIF/AVIF plugins read the whole file: a byte cap (lowered here) guards them."""
    monkeypatch.setattr(images, "MAX_WHOLE_FILE_BYTES", 10)
    with pytest.raises(ImageTooLargeError, match="MiB"):
        clip_ready(image_zoo["webp"], max_pixels=BUDGET)
    for key in ("heic", "avif"):
        if key in image_zoo:
            with pytest.raises(ImageTooLargeError, match="MiB"):
                probe(image_zoo[key])
    assert clip_ready(image_zoo["jpeg"], max_pixels=BUDGET).image.size == (224, 224)


def test_pillow_guard_is_never_switched_off(
    image_zoo: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    clip_ready(image_zoo["huge_jpeg"], max_pixels=BUDGET)
    assert limit == Image.MAX_IMAGE_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(image_zoo["huge_jpeg"])
    # a stricter Pillow limit set by the application caps our budget too
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageTooLargeError):
        clip_ready(image_zoo["png"], max_pixels=BUDGET)


@pytest.mark.slow
def test_decoding_huge_files_keeps_memory_bounded(image_zoo: dict[str, Path]) -> None:
    """Peak RSS of a fresh process decoding the 16000x16000 JPEG and refusing the PNG bomb."""
    script = textwrap.dedent(
        """
        import json, sys, time
        import psutil
        from lookalike.images import clip_ready
        from lookalike.errors import ImageTooLargeError
        base = psutil.Process().memory_info().rss
        t = time.perf_counter()
        out = clip_ready(sys.argv[1], max_pixels=64_000_000)
        jpeg_s = time.perf_counter() - t
        try:
            clip_ready(sys.argv[2], max_pixels=64_000_000)
        except ImageTooLargeError:
            pass
        # VmHWM belongs to this process image only; ru_maxrss would include the RSS this
        # process inherited from the (large) pytest process it was forked from.
        with open("/proc/self/status") as fh:
            hwm = next(line for line in fh if line.startswith("VmHWM:"))
        peak = int(hwm.split()[1]) * 1024
        print(json.dumps({"base": base, "peak": peak, "jpeg_s": jpeg_s, "size": out.decoded_size}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(image_zoo["huge_jpeg"]), str(image_zoo["bomb_png"])],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    figures = json.loads(proc.stdout)
    extra_mb = (figures["peak"] - figures["base"]) / 2**20
    assert figures["size"] == [2000, 2000]
    assert figures["peak"] < 1.5 * 2**30 / 4, figures  # far below 1.5 GB
    assert extra_mb < 150, f"decoding took {extra_mb:.0f} MB beyond the interpreter"


def test_concurrent_decoding_in_threads(image_zoo: dict[str, Path]) -> None:
    keys = [
        "huge_jpeg",
        "bomb_png",
        "jpeg",
        "png",
        "exif_rotated",
        "rgba_png",
        "animated_gif",
        "webp",
    ] * 3
    limit = Image.MAX_IMAGE_PIXELS

    def work(key: str) -> str:
        try:
            im = clip_ready(image_zoo[key], max_pixels=BUDGET).image
            return f"{im.size}"
        except ImageTooLargeError:
            return "too large"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, keys))
    for key, result in zip(keys, results, strict=True):
        assert result == ("too large" if key == "bomb_png" else "(224, 224)")
    assert limit == Image.MAX_IMAGE_PIXELS


# -- colour modes, orientation, frames --------------------------------------------------------


def test_cmyk_and_grey_become_rgb(image_zoo: dict[str, Path]) -> None:
    assert close(full(image_zoo["cmyk_jpeg"]).getpixel((10, 10)), RED)
    assert close(full(image_zoo["grey_jpeg"]).getpixel((10, 10)), (128, 128, 128), 3)
    assert full(image_zoo["one_bit_png"]).getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize("key", ["png16", "tiff16"])
def test_16_bit_grey_is_scaled_not_clipped(image_zoo: dict[str, Path], key: str) -> None:
    im = full(image_zoo[key])  # a ramp 0..65280 left to right
    values = [im.getpixel((x, 1))[0] for x in (0, 64, 128, 255)]
    assert values == [0, 64, 128, 254] or all(
        abs(v - e) <= 1 for v, e in zip(values, [0, 64, 128, 254], strict=True)
    )


def test_32_bit_and_float_grey(image_zoo: dict[str, Path]) -> None:
    assert close(full(image_zoo["tiff_float"]).getpixel((4, 4)), (128, 128, 128), 1)  # 0.5 of 0..1
    assert close(
        full(image_zoo["tiff_int32"]).getpixel((4, 4)), (156, 156, 156), 1
    )  # 40000 of 0..65535


def test_transparency_is_composited_on_white(image_zoo: dict[str, Path]) -> None:
    for key in ("rgba_png", "webp_rgba"):
        im = full(image_zoo[key])
        assert im.mode == "RGB"
        assert im.getpixel((5, 10)) == (255, 255, 255)
        assert close(im.getpixel((30, 10)), BLUE, 2)
    assert close(full(image_zoo["half_alpha_png"]).getpixel((2, 2)), (255, 127, 127), 1)
    assert full(image_zoo["la_png"]).getpixel((2, 2)) == (255, 255, 255)
    pal = full(image_zoo["palette_png_trns"])
    assert pal.getpixel((3, 3)) == (255, 255, 255) and pal.getpixel((15, 3)) == BLUE


def test_exif_orientation_is_applied(image_zoo: dict[str, Path]) -> None:
    # stored 64x32 with red/blue over green/yellow; orientation 6 turns it a quarter clockwise
    path = image_zoo["exif_rotated"]
    assert probe(path) == images.ImageInfo("jpeg", 32, 64)
    im = full(path)
    assert im.size == (32, 64)
    for got, want in zip(corners(im), [GREEN, RED, YELLOW, BLUE], strict=True):
        assert close(got, want), (got, want)
    mirrored = full(image_zoo["exif_mirrored"])  # orientation 2: a left-right flip
    for got, want in zip(corners(mirrored), [BLUE, RED, YELLOW, GREEN], strict=True):
        assert close(got, want, 2)
    thumb = Image.open(io.BytesIO(make_thumbnail(path, max_pixels=BUDGET, fmt="png")))
    assert thumb.size == (32, 64)


@pytest.mark.parametrize("fmt", ["heic", "avif", "webp", "png", "tiff"])
def test_exif_orientation_in_other_formats(fmt: str) -> None:
    card, tags = quadrants(64, 32), Image.Exif()
    tags[0x0112] = 6
    out = io.BytesIO()
    if fmt == "heic":
        pillow_heif = pytest.importorskip("pillow_heif")
        if not pillow_heif.libheif_info().get("HEIF"):
            pytest.skip("libheif here has no HEVC encoder")
        pillow_heif.from_pillow(card).save(out, quality=95, exif=tags.tobytes())
    else:
        options = {"lossless": True} if fmt == "webp" else {}
        try:
            card.save(out, fmt.upper(), exif=tags.tobytes(), **options)
        except (KeyError, OSError) as exc:
            pytest.skip(f"cannot write {fmt} here: {exc}")
    data = out.getvalue()
    assert (probe(data).width, probe(data).height) == (32, 64)
    im = full(data)
    for got, want in zip(corners(im), [GREEN, RED, YELLOW, BLUE], strict=True):
        assert close(got, want), (fmt, got, want)


def test_broken_exif_is_ignored(image_zoo: dict[str, Path]) -> None:
    for key in ("bad_exif", "bad_orientation"):
        decoded = load_image(image_zoo[key], max_pixels=BUDGET, size=None)
        assert decoded.image.size == (40, 30) and decoded.info.width == 40


@pytest.mark.parametrize("key", ["animated_gif", "animated_webp", "apng", "multipage_tiff"])
def test_first_frame_of_animations_and_pages(image_zoo: dict[str, Path], key: str) -> None:
    assert close(clip_ready(image_zoo[key], max_pixels=BUDGET).image.getpixel((100, 100)), RED, 8)


# -- broken and wrong files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "error", "words"),
    [
        ("truncated_jpeg", CorruptImageError, "truncated"),
        ("truncated_png", CorruptImageError, "truncated"),
        ("header_only_png", CorruptImageError, "damaged"),
        ("garbage_png", CorruptImageError, "damaged"),
        ("empty", CorruptImageError, "empty"),
        ("text_as_jpg", UnsupportedImageError, "not a supported image"),
        ("ds_store", UnsupportedImageError, "not a supported image"),
        ("appledouble", UnsupportedImageError, "not a supported image"),
    ],
)
def test_bad_files_raise_typed_errors_naming_the_file(
    image_zoo: dict[str, Path], key: str, error: type[ImageError], words: str
) -> None:
    path = image_zoo[key]
    for call in (clip_ready, make_thumbnail):
        with pytest.raises(error) as err:
            call(path, max_pixels=BUDGET)
        assert type(err.value) is error
        assert err.value.path == str(path) and str(err.value).startswith(f"{path}: ")
        assert words in str(err.value)
        assert "remove it" in str(err.value)  # says what to do


def test_bytes_source_errors_carry_no_path() -> None:
    with pytest.raises(UnsupportedImageError) as err:
        clip_ready(b"hello", max_pixels=BUDGET)
    assert err.value.path is None and not str(err.value).startswith("None")


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read the file") as err:
        clip_ready(tmp_path / "missing.jpg", max_pixels=BUDGET)
    assert err.value.path == str(tmp_path / "missing.jpg")
    with pytest.raises(UnsupportedImageError, match="not a regular file"):
        probe(tmp_path)
    os.mkfifo(tmp_path / "pipe.jpg")  # must not block waiting for a writer
    with pytest.raises(UnsupportedImageError, match="not a regular file"):
        clip_ready(tmp_path / "pipe.jpg", max_pixels=BUDGET)


def test_heif_without_pillow_heif_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """pillow-heif is installed here, so its absence is simulated by blocking the import."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setitem(sys.modules, "pillow_heif.as_plugin", None)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(UnsupportedImageError, match=r"pip install 'lookalike\[heif\]'"):
        clip_ready(heic, max_pixels=BUDGET)


def test_mangled_files_only_ever_raise_image_errors(image_zoo: dict[str, Path]) -> None:
    """Truncations and byte flips of every format: a result or an ImageError, nothing else."""
    rng = random.Random(1234)
    keys = [
        "jpeg",
        "png",
        "webp",
        "gif",
        "bmp",
        "tiff",
        "apng",
        "animated_webp",
        "exif_rotated",
        "cmyk_jpeg",
        "png16",
        "palette_png_trns",
        "heic",
        "avif",
    ]
    outcomes = {"ok": 0, "error": 0}
    for key in (k for k in keys if k in image_zoo):
        data = image_zoo[key].read_bytes()
        for _ in range(25):
            mangled = bytearray(data)
            if rng.random() < 0.4:
                mangled = mangled[: rng.randrange(1, len(mangled))]
            for _ in range(rng.randint(1, 8)):
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
            try:
                im = clip_ready(bytes(mangled), max_pixels=BUDGET).image
            except ImageError as exc:
                assert exc.reason
                outcomes["error"] += 1
            else:
                assert im.size == (224, 224) and im.mode == "RGB"
                outcomes["ok"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_header_parsers_never_raise_on_garbage(image_zoo: dict[str, Path]) -> None:
    rng = random.Random(99)
    seeds = [image_zoo[k].read_bytes()[:4096] for k in ("jpeg", "webp", "exif_rotated", "tiff")]
    for i in range(2000):
        data = bytearray(rng.choice(seeds) if i % 2 else rng.randbytes(rng.randrange(0, 300)))
        for _ in range(rng.randint(0, 12)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        blob = bytes(data[: rng.randrange(0, len(data) + 1)])
        assert image_headers.sniff(blob) in {
            None,
            "jpeg",
            "png",
            "gif",
            "webp",
            "bmp",
            "tiff",
            "heif",
            "avif",
        }
        assert image_headers.exif_orientation(blob) is None or isinstance(
            image_headers.exif_orientation(blob), int
        )
        assert image_headers.jpeg_frame_type(io.BytesIO(blob)) in image_headers.JPEG_SOF | {None}
        found = image_headers.webp_header(io.BytesIO(blob), want_exif=True)
        assert found is None or (found[0] > 0 and found[1] > 0 and 1 <= found[2] <= 8)


# -- resizing and thumbnails ------------------------------------------------------------------


def test_clip_ready_matches_resize_then_centre_crop() -> None:
    rng = np.random.default_rng(7)
    src = Image.fromarray(rng.integers(0, 256, (300, 517, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    src.save(buf, "PNG")
    ours = np.asarray(clip_ready(buf.getvalue(), max_pixels=BUDGET).image, np.int16)
    # the reference: CLIPImageProcessor's steps with Pillow
    nw = int(224 * 517 / 300)
    ref = src.resize((nw, 224), Image.Resampling.BICUBIC)
    left = (nw - 224) // 2
    ref_arr = np.asarray(ref.crop((left, 0, left + 224, 224)), np.int16)
    assert np.abs(ours - ref_arr).max() <= 1


def test_draft_decoding_stays_close_to_a_full_decode(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), "RGB")
    photo = coarse.resize((2400, 1800), Image.Resampling.BICUBIC)
    path = tmp_path / "photo.jpg"
    photo.save(path, "JPEG", quality=90)
    fast = clip_ready(path, max_pixels=BUDGET)
    assert fast.decoded_size == (300, 225)
    with Image.open(path) as reference:
        ref = (
            reference.convert("RGB")
            .resize((298, 224), Image.Resampling.BICUBIC)
            .crop((37, 0, 261, 224))
        )
    diff = np.abs(np.asarray(fast.image, np.int16) - np.asarray(ref, np.int16))
    assert diff.mean() < 2.0


def test_large_downscales_stay_close_to_pure_bicubic(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), "RGB")
    smooth = np.asarray(coarse.resize((2000, 1500), Image.Resampling.BICUBIC), np.int16)
    grain = rng.integers(-8, 9, (1500, 2000, 1), dtype=np.int16)
    photo = Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8), "RGB")
    photo.save(tmp_path / "photo.png", compress_level=1)
    ours = np.asarray(clip_ready(tmp_path / "photo.png", max_pixels=BUDGET).image, np.int16)
    ref = photo.resize((298, 224), Image.Resampling.BICUBIC).crop((37, 0, 261, 224))
    diff = np.abs(ours - np.asarray(ref, np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 3


def test_load_image_sizes() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), RED).save(buf, "PNG")
    data = buf.getvalue()
    assert load_image(data, max_pixels=BUDGET, size=100, crop=False).image.size == (150, 100)
    assert load_image(data, max_pixels=BUDGET, size=32).image.size == (32, 32)
    assert load_image(data, max_pixels=BUDGET, size=None).image.size == (96, 64)
    with pytest.raises(QueryError):
        load_image(data, max_pixels=BUDGET, size=0)
    with pytest.raises(QueryError):
        load_image(data, max_pixels=0)


def test_extreme_aspect_ratio_is_cheap() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1, 20_000), BLUE).save(buf, "PNG")
    started = time.perf_counter()
    assert clip_ready(buf.getvalue(), max_pixels=BUDGET).image.getpixel((5, 5)) == BLUE
    assert time.perf_counter() - started < 1
    with pytest.raises(ImageTooLargeError):  # 224 x 4,480,000 without the crop
        load_image(buf.getvalue(), max_pixels=BUDGET, size=224, crop=False)


@pytest.mark.parametrize(
    ("fmt", "pil"), [("webp", "WEBP"), ("jpeg", "JPEG"), ("JPG", "JPEG"), ("png", "PNG")]
)
def test_thumbnails(tmp_path: Path, fmt: str, pil: str) -> None:
    big = make_jpeg(tmp_path / "big.jpg", 1200, 500, GREEN)
    thumb = Image.open(io.BytesIO(make_thumbnail(big, max_pixels=BUDGET, fmt=fmt)))
    assert thumb.format == pil and thumb.size == (256, 107)
    assert close(thumb.convert("RGB").getpixel((50, 50)), GREEN)
    small = make_jpeg(tmp_path / "small.jpg", 40, 30, RED)
    assert Image.open(
        io.BytesIO(make_thumbnail(small, max_pixels=BUDGET, fmt=fmt, size=128))
    ).size == (40, 30)


def test_thumbnail_bad_arguments(image_zoo: dict[str, Path]) -> None:
    with pytest.raises(QueryError, match="gif"):
        make_thumbnail(image_zoo["png"], max_pixels=BUDGET, fmt="gif")
    with pytest.raises(QueryError):
        make_thumbnail(image_zoo["png"], max_pixels=BUDGET, size=0)


# -- names --------------------------------------------------------------------------------------


def test_image_names_and_extensions() -> None:
    for name in [
        "a.jpg",
        "B.JPG",
        "c.Jpeg",
        "d.jpe",
        "e.PNG",
        "f.webp",
        "g.gif",
        "h.bmp",
        "i.TIF",
        "j.tiff",
        "dir/k.png",
    ]:
        assert is_image_name(name), name
    for name in [
        "._a.jpg",
        ".hidden.png",
        ".DS_Store",
        "Thumbs.db",
        "notes.txt",
        "jpg",
        "x.jpg.part",
        "",
    ]:
        assert not is_image_name(name), name
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
    if importlib.util.find_spec("pillow_heif"):
        assert {".heic", ".heif"} <= IMAGE_EXTENSIONS and is_image_name("IMG_0001.HEIC")
    assert PREPROCESS_VERSION.endswith("/v1") and "224" in PREPROCESS_VERSION


def test_no_global_state_is_touched(image_zoo: dict[str, Path]) -> None:
    before = (Image.MAX_IMAGE_PIXELS, "HEIF" in Image.OPEN, list(warnings_filters()))
    for key in ("heic", "avif", "jpeg", "webp", "huge_jpeg"):
        if key in image_zoo:
            clip_ready(image_zoo[key], max_pixels=BUDGET)
    assert (Image.MAX_IMAGE_PIXELS, "HEIF" in Image.OPEN, list(warnings_filters())) == before


def warnings_filters() -> list[object]:
    import warnings

    return list(warnings.filters)


def test_clip_crop_matches_clip_ready_for_an_in_memory_image(tmp_path: Path) -> None:
    """The Searcher's PIL-image path must preprocess exactly like files do."""
    rng = np.random.default_rng(3)
    rgba = Image.fromarray(rng.integers(0, 256, (300, 500, 4), dtype=np.uint8), "RGBA")
    path = tmp_path / "wide.png"
    rgba.save(path)
    from_file = clip_ready(path, max_pixels=10_000_000).image
    from_memory = clip_crop(Image.open(path))
    assert from_memory.size == (224, 224) and from_memory.mode == "RGB"
    assert np.array_equal(np.asarray(from_file), np.asarray(from_memory))
