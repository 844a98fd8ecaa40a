"""How hits and records look to clients: the JSON result shape and the template view.

One function builds both, so the API and the page always agree on names, URLs
and sizes. URLs carry ``v`` (a prefix of the content hash) so browsers may cache
images for good: a re-indexed, edited file gets a new URL.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from lookalike.records import Hit, Record

__all__ = [
    "API",
    "BROWSER_FORMATS",
    "hit_view",
    "image_urls",
    "record_view",
    "region_outline",
    "thumb_box",
]

API = "/api/v1"
THUMB = 256
#: formats a browser displays itself; others are shown through a 1024 px preview
BROWSER_FORMATS = frozenset({"jpeg", "mpo", "png", "gif", "webp", "bmp", "avif", "ico"})


def image_urls(doc_id: str, sha256: str) -> dict[str, str]:
    ident = quote(doc_id, safe="")
    version = f"v={sha256[:16]}" if sha256 else ""
    sep = "?" + version if version else ""
    amp = "&" + version if version else ""
    return {
        "thumbnail": f"{API}/images/{ident}/thumbnail{sep}",
        "preview": f"{API}/images/{ident}/thumbnail?size=1024{amp}",
        "image": f"{API}/images/{ident}/file{sep}",
        "similar": f"{API}/images/{ident}/similar",
        "page": f"/?similar={ident}",
        "view": f"/view/{ident}",
    }


def thumb_box(width: int, height: int, size: int = THUMB) -> tuple[int, int]:
    """The thumbnail's pixel size: the image fitted inside ``size`` x ``size``, never enlarged."""
    if width <= 0 or height <= 0:
        return size, size
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _iso(mtime: Any) -> str | None:
    try:
        return datetime.fromtimestamp(float(mtime), tz=UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def record_view(
    doc_id: str, path: str, metadata: dict[str, Any], score: float | None = None
) -> dict[str, Any]:
    """JSON-ready description of one image (with its score when it is a search hit)."""
    width = int(metadata.get("width") or 0)
    height = int(metadata.get("height") or 0)
    tw, th = thumb_box(width, height)
    fmt = str(metadata.get("format") or "")
    sha = str(metadata.get("sha256") or "")
    out: dict[str, Any] = {"id": doc_id}
    if score is not None:
        out["score"] = round(float(score), 6)
    out.update(
        {
            "name": posixpath.basename(path),
            "path": path,
            "folder": metadata.get("folder") or posixpath.dirname(path),
            "relpath": metadata.get("relpath"),
            "format": fmt,
            "width": width,
            "height": height,
            "size": metadata.get("size"),
            "modified": _iso(metadata.get("mtime")),
            "metadata": metadata,
            "thumbnail": {"width": tw, "height": th},
            "browser_displayable": fmt.lower() in BROWSER_FORMATS,
            "urls": image_urls(doc_id, sha),
        }
    )
    return out


def hit_view(hit: Hit) -> dict[str, Any]:
    view = record_view(hit.id, hit.path, dict(hit.metadata), hit.score)
    if hit.region is not None:
        view["region"] = [round(v, 4) for v in hit.region]
        view["region_outline"] = region_outline(hit.region, view["width"], view["height"])
    return view


def region_outline(
    box: tuple[float, float, float, float], width: int, height: int
) -> dict[str, float]:
    """The box in percent of a square thumbnail that crops the image to cover it (CSS
    ``object-fit: cover``), clipped to the square: where the page outlines a matched region."""
    x0, y0, x1, y1 = box
    aspect = width / height if width > 0 and height > 0 else 1.0
    sx, sy = (aspect, 1.0) if aspect >= 1 else (1.0, 1 / aspect)
    left, right = (x0 * sx - (sx - 1) / 2) * 100, (x1 * sx - (sx - 1) / 2) * 100
    top, bottom = (y0 * sy - (sy - 1) / 2) * 100, (y1 * sy - (sy - 1) / 2) * 100
    left, right = max(0.0, left), min(100.0, right)
    top, bottom = max(0.0, top), min(100.0, bottom)
    return {
        "x": round(left, 2),
        "y": round(top, 2),
        "w": round(max(0.0, right - left), 2),
        "h": round(max(0.0, bottom - top), 2),
    }


def record_to_view(rec: Record) -> dict[str, Any]:
    return record_view(rec.id, rec.path, rec.metadata())
