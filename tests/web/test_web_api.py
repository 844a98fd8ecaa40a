"""The JSON API in-process: every route and every user mistake, on a real indexed collection
(SQLite store, tiny random CLIP and multilingual models, generated images). Nothing is mocked
except in the one 500 test, which swaps the searcher for one that fails like a bug would."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from lookalike.collection import Collection
from lookalike.search import MAX_K
from web.helpers import assert_error, first_id

SEARCH = "/api/v1/search"


def search(client: TestClient, **params: object) -> dict:
    response = client.get(SEARCH, params={"q": "red circle", **params})
    assert response.status_code == 200, response.text
    return response.json()


# -- health, stats, docs -----------------------------------------------------------------


def test_health_reports_the_collection(client: TestClient, shared_collection: Collection) -> None:
    body = client.get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["collection"] == shared_collection.name
    assert body["documents"] == 14


def test_stats_is_the_sizing_report(client: TestClient) -> None:
    body = client.get("/api/v1/stats").json()
    assert body["documents"] == 14
    assert body["dimensions"] > 0
    assert body["bytes_per_document"] > 0
    assert set(body["projections"]) == {"10000", "1000000", "10000000"}


def test_openapi_lists_every_api_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/api/v1/health",
        "/api/v1/stats",
        "/api/v1/search",
        "/api/v1/search/image",
        "/api/v1/images/{doc_id}",
        "/api/v1/images/{doc_id}/similar",
        "/api/v1/images/{doc_id}/file",
        "/api/v1/images/{doc_id}/thumbnail",
    } <= paths
    assert not any(p.startswith(("/partials", "/view")) for p in paths)
    upload = spec["paths"]["/api/v1/search/image"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def test_openapi_describes_the_real_answers(client: TestClient) -> None:
    """Success bodies have schemas; every error status a route answers is documented with
    the one error body; FastAPI's 422 HTTPValidationError (never answered) is gone."""
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorBody"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"message", "field", "type"}
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    expected_errors = {
        "/api/v1/health": {"400", "401", "503"},
        "/api/v1/stats": {"400", "401", "503"},
        "/api/v1/search": {"400", "401", "503"},
        "/api/v1/search/image": {"400", "401", "413", "415", "422", "503"},
        "/api/v1/images/{doc_id}": {"400", "401", "404", "503"},
        "/api/v1/images/{doc_id}/similar": {"400", "401", "404", "503"},
        "/api/v1/images/{doc_id}/file": {"400", "401", "404", "410", "503"},
        "/api/v1/images/{doc_id}/thumbnail": {
            "400",
            "401",
            "404",
            "410",
            "413",
            "415",
            "422",
            "503",
        },
    }
    expected_errors["/api/v1/search#post"] = {"400", "401", "404", "413", "415", "422", "503"}
    for key, errors in expected_errors.items():
        path, _, method = key.partition("#")
        operations = spec["paths"][path]
        operation = operations[method] if method else next(iter(operations.values()))
        responses = operation["responses"]
        assert {s for s in responses if s >= "400"} == errors, path
        for status in errors:
            assert responses[status]["content"]["application/json"]["schema"] == error_ref
        success = responses["200"]["content"]
        if path.endswith(("/file", "/thumbnail")):
            assert all(t.startswith("image/") or t.endswith("octet-stream") for t in success)
            assert "304" in responses
        else:
            assert success["application/json"]["schema"]["$ref"].startswith("#/components/")
    results = schemas["SearchResults"]["properties"]["results"]
    assert results["items"] == {"$ref": "#/components/schemas/ImageView"}
    (size,) = (
        p
        for p in spec["paths"]["/api/v1/images/{doc_id}/thumbnail"]["get"]["parameters"]
        if p["name"] == "size"
    )
    assert schemas[size["schema"]["$ref"].rsplit("/", 1)[1]]["enum"] == [256, 1024]
    # the token is optional: a request without it is valid, the bearer scheme documented
    assert spec["security"] == [{}, {"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_success_bodies_match_their_models(client: TestClient) -> None:
    """Fields that only some answers have are left out, not sent as null."""
    doc_id = first_id(client)
    info = client.get(f"/api/v1/images/{doc_id}").json()
    assert "score" not in info and info["id"] == doc_id
    hits = search(client, k=2)
    assert set(hits["query"]) == {"type", "q", "filters"}
    assert all(isinstance(h["score"], float) for h in hits["results"])
    similar = client.get(f"/api/v1/images/{doc_id}/similar", params={"k": 1}).json()
    assert set(similar["query"]) == {"type", "id", "filters"}


# -- text search ---------------------------------------------------------------------------


def test_text_search_returns_ranked_hits_with_urls(client: TestClient) -> None:
    body = search(client, k=5)
    assert body["count"] == 5 and len(body["results"]) == 5
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    hit = body["results"][0]
    for key in ("id", "name", "path", "folder", "format", "width", "height", "size", "modified"):
        assert hit[key] not in (None, ""), key
    assert hit["urls"]["thumbnail"].startswith(f"/api/v1/images/{hit['id']}/thumbnail?v=")
    assert hit["thumbnail"]["width"] <= 256 and hit["thumbnail"]["height"] <= 256
    assert body["next_offset"] == 5
    assert body["query"] == {"type": "text", "q": "red circle", "filters": {}}


def test_paging_windows_line_up(client: TestClient) -> None:
    whole = [r["id"] for r in search(client, k=6)["results"]]
    first = [r["id"] for r in search(client, k=3)["results"]]
    second = search(client, k=3, offset=3)
    assert first + [r["id"] for r in second["results"]] == whole
    last = search(client, k=10, offset=10)
    assert last["count"] == 4 and last["next_offset"] is None


def test_k_up_to_the_collection_size_and_beyond(client: TestClient) -> None:
    assert search(client, k=MAX_K)["count"] == 14


def test_min_score_cuts_the_tail(client: TestClient) -> None:
    scores = [r["score"] for r in search(client, k=14)["results"]]
    cut = scores[4]
    kept = search(client, k=14, min_score=cut)["results"]
    assert kept and all(r["score"] >= cut - 1e-6 for r in kept)
    assert len(kept) < 14


def test_multilingual_and_unicode_queries(client: TestClient) -> None:
    for q in (
        "ein roter Kreis",
        "un cercle rouge",
        "красный круг",
        "红色的圆",
        "🐱 + 'quotes' & <tags>",
    ):
        assert search(client, q=q, k=3)["count"] == 3


def test_format_filter(client: TestClient) -> None:
    for value in ("png", "PNG", "jpg", "jpeg,webp"):
        results = search(client, k=14, format=value)["results"]
        wanted = {"jpg": {"jpeg"}, "jpeg,webp": {"jpeg", "webp"}}.get(value, {"png"})
        assert results and {r["format"] for r in results} <= wanted
    both = client.get(SEARCH, params=[("q", "x"), ("format", "png"), ("format", "webp"), ("k", 14)])
    assert {r["format"] for r in both.json()["results"]} == {"png", "webp"}


def test_folder_filter(client: TestClient, shared_root: Path) -> None:
    folder = (shared_root / "shapes").as_posix()
    results = search(client, k=14, folder=folder)["results"]
    assert len(results) == 7 and all(r["path"].startswith(folder + "/") for r in results)
    # a trailing slash or a sibling with the same prefix does not change that
    assert len(search(client, k=14, folder=folder + "/")["results"]) == 7
    assert search(client, k=14, folder=folder + "x")["results"] == []


def test_date_and_size_filters(client: TestClient) -> None:
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    assert search(client, modified_after=tomorrow)["results"] == []
    assert search(client, k=14, modified_before=tomorrow)["count"] == 14
    assert search(client, k=14, modified_after="2000-01-01T00:00")["count"] == 14
    assert search(client, k=14, modified_after="946684800")["count"] == 14
    sizes = sorted(r["size"] for r in search(client, k=14)["results"])
    small = search(client, k=14, max_size=sizes[3])["results"]
    assert len(small) >= 4 and all(r["size"] <= sizes[3] for r in small)
    assert search(client, k=14, min_size=sizes[-1] + 1)["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 2001}, "q"),
        ({"q": "x", "k": "0"}, "k"),
        ({"q": "x", "k": str(MAX_K + 1)}, "k"),
        ({"q": "x", "k": "ten"}, "k"),
        ({"q": "x", "k": "1e3"}, "k"),
        ({"q": "x", "offset": "-1"}, "offset"),
        ({"q": "x", "offset": "9999", "k": "10"}, "offset"),
        ({"q": "x", "min_score": "2"}, "min_score"),
        ({"q": "x", "min_score": "nan"}, "min_score"),
        ({"q": "x", "folder": "relative/path"}, "folder"),
        ({"q": "x", "format": "jpgg"}, "format"),
        ({"q": "x", "min_size": "-5"}, "min_size"),
        ({"q": "x", "min_size": "10", "max_size": "5"}, "min_size"),
        ({"q": "x", "modified_after": "yesterday"}, "modified_after"),
        ({"q": "x", "modified_before": "2024-13-45"}, "modified_before"),
        (
            {"q": "x", "modified_after": "2024-05-02", "modified_before": "2024-05-01"},
            "modified_after",
        ),
        ({"q": "x", "limit": "5"}, "limit"),
    ],
)
def test_text_search_mistakes_are_400_naming_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    assert_error(client.get(SEARCH, params=params), 400, field)


# -- similar -------------------------------------------------------------------------------


def test_similar_never_returns_the_query_image(client: TestClient) -> None:
    ids = [r["id"] for r in search(client, k=14)["results"]]
    for doc_id in ids[:3]:
        body = client.get(f"/api/v1/images/{doc_id}/similar", params={"k": 13}).json()
        got = [r["id"] for r in body["results"]]
        assert doc_id not in got
        assert sorted(got) == sorted(set(ids) - {doc_id})
        assert body["query"]["type"] == "similar" and body["query"]["id"] == doc_id


def test_similar_pages_and_filters(client: TestClient) -> None:
    doc_id = first_id(client)
    whole = client.get(f"/api/v1/images/{doc_id}/similar", params={"k": 4}).json()["results"]
    page2 = client.get(f"/api/v1/images/{doc_id}/similar", params={"k": 2, "offset": 2}).json()
    assert [r["id"] for r in page2["results"]] == [r["id"] for r in whole[2:]]
    pngs = client.get(f"/api/v1/images/{doc_id}/similar", params={"k": 14, "format": "png"}).json()
    assert {r["format"] for r in pngs["results"]} == {"png"}


@pytest.mark.parametrize(
    "doc_id", ["0000000000", "x" * 300, "%00", "...", "a%20b", "%C3%A9", "%FF"]
)
def test_similar_to_unknown_id_is_404(client: TestClient, doc_id: str) -> None:
    assert_error(client.get(f"/api/v1/images/{doc_id}/similar"), 404, "id")


def test_a_path_is_never_an_id(client: TestClient) -> None:
    for route in ("similar", "file", "thumbnail"):
        response = client.get(f"/api/v1/images/..%2F..%2Fetc%2Fpasswd/{route}")
        assert_error(response, 404, None)


def test_image_info(client: TestClient) -> None:
    doc_id = first_id(client)
    body = client.get(f"/api/v1/images/{doc_id}").json()
    assert body["id"] == doc_id and "score" not in body
    assert os.path.isfile(body["path"])
    assert_error(client.get("/api/v1/images/nope"), 404, "id")


# -- routing errors and bugs ---------------------------------------------------------------


def test_unknown_route_and_wrong_method_keep_the_error_shape(client: TestClient) -> None:
    error = assert_error(client.get("/api/v1/nothing-here"), 404, None)
    assert error["type"] == "NotFound"
    error = assert_error(client.put(SEARCH, params={"q": "x"}), 405, None)
    assert error["type"] == "MethodNotAllowed"
    assert_error(client.delete("/api/v1/images/abc"), 405, None)


def test_a_bug_is_a_500_without_internals(shared_collection: Collection) -> None:
    from lookalike.web import create_app

    class Broken:
        def text(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("secret /home/someone/internal detail")

    app = create_app(shared_collection.settings, collection=shared_collection)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        app.state.collection = type("C", (), {"searcher": Broken(), "name": "x"})()
        response = test_client.get(SEARCH, params={"q": "x"})
    error = assert_error(response, 500, None)
    assert error["type"] == "InternalError"
    assert "secret" not in response.text and "Traceback" not in response.text


HOSTILE = [
    "",
    " ",
    "\x00",
    "%00",
    "../../../etc/passwd",
    "-1",
    "1e309",
    "nan",
    "inf",
    "9" * 40,
    "é" * 3000,
    "<script>alert(1)</script>",
    "'; DROP TABLE documents; --",
    "[]",
    "{}",
]


def test_no_parameter_value_makes_a_500(client: TestClient) -> None:
    doc_id = first_id(client)
    routes = {
        SEARCH: [
            "q",
            "k",
            "offset",
            "min_score",
            "folder",
            "format",
            "min_size",
            "max_size",
            "modified_after",
            "modified_before",
        ],
        f"/api/v1/images/{doc_id}/similar": ["k", "offset", "min_score", "folder", "format"],
        f"/api/v1/images/{doc_id}/thumbnail": ["size", "v"],
        f"/api/v1/images/{doc_id}/file": ["v"],
    }
    seen = set()
    for route, names in routes.items():
        for name in names:
            for value in HOSTILE:
                params = {"q": "x"} if route == SEARCH else {}
                params[name] = value
                response = client.get(route, params=params)
                assert response.status_code < 500, (route, name, value, response.text)
                seen.add(response.status_code)
                if response.status_code >= 400:
                    assert set(response.json()["error"]) == {"message", "field", "type"}
    assert 400 in seen and 200 in seen
    for value in HOSTILE[1:]:
        response = client.get(f"/api/v1/images/{quote(value, safe='')}/thumbnail")
        assert response.status_code in (404, 405), (value, response.text)
