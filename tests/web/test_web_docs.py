"""Headers and offline API docs: ``X-Content-Type-Options: nosniff`` on JSON, static files,
the OpenAPI document and errors; ``/docs`` loads everything from this server (Swagger UI
ships in a package), never from a CDN. In-process, on a real collection."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from web.helpers import app_client, first_id

_URL_ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_ABSOLUTE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.IGNORECASE)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/health",
        "/api/v1/stats",
        "/api/v1/search?q=red",
        "/api/v1/search",  # a 400
        "/api/v1/images/nope",  # a 404
        "/openapi.json",
        "/static/app.css",
        "/static/app.js",
        "/static/nope.css",
        "/docs",
        "/docs-assets/swagger-ui.css",
        "/",
    ],
)
def test_every_response_says_nosniff(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.headers.get("x-content-type-options") == "nosniff", (path, response.headers)


def test_image_routes_say_nosniff_once(client: TestClient) -> None:
    doc_id = first_id(client)
    for route in ("file", "thumbnail"):
        response = client.get(f"/api/v1/images/{doc_id}/{route}")
        assert response.status_code == 200
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]


def test_token_refusals_say_nosniff(shared_collection: object) -> None:
    with app_client(shared_collection, api_token="s3cret-token") as locked:  # type: ignore[arg-type]
        refused = locked.get("/api/v1/health")
        assert refused.status_code == 401
        assert refused.headers.get("x-content-type-options") == "nosniff"


def test_docs_load_nothing_from_another_host(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert not _ABSOLUTE.search(html), _ABSOLUTE.findall(html)
    assert "/openapi.json" in html
    urls = _URL_ATTR.findall(html)
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, html
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 200, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], url
        elif url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css"), url
