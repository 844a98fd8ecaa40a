"""Search by uploaded image: the size cap enforced while reading, hostile files, malformed
bodies, and the promise that no upload is ever kept. All real: generated files, the real
decoder, a real collection with tiny random models."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from lookalike.collection import Collection
from lookalike.errors import ImageTooLargeError
from lookalike.web.uploads import read_upload
from web.helpers import app_client, assert_error

URL = "/api/v1/search/image"


def noise_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((side, side), 80).convert("RGB").save(out, "PNG")
    return out.getvalue()


def some_indexed_file(client: TestClient) -> Path:
    hit = client.get("/api/v1/search", params={"q": "stripes", "k": 1}).json()["results"][0]
    return Path(hit["path"])


def test_upload_finds_the_same_indexed_image_first(client: TestClient) -> None:
    path = some_indexed_file(client)
    response = client.post(URL, files={"image": (path.name, path.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"][0]["path"] == path.as_posix()
    assert body["results"][0]["score"] > 0.99
    assert body["query"]["type"] == "image" and body["query"]["filename"] == path.name


def test_raw_body_upload_and_query_string_options(client: TestClient) -> None:
    path = some_indexed_file(client)
    response = client.post(
        URL,
        params={"k": 3, "format": "png,jpeg"},
        content=path.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and {r["format"] for r in body["results"]} <= {"png", "jpeg"}
    assert_error(
        client.post(URL, params={"kk": 3}, content=b"x", headers={"Content-Type": "image/png"}),
        400,
        "kk",
    )


def test_paging_an_upload_search(client: TestClient) -> None:
    data = some_indexed_file(client).read_bytes()
    whole = client.post(URL, params={"k": 6}, files={"image": ("a.png", data)}).json()["results"]
    page2 = client.post(URL, params={"k": 3, "offset": 3}, files={"image": ("a.png", data)}).json()
    assert [r["id"] for r in page2["results"]] == [r["id"] for r in whole[3:]]


def test_uploads_are_never_kept(
    client: TestClient,
    shared_collection: Collection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 1.5 MB upload spills out of memory into a temporary file: it must be gone (never
    named, in fact) once the request is over, and no copy lands in the collection folder."""
    spill = tmp_path / "tmp"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    data = noise_png(720)
    assert len(data) > 1024 * 1024
    response = client.post(URL, files={"image": ("big.png", data, "image/png")})
    assert response.status_code == 200, response.text
    assert list(spill.iterdir()) == []
    for path in shared_collection.settings.collection_dir.rglob("*"):
        assert path.name != "big.png"
        assert not path.is_file() or path.stat().st_size != len(data) or path.read_bytes() != data


def test_oversized_uploads_are_413(own_collection: Collection) -> None:
    limit = 40_000
    big = noise_png(300)
    assert len(big) > limit
    with app_client(own_collection, max_upload_bytes=limit) as client:
        for response in (
            client.post(URL, files={"image": ("big.png", big, "image/png")}),
            client.post(URL, content=big, headers={"Content-Type": "image/png"}),
        ):
            error = assert_error(response, 413, "image")
            assert "MiB" in str(error["message"])
        # just under the limit still works
        small = noise_png(60)
        assert len(small) < limit
        assert client.post(URL, files={"image": ("s.png", small)}).status_code == 200


def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    consumed = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed += 1
        yield b"x"

    async def run() -> None:
        await read_upload("image/png", str(10**12), body(), max_bytes=1000)

    with pytest.raises(ImageTooLargeError):
        asyncio.run(run())
    assert consumed == 0


@pytest.mark.parametrize("kind", ["multipart/form-data; boundary=XyZ", "image/jpeg"])
def test_an_endless_body_is_cut_off_at_the_cap(kind: str) -> None:
    """No Content-Length (chunked): reading stops just past the cap, not at the end of 1 GB."""
    chunk = 64 * 1024
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        if kind.startswith("multipart"):
            head = (
                b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
            )
            sent += len(head)
            yield head
        while sent < 1024**3:
            sent += chunk
            yield b"\xff" * chunk

    async def run() -> None:
        await read_upload(kind, None, endless(), max_bytes=1024 * 1024)

    with pytest.raises(ImageTooLargeError) as info:
        asyncio.run(run())
    assert info.value.field == "image"
    assert sent < 1024 * 1024 + 64 * 1024 + 2 * chunk


ZOO_EXPECTED = {
    "empty": 422,
    "text_as_jpg": 415,
    "truncated_png": 422,
    "header_only_png": 422,
    "garbage_png": 422,
    "bomb_png": 413,
    "unreducible_jpeg": 413,
}
ZOO_GOOD = [
    "jpeg",
    "png",
    "webp",
    "gif",
    "bmp",
    "tiff",
    "cmyk_jpeg",
    "png16",
    "rgba_png",
    "animated_gif",
    "exif_rotated",
    "png_as_jpg",
    "huge_jpeg",
]


def test_hostile_uploads_get_a_4xx_naming_the_image(
    client: TestClient, image_zoo: dict[str, Path]
) -> None:
    for name, status in ZOO_EXPECTED.items():
        path = image_zoo[name]
        response = client.post(URL, files={"image": (path.name, path.read_bytes())})
        error = assert_error(response, status, "image")
        assert str(path) not in str(error["message"]), "server paths must not leak into messages"


def test_awkward_but_valid_uploads_work(client: TestClient, image_zoo: dict[str, Path]) -> None:
    names = ZOO_GOOD + [n for n in ("heic", "avif") if n in image_zoo]
    for name in names:
        path = image_zoo[name]
        response = client.post(
            URL, params={"k": 2}, files={"image": (path.name, path.read_bytes())}
        )
        assert response.status_code == 200, (name, response.text)
        assert response.json()["count"] == 2


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, data in parts:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="f"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def post_raw(client: TestClient, body: bytes, content_type: str) -> object:
    return client.post(URL, content=body, headers={"Content-Type": content_type})


def test_malformed_uploads_are_4xx(client: TestClient) -> None:
    png = noise_png(40)
    mp = "multipart/form-data; boundary=b0undary"
    assert post_raw(client, multipart([("image", png)]), mp).status_code == 200
    assert_error(post_raw(client, multipart([("image", png), ("image", png)]), mp), 400, "image")
    assert_error(post_raw(client, multipart([("file", png)]), mp), 400, "file")
    assert_error(post_raw(client, b"--b0undary--\r\n", mp), 400, "image")
    assert_error(post_raw(client, multipart([("image", png)])[:-20], mp), 400, "image")
    assert_error(post_raw(client, b"garbage without any boundary" * 10, mp), 400, "image")
    assert_error(post_raw(client, multipart([("image", png)]), "multipart/form-data"), 400, "image")
    assert_error(post_raw(client, b'{"image": "x"}', "application/json"), 415, "image")
    assert_error(client.post(URL), 415, "image")
    assert_error(post_raw(client, multipart([("image", b"")]), mp), 422, "image")
    many = multipart([(f"f{i}", b"x") for i in range(40)])
    assert post_raw(client, many, mp).status_code == 400


def test_every_upload_path_closes_its_spool(client: TestClient) -> None:
    """Every upload path (good, bad, oversized) closes its spool: the open-file count is flat."""
    png = noise_png(40)
    fd_dir = Path("/proc/self/fd")
    before = len(os.listdir(fd_dir))
    for _ in range(20):
        client.post(URL, files={"image": ("a.png", png)})
        client.post(URL, files={"image": ("a.txt", b"not an image")})
        client.post(URL, content=b"", headers={"Content-Type": "image/png"})
    assert len(os.listdir(fd_dir)) <= before + 2
