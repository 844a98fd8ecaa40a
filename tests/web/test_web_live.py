"""Over real HTTP: uvicorn on a loopback port and a real ``lookalike serve`` process.
Concurrency, a slow search not blocking the event loop, an oversized upload refused from
its headers, images indexed while the server runs, and a kill -9 mid-traffic."""

from __future__ import annotations

import io
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from lookalike.collection import Collection
from lookalike.models.base import Embedder
from lookalike.search import Searcher
from lookalike.web import create_app
from web.helpers import app_client, write_images
from web.live import LiveServer, ServeProcess, free_port

pytestmark = pytest.mark.slow  # a real server on loopback, subprocesses and kill -9


def png_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def test_concurrent_clients_get_consistent_answers(shared_collection: Collection) -> None:
    app = create_app(shared_collection.settings, collection=shared_collection)
    with LiveServer(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        expected = client.get("/api/v1/search", params={"q": "blue stripes", "k": 5}).json()
        ids = [r["id"] for r in expected["results"]]
        upload = png_bytes(expected["results"][0]["path"])

        def one(i: int) -> tuple[int, Any]:
            with httpx.Client(base_url=url, timeout=60) as own:
                kind = i % 4
                if kind == 0:
                    r = own.get("/api/v1/search", params={"q": "blue stripes", "k": 5})
                    return r.status_code, [h["id"] for h in r.json()["results"]]
                if kind == 1:
                    r = own.get(f"/api/v1/images/{ids[i % 5]}/thumbnail")
                    return r.status_code, r.headers.get("etag")
                if kind == 2:
                    r = own.post("/api/v1/search/image", files={"image": ("q.png", upload)})
                    return r.status_code, r.json()["results"][0]["id"]
                r = own.get(f"/api/v1/images/{ids[0]}/similar", params={"k": 3})
                return r.status_code, [h["id"] for h in r.json()["results"]]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(32)))
    assert all(status == 200 for status, _ in answers), answers
    assert all(body == ids for i, (_, body) in enumerate(answers) if i % 4 == 0)
    assert all(body == ids[0] for i, (_, body) in enumerate(answers) if i % 4 == 2)
    assert len({body for i, (_, body) in enumerate(answers) if i % 4 == 1}) == 5


class _Gate:
    """Holds every search until ``release`` is set; ``entered`` says one is being held."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


class GatedCollection(Collection):
    """A real collection whose searches wait at a gate, to prove a slow search (a big model
    on a busy CPU) leaves the server free to answer other requests."""

    gate: _Gate

    @property
    def searcher(self) -> Searcher:
        real = super().searcher
        gate = self.gate

        class Held(Searcher):
            def search(self, query: Any) -> Any:
                gate.entered.set()
                assert gate.release.wait(60), "the test never released the gate"
                return real.search(query)

        return Held(real.store, real.embedder, max_pixels=real.max_pixels)


def test_slow_searches_do_not_block_the_server(shared_collection: Collection) -> None:
    gated = GatedCollection(shared_collection.settings, store=shared_collection.store,
                            embedder=shared_collection.embedder)  # fmt: skip
    app = create_app(shared_collection.settings, collection=gated)
    path = next(iter(shared_collection.store.iter_records(1)))[0].path
    for method, route, kwargs in (
        ("GET", "/api/v1/search", {"params": {"q": "slow"}}),
        ("POST", "/api/v1/search/image", {"files": {"image": ("a.png", png_bytes(path))}}),
    ):
        gated.gate = _Gate()
        with (
            LiveServer(app) as url,
            httpx.Client(base_url=url, timeout=60) as client,
            ThreadPoolExecutor(1) as pool,
        ):
            slow = pool.submit(client.request, method, route, **kwargs)
            assert gated.gate.entered.wait(60)
            with httpx.Client(base_url=url, timeout=10) as other:
                assert other.get("/api/v1/health").status_code == 200
                assert other.get("/").status_code == 200
            assert not slow.done()
            gated.gate.release.set()
            assert slow.result(60).status_code == 200


def test_declared_oversized_upload_is_refused_from_the_headers(own_collection: Collection) -> None:
    app = create_app(
        own_collection.settings.with_overrides(max_upload_bytes=100_000), collection=own_collection
    )
    with LiveServer(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"POST /api/v1/search/image HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: 5000000000\r\n\r\n" + b"\xff" * 1000
            )
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:200]
    assert json.loads(body)["error"]["field"] == "image"


def test_images_indexed_while_serving_are_found(own_collection: Collection, tmp_path: Path) -> None:
    app = create_app(own_collection.settings, collection=own_collection)
    with LiveServer(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/api/v1/health").json()["documents"] == 6
        extra = tmp_path / "later"
        added = write_images(extra, 3, start=50)
        own_collection.indexer.index([extra])
        assert client.get("/api/v1/health").json()["documents"] == 9
        hits = client.get("/api/v1/search", params={"q": "x", "k": 20}).json()["results"]
        assert {p.as_posix() for p in added} <= {h["path"] for h in hits}


def test_serve_subprocess_survives_kill_9(
    own_collection: Collection, tiny_embedder: Embedder, tmp_path: Path
) -> None:
    """``lookalike serve`` binds 127.0.0.1 by default; killed mid-traffic (thumbnails being
    written, uploads being read), it leaves nothing that stops a clean restart."""
    settings = own_collection.settings
    own_collection.close()  # the server process opens the collection itself
    port = free_port()
    server = ServeProcess(settings, port, log=tmp_path / "serve.log")
    url = server.start()
    running = f"Uvicorn running on http://127.0.0.1:{port}".encode()
    assert running in server.output
    # It says it is loading before the models load, the address once it serves.
    assert 0 <= server.output.find(b"loading collection") < server.output.find(running)
    with httpx.Client(base_url=url, timeout=60) as client:
        hits = client.get("/api/v1/search", params={"q": "x", "k": 6}).json()["results"]
    buf = io.BytesIO()
    Image.effect_noise((400, 400), 50).convert("RGB").save(buf, "PNG")

    def hammer(i: int) -> int:
        try:
            with httpx.Client(base_url=url, timeout=30) as own:
                if i % 2:
                    files = {"image": ("n.png", buf.getvalue())}
                    return own.post("/api/v1/search/image", files=files).status_code
                return own.get(hits[i % 6]["urls"]["preview"]).status_code
        except httpx.HTTPError:
            return -1

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(hammer, i) for i in range(18)]
        futures[1].result(60)
        server.kill()
        codes = [f.result(60) for f in futures]
    assert set(codes) <= {200, -1}
    server.stop()
    # restart (in-process, to keep the test quick): every thumbnail is whole, no debris stays
    with Collection(settings, embedder=tiny_embedder) as reopened, app_client(reopened) as client:
        assert client.get("/api/v1/health").json()["documents"] == 6
        for hit in hits:
            response = client.get(hit["urls"]["preview"])
            assert response.status_code == 200
            Image.open(io.BytesIO(response.content)).verify()
        assert not list((settings.collection_dir / "thumbs").glob("*/*.tmp"))
