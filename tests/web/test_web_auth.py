"""The optional API token: Bearer header for API clients, an HttpOnly cookie for browsers
(set through ?token= or the sign-in form), and every route closed without it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.web import create_app
from lookalike.web.auth import COOKIE, session_value
from web.helpers import assert_error

TOKEN = "s3cret+T0ken/with=symbols"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def locked(shared_collection: Collection) -> Iterator[TestClient]:
    settings = shared_collection.settings.with_overrides(api_token=TOKEN)
    with TestClient(
        create_app(settings, collection=shared_collection), follow_redirects=False
    ) as client:
        yield client


def fresh(client: TestClient) -> TestClient:
    client.cookies.clear()
    return client


ROUTES = [
    "/api/v1/health",
    "/api/v1/stats",
    "/api/v1/search?q=x",
    "/api/v1/images/abc",
    "/api/v1/images/abc/thumbnail",
    "/openapi.json",
    "/docs",
    "/static/app.js",
    "/partials/results?q=x",
    "/no/such/route",
]


def test_every_route_needs_the_token(locked: TestClient) -> None:
    for route in ROUTES:
        response = fresh(locked).get(route)
        error = assert_error(response, 401, "token")
        assert "Bearer" in str(error["message"])
        assert response.headers["www-authenticate"].startswith("Bearer")
    upload = fresh(locked).post(
        "/api/v1/search/image", content=b"x" * 10, headers={"Content-Type": "image/png"}
    )
    assert_error(upload, 401, "token")


def test_bearer_header(locked: TestClient) -> None:
    good = fresh(locked).get("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    lower = fresh(locked).get("/api/v1/health", headers={"Authorization": f"bearer {TOKEN}"})
    assert lower.status_code == 200
    for header in (f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}", TOKEN, "Bearer " + TOKEN[:-1]):
        response = fresh(locked).get("/api/v1/health", headers={"Authorization": header})
        assert "not right" in str(assert_error(response, 401, "token")["message"])


def test_pages_show_a_sign_in_form(locked: TestClient) -> None:
    response = fresh(locked).get("/?q=cats", headers=HTML)
    assert response.status_code == 401
    assert '<form method="post" action="/auth">' in response.text
    assert 'name="next" value="/?q=cats"' in response.text
    assert TOKEN not in response.text


def test_query_token_sets_a_cookie_and_leaves_the_address_bar(locked: TestClient) -> None:
    response = fresh(locked).get("/", params={"q": "cats", "token": TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == "/?q=cats"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={session_value(TOKEN)}")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and TOKEN not in cookie
    # the browser now holds the cookie: pages, API, thumbnails all work
    assert locked.get("/?q=cats").status_code == 200
    assert locked.get("/api/v1/health").status_code == 200
    assert locked.get("/static/app.css").status_code == 200


def test_query_token_on_api_calls_needs_no_redirect(locked: TestClient) -> None:
    response = fresh(locked).get("/api/v1/health", params={"token": TOKEN})
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert_error(fresh(locked).get("/api/v1/health", params={"token": "guess"}), 401, "token")


def test_forged_or_stale_cookie_is_refused(locked: TestClient) -> None:
    client = fresh(locked)
    for value in ("", "x", session_value("old token"), TOKEN):
        client.cookies.set(COOKIE, value)
        assert client.get("/api/v1/health").status_code == 401


def test_sign_in_form(locked: TestClient) -> None:
    client = fresh(locked)
    wrong = client.post("/auth", data={"token": "nope", "next": "/?q=x"})
    assert (
        wrong.status_code == 401 and "not right" in wrong.text and "set-cookie" not in wrong.headers
    )
    right = client.post("/auth", data={"token": TOKEN, "next": "/?q=dogs"})
    assert right.status_code == 303 and right.headers["location"] == "/?q=dogs"
    assert client.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x", ""]
)
def test_sign_in_never_redirects_off_site(locked: TestClient, target: str) -> None:
    response = fresh(locked).post("/auth", data={"token": TOKEN, "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_oversized_sign_in_body(locked: TestClient) -> None:
    response = fresh(locked).post("/auth", content=b"token=" + b"x" * 10_000)
    assert_error(response, 413, "token")


def test_token_comes_from_the_environment(shared_collection: Collection, tmp_path: object) -> None:
    settings = Settings.load(environ={"LOOKALIKE_API_TOKEN": "from-env"}, env_file=None)
    app = create_app(
        shared_collection.settings.with_overrides(api_token=settings.api_token),
        collection=shared_collection,
    )
    with TestClient(app) as client:
        assert client.get("/api/v1/health").status_code == 401
        ok = client.get("/api/v1/health", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200


def test_no_token_means_open(client: TestClient) -> None:
    assert client.get("/api/v1/health").status_code == 200
    assert (
        client.get("/api/v1/health", headers={"Authorization": "Bearer whatever"}).status_code
        == 200
    )
