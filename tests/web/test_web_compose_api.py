"""``POST /api/v1/search``: composed queries as JSON and as multipart with an uploaded image,
in-process against a real indexed collection (SQLite, tiny random models, generated images)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from web.helpers import assert_error

SEARCH = "/api/v1/search"


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(SEARCH, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ids_of(body: dict[str, Any]) -> list[str]:
    return [r["id"] for r in body["results"]]


def test_a_plain_text_body_answers_like_the_get_route(client: TestClient) -> None:
    got = client.get(SEARCH, params={"q": "red circle", "k": 5, "format": "png,jpg"}).json()
    posted = post(client, {"texts": ["red circle"], "k": 5, "filters": {"format": "png,jpg"}})
    assert ids_of(posted) == ids_of(got)
    assert set(posted) == set(got)  # one envelope for every search route
    assert posted["query"]["texts"] == ["red circle"]
    assert posted["query"]["filters"]["formats"] == ["png", "jpeg"]
    assert posted["results"][0] == got["results"][0]


def test_composed_parts_weights_and_exclusions(client: TestClient) -> None:
    everything = ids_of(post(client, {"texts": ["x"], "k": 14}))
    a, b, c = everything[:3]
    body = post(
        client,
        {
            "texts": [{"value": "red circle", "weight": 2}],
            "ids": [a, {"value": b, "weight": 0.5}],
            "negative_ids": [c],
            "negative_texts": ["night"],
            "negative_weight": 0.8,
            "k": 20,
            "min_score": -1,
        },
    )
    assert not {a, b, c} & set(ids_of(body))  # every id in the query stays out
    assert body["count"] == 11 and body["next_offset"] is None
    assert body["query"] == {
        "type": "composed",
        "texts": [{"value": "red circle", "weight": 2.0}],
        "ids": [a, {"value": b, "weight": 0.5}],
        "negative_texts": ["night"],
        "negative_ids": [c],
        "negative_weight": 0.8,
        "filters": {},
    }
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    # "less like this": the excluded image never comes back
    plain = ids_of(post(client, {"ids": [a], "k": 13}))
    pushed = ids_of(
        post(client, {"ids": [a], "negative_ids": [plain[0]], "negative_weight": 1, "k": 12})
    )
    assert plain[0] not in pushed and len(pushed) == 12


def test_paging_and_min_score(client: TestClient) -> None:
    whole = post(client, {"texts": ["stripes"], "negative_texts": ["circle"], "k": 10})
    second = post(client, {"texts": ["stripes"], "negative_texts": ["circle"], "k": 5, "offset": 5})
    assert ids_of(second) == ids_of(whole)[5:]
    cut = whole["results"][3]["score"]
    kept = post(
        client, {"texts": ["stripes"], "negative_texts": ["circle"], "k": 10, "min_score": cut}
    )
    assert ids_of(kept) == ids_of(whole)[:4] and kept["min_score"] == cut


def test_multipart_image_with_a_composed_query(client: TestClient, shared_root: Path) -> None:
    path = sorted(shared_root.rglob("*.png"))[0]
    everything = ids_of(post(client, {"texts": ["x"], "k": 14}))
    query = {"negative_ids": [everything[-1]], "image_weight": 3, "k": 3}
    response = client.post(
        SEARCH,
        files={"image": (path.name, path.read_bytes(), "image/png")},
        data={"query": json.dumps(query)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"][0]["path"] == path.as_posix()  # its own bytes find it first
    assert body["query"]["image"] == {"filename": path.name, "bytes": path.stat().st_size}
    assert everything[-1] not in ids_of(body)
    # the image alone, without a query field, also works
    alone = client.post(SEARCH, files={"image": (path.name, path.read_bytes(), "image/png")})
    assert alone.status_code == 200 and alone.json()["results"][0]["path"] == path.as_posix()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"texts": ["x"], "colour": "red"}, 400, "colour"),
        ({"texts": [{"value": "x", "weight": 0}]}, 400, "texts"),
        ({"texts": ["x"], "negative_weight": 1000}, 400, "negative_weight"),
        ({"texts": ["x"], "k": 0}, 400, "k"),
        ({"texts": ["x"], "k": 1000, "offset": 9500}, 400, "offset"),
        ({"texts": ["x"], "filters": {"format": "jpgg"}}, 400, "format"),
        ({"texts": ["x"], "filters": {"folder": "relative/path"}}, 400, "folder"),
        ({"negative_texts": ["only what not to find"]}, 400, "q"),
        ({"ids": ["no-such-id"]}, 404, "id"),
        ({"texts": ["x"], "negative_ids": ["no-such-id"]}, 404, "negative_id"),
        ({}, 400, "q"),
    ],
)
def test_mistakes_are_4xx_naming_the_member(
    client: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    assert_error(client.post(SEARCH, json=body), status, field)


def test_bodies_that_are_not_queries(client: TestClient) -> None:
    assert_error(
        client.post(SEARCH, content=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "body",
    )
    assert_error(
        client.post(SEARCH, content=b"[1, 2]", headers={"Content-Type": "application/json"}),
        400,
        "body",
    )
    assert_error(
        client.post(SEARCH, content=b"q=x", headers={"Content-Type": "text/plain"}), 400, "body"
    )
    huge = json.dumps({"texts": ["x" * 70_000]}).encode()
    assert_error(
        client.post(SEARCH, content=huge, headers={"Content-Type": "application/json"}), 400, "body"
    )
    bad_query = client.post(
        SEARCH, files={"image": ("a.png", b"\x89PNG", "image/png")}, data={"query": "{oops"}
    )
    assert_error(bad_query, 400, "body")


def test_openapi_documents_the_post_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post_op = spec["paths"]["/api/v1/search"]["post"]
    content = post_op["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(content)
    assert "negative_ids" in json.dumps(content["application/json"])
    assert "get" in spec["paths"]["/api/v1/search"]  # the GET shortcut stays
