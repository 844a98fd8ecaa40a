"""Images and thumbnails by id: only indexed files, checked against what was indexed, with
an on-disk thumbnail cache keyed by content and HTTP caching (ETag, 304, Cache-Control).
Real files that the tests delete, edit, touch and replace under a running app."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from PIL import Image
from starlette.testclient import TestClient

from lookalike.collection import Collection
from web.helpers import app_client, assert_error, draw_image

API = "/api/v1/images"


def hits(client: TestClient, k: int = 6) -> list[dict]:
    return client.get("/api/v1/search", params={"q": "a picture", "k": k}).json()["results"]


def test_file_is_the_indexed_bytes(client: TestClient) -> None:
    hit = hits(client, 1)[0]
    response = client.get(hit["urls"]["image"])
    assert response.status_code == 200
    assert response.content == Path(hit["path"]).read_bytes()
    assert (
        response.headers["content-type"]
        == {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[hit["format"]]
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert "immutable" in response.headers["cache-control"]
    etag = response.headers["etag"]
    again = client.get(f"{API}/{hit['id']}/file", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get(f"{API}/{hit['id']}/file").headers["cache-control"] == "private, no-cache"


def test_thumbnail_is_small_webp_cached_on_disk(
    client: TestClient, shared_collection: Collection
) -> None:
    for hit in hits(client, 3):
        response = client.get(hit["urls"]["thumbnail"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        with Image.open(io.BytesIO(response.content)) as im:
            assert im.format == "WEBP"
            assert max(im.size) <= 256
            assert im.size == (hit["thumbnail"]["width"], hit["thumbnail"]["height"])
        etag = response.headers["etag"]
        cached = list(
            (shared_collection.settings.collection_dir / "thumbs").rglob(etag.strip('"') + ".webp")
        )
        assert len(cached) == 1
        stamp = cached[0].stat().st_mtime_ns
        second = client.get(hit["urls"]["thumbnail"])
        assert second.content == response.content and cached[0].stat().st_mtime_ns == stamp
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            not_modified = client.get(hit["urls"]["thumbnail"], headers={"If-None-Match": header})
            assert not_modified.status_code == 304, header
        assert (
            client.get(hit["urls"]["thumbnail"], headers={"If-None-Match": '"x"'}).status_code
            == 200
        )


def test_preview_size_and_bad_sizes(client: TestClient) -> None:
    hit = hits(client, 1)[0]
    preview = client.get(hit["urls"]["preview"])
    assert preview.status_code == 200
    with Image.open(io.BytesIO(preview.content)) as im:
        assert im.size == (hit["width"], hit["height"])  # small originals are never enlarged
    for size in ("100", "0", "-256", "abc", "256.5", "99999999999999999999"):
        assert_error(client.get(f"{API}/{hit['id']}/thumbnail", params={"size": size}), 400, "size")


def test_unknown_ids_are_404_for_files_and_thumbnails(client: TestClient) -> None:
    for route in ("file", "thumbnail"):
        for doc_id in ("deadbeef", "x" * 500, "..", "%2e%2e%2fetc%2fpasswd"):
            response = client.get(f"{API}/{doc_id}/{route}")
            assert response.status_code == 404, (route, doc_id)


def _by_name(client: TestClient) -> dict[str, dict]:
    return {h["name"]: h for h in hits(client, 6)}


def test_vanished_changed_and_replaced_files_are_410(own_collection: Collection) -> None:
    with app_client(own_collection) as client:
        found = _by_name(client)
        names = sorted(found)
        gone, edited, dir_swap, touched, fifo = (found[n] for n in names[:5])
        os.remove(gone["path"])
        draw_image(99, 40, 40).save(
            edited["path"], Image.registered_extensions()[Path(edited["path"]).suffix]
        )
        os.remove(dir_swap["path"])
        os.mkdir(dir_swap["path"])
        os.remove(fifo["path"])
        os.mkfifo(fifo["path"])
        st = os.stat(touched["path"])
        os.utime(touched["path"], (st.st_atime + 500, st.st_mtime + 500))
        cases = [
            (gone, "moved or deleted"),
            (edited, "changed"),
            (dir_swap, "regular file"),
            (fifo, "regular file"),
        ]
        for hit, what in cases:
            for route in ("file", "thumbnail"):
                error = assert_error(
                    client.get(hit["urls"][{"file": "image"}.get(route, route)]), 410, "id"
                )
                assert what in str(error["message"]) and "lookalike index" in str(error["message"])
        # same bytes, new mtime: the content hash says it is still the indexed image
        assert client.get(touched["urls"]["image"]).status_code == 200
        assert client.get(touched["urls"]["thumbnail"]).status_code == 200
        # searching still works; the search result itself is the store's business
        assert client.get("/api/v1/search", params={"q": "x"}).status_code == 200


def test_an_edited_and_reindexed_file_gets_a_new_thumbnail(own_collection: Collection) -> None:
    with app_client(own_collection) as client:
        hit = hits(client, 1)[0]
        before = client.get(hit["urls"]["thumbnail"])
        assert before.status_code == 200
        path = Path(hit["path"])
        draw_image(77, 64, 48).save(path, Image.registered_extensions()[path.suffix])
        root = own_collection.store.get([hit["id"]], with_vectors=False)[0].root
        own_collection.indexer.index([root])
        fresh = client.get(f"{API}/{hit['id']}").json()
        assert fresh["urls"]["thumbnail"] != hit["urls"]["thumbnail"]
        after = client.get(fresh["urls"]["thumbnail"])
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        assert after.content != before.content
        # the client's old ETag no longer matches: it gets the new picture, not a 304
        revalidated = client.get(
            fresh["urls"]["thumbnail"], headers={"If-None-Match": before.headers["etag"]}
        )
        assert revalidated.status_code == 200


def test_unwritable_thumbnail_cache_still_serves(own_collection: Collection) -> None:
    thumbs = own_collection.settings.collection_dir / "thumbs"
    thumbs.parent.mkdir(parents=True, exist_ok=True)
    thumbs.write_text("a file where the cache folder should be")
    with app_client(own_collection) as client:
        hit = hits(client, 1)[0]
        response = client.get(hit["urls"]["thumbnail"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"


def test_stale_temporary_thumbnails_are_swept_at_start(own_collection: Collection) -> None:
    shard = own_collection.settings.collection_dir / "thumbs" / "ab"
    shard.mkdir(parents=True)
    old = shard / "abcd.webp.1.2.tmp"
    crashed = shard / f"abcf.webp.{_ended_pid()}.7.tmp"
    young = shard / f"abce.webp.{os.getpid()}.3.tmp"
    for path in (old, crashed, young):
        path.write_bytes(b"half a thumbnail")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    with app_client(own_collection):
        assert not old.exists() and not crashed.exists() and young.exists()


def _ended_pid() -> int:
    proc = subprocess.Popen(["true"])  # noqa: S607
    proc.wait()
    return proc.pid
