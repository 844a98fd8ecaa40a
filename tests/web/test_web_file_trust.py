"""Only the indexed content is ever served: a file swapped after indexing for a symlink to
another file, or rewritten in place, with its size and mtime forged to match the record,
gives 410 on the file route, the thumbnail route (even with a thumbnail already cached)
and the view page. Real files, a real collection, the real server on 127.0.0.1; a proven
file is remembered across restarts (marker files) and a new identity is hashed again."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lookalike.collection import Collection
from lookalike.models.base import Embedder
from lookalike.web import create_app
from lookalike.web.verified import VerifiedFiles
from web.helpers import draw_image, make_settings, write_images
from web.live import LiveServer

SECRET = b"root:x:0:0:SECRET-LINE-that-must-never-leave-the-server\n" * 300


@pytest.fixture
def decoy(tmp_path: Path) -> tuple[Path, Path]:
    """A JPEG padded to the size of a secret file outside the indexed folder, with its mtime."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    buf = io.BytesIO()
    draw_image(3).save(buf, "JPEG")
    jpeg = buf.getvalue()
    assert len(jpeg) < len(SECRET)
    root = tmp_path / "images"
    write_images(root, 3)
    path = root / "decoy.jpg"
    path.write_bytes(jpeg + b"\0" * (len(SECRET) - len(jpeg)))
    st = secret.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return path, secret


@pytest.fixture
def served(
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: Embedder,
    decoy: tuple[Path, Path],
) -> Iterator[tuple[httpx.Client, dict]]:
    """The real server over a collection holding the decoy; yields a client and its hit."""
    settings = make_settings(tmp_path / "home", tiny_clip_dir, tiny_multilingual_dir)
    collection = Collection(settings, embedder=tiny_embedder)
    collection.indexer.index([decoy[0].parent])
    try:
        with (
            LiveServer(create_app(settings, collection=collection)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            results = client.get("/api/v1/search", params={"q": "x", "k": 10}).json()
            hit = next(h for h in results["results"] if h["name"] == "decoy.jpg")
            yield client, hit
    finally:
        collection.close()


def _assert_gone(response: httpx.Response) -> None:
    assert response.status_code == 410, response.text
    assert SECRET[:20] not in response.content
    error = response.json()["error"]
    assert error["type"] == "FileGoneError" and error["field"] == "id"
    assert "not the file that was indexed" in error["message"]
    assert "lookalike index" in error["message"]


def _swap_for_symlink(path: Path, secret: Path, hit: dict) -> None:
    path.unlink()
    path.symlink_to(secret)
    st = os.stat(path)  # the attack is real: size and mtime are what was indexed
    assert st.st_size == hit["size"]
    assert st.st_mtime == pytest.approx(os.stat(secret).st_mtime)


def test_a_symlink_swapped_in_after_indexing_is_never_served(
    served: tuple[httpx.Client, dict], decoy: tuple[Path, Path]
) -> None:
    client, hit = served
    path, secret = decoy
    urls = hit["urls"]
    before = client.get(urls["image"])
    assert before.status_code == 200 and before.content == path.read_bytes()
    thumb = client.get(urls["thumbnail"])  # now cached on disk and in the browser
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert client.get(urls["preview"]).status_code == 200

    _swap_for_symlink(path, secret, hit)
    _assert_gone(client.get(urls["image"]))
    _assert_gone(client.get(urls["image"], headers={"If-None-Match": before.headers["etag"]}))
    _assert_gone(client.get(urls["thumbnail"]))
    _assert_gone(client.get(urls["preview"]))
    _assert_gone(client.get(urls["thumbnail"], headers={"If-None-Match": thumb.headers["etag"]}))
    page = client.get(urls["view"], headers={"Accept": "text/html"})
    assert page.status_code == 410 and SECRET[:20].decode() not in page.text
    assert "not the file that was indexed" in page.text


def test_a_symlink_swapped_in_before_the_first_request_is_never_served(
    served: tuple[httpx.Client, dict], decoy: tuple[Path, Path]
) -> None:
    client, hit = served
    path, secret = decoy
    _swap_for_symlink(path, secret, hit)
    for route in ("image", "thumbnail", "preview"):
        _assert_gone(client.get(hit["urls"][route]))


def test_in_place_rewrite_with_size_and_mtime_restored_is_410(
    served: tuple[httpx.Client, dict], decoy: tuple[Path, Path]
) -> None:
    client, hit = served
    path, secret = decoy
    assert client.get(hit["urls"]["image"]).status_code == 200
    assert client.get(hit["urls"]["thumbnail"]).status_code == 200
    st = path.stat()
    with open(path, "r+b") as fh:  # same inode, same size, then the old mtime put back
        fh.write(SECRET)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    _assert_gone(client.get(hit["urls"]["image"]))
    _assert_gone(client.get(hit["urls"]["thumbnail"]))
    # put the indexed bytes back: it is the indexed image again and is served
    buf = io.BytesIO()
    draw_image(3).save(buf, "JPEG")
    path.write_bytes(buf.getvalue() + b"\0" * (st.st_size - len(buf.getvalue())))
    assert client.get(hit["urls"]["image"]).status_code == 200


def test_a_proven_file_is_remembered_across_restarts(tmp_path: Path) -> None:
    """After a restart the marker proves the file without reading it; another file
    identity (here: the same bytes rewritten) is read and hashed again."""
    path = tmp_path / "photo.jpg"
    draw_image(5).save(path, "JPEG")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    markers = tmp_path / "verified"

    def proven(checker: VerifiedFiles, *, read_nothing: bool) -> bool:
        with open(path, "rb") as fh:
            if read_nothing:
                fh.seek(0, os.SEEK_END)  # hashing from here sees no bytes and fails
            return checker.matches(sha, fh, os.fstat(fh.fileno()))

    assert not proven(VerifiedFiles(markers), read_nothing=True)  # nothing remembered yet
    assert proven(VerifiedFiles(markers), read_nothing=False)
    assert len(list(markers.rglob("*"))) == 2  # one shard folder, one marker
    assert proven(VerifiedFiles(markers), read_nothing=True)  # a restart: the marker holds
    before = path.stat().st_ctime_ns
    while path.stat().st_ctime_ns == before:  # same bytes, new ctime (once the clock ticks)
        path.write_bytes(path.read_bytes())
    assert not proven(VerifiedFiles(markers), read_nothing=True)
    assert proven(VerifiedFiles(markers), read_nothing=False)
    with open(path, "rb") as fh:  # a wrong hash is never remembered as a match
        checker = VerifiedFiles(markers)
        assert not checker.matches("0" * 64, fh, os.fstat(fh.fileno()))
        assert not checker.matches("0" * 64, fh, os.fstat(fh.fileno()))
