"""Helpers for the web tests: generated images, settings, error-body checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from starlette.testclient import TestClient

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.web import create_app

PALETTE = [
    (220, 20, 20),
    (20, 200, 40),
    (20, 40, 220),
    (240, 220, 20),
    (240, 120, 20),
    (140, 30, 200),
]


def draw_image(i: int, w: int = 120, h: int = 90) -> Image.Image:
    """A visually distinct picture for index ``i`` (shape, colours and stripes vary)."""
    bg, fg = PALETTE[i % 6], PALETTE[(i * 5 + 3) % 6]
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    kind = i % 4
    if kind == 0:
        draw.ellipse((w // 5, h // 5, w * 4 // 5, h * 4 // 5), fill=fg)
    elif kind == 1:
        for x in range(0, w, 6 + i % 7):
            draw.rectangle((x, 0, x + 3, h), fill=fg)
    elif kind == 2:
        draw.polygon([(w // 2, 4), (w - 4, h - 4), (4, h - 4)], fill=fg)
    else:
        for y in range(0, h, 5 + i % 9):
            draw.line((0, y, w, y + 20), fill=fg, width=3)
    return im


def write_images(root: Path, count: int, *, start: int = 0) -> list[Path]:
    """``count`` images in ``root/shapes`` and ``root/more`` as JPEG, PNG and WebP."""
    out = []
    for i in range(start, start + count):
        folder = root / ("shapes" if i % 2 == 0 else "more")
        folder.mkdir(parents=True, exist_ok=True)
        ext, fmt = [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")][i % 3]
        path = folder / f"image-{i:03d}.{ext}"
        draw_image(i, 100 + 4 * (i % 5), 80 + 2 * (i % 3)).save(path, fmt)
        out.append(path)
    return out


def make_settings(home: Path, clip_dir: Path, text_dir: Path, **extra: object) -> Settings:
    return Settings(
        home=home, image_model=str(clip_dir), text_model=str(text_dir), batch_size=8
    ).with_overrides(**extra)


def app_client(collection: Collection, **settings_overrides: object) -> TestClient:
    """A TestClient over ``collection``; use it as a context manager."""
    settings = (
        collection.settings.with_overrides(**settings_overrides)
        if settings_overrides
        else collection.settings
    )
    return TestClient(create_app(settings, collection=collection))


def first_id(client: TestClient, q: str = "red circle") -> str:
    body = client.get("/api/v1/search", params={"q": q, "k": 1}).json()
    return str(body["results"][0]["id"])


def assert_error(response: Any, status: int, field: str | None) -> dict[str, object]:
    """The response has ``status`` and the JSON error body naming ``field``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "field", "type"}, error
    assert error["field"] == field, error
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    return dict(error)
