"""The page's composed queries, controls and exports, in-process over a real indexed
collection: refine, "Less like this", "More like these" (all in the address), min_score,
size filters, the number of results, CSV/JSON downloads and the random-weights notice."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from lookalike.models.provenance import RANDOM_MARKER, is_random_weight_model
from lookalike.web.pages import PAGE
from web.test_web_pages import Page, cards


def card_ids(html: str) -> list[str]:
    return [str(c["data-id"]) for c in cards(html)]


def scores(html: str) -> list[float]:
    parser = _Scores()
    parser.feed(html)
    return parser.values


class _Scores(Page):
    def __init__(self) -> None:
        self.values: list[float] = []
        self._in = False
        super().__init__("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag == "span" and ("class", "score") in attrs

    def handle_data(self, data: str) -> None:
        if self._in:
            self.values.append(float(data))
            self._in = False


def all_ids(client: TestClient) -> list[str]:
    return card_ids(client.get("/", params={"q": "x", "n": 14}).text)


def test_less_like_this_and_more_like_these_are_addresses(client: TestClient) -> None:
    ids = all_ids(client)
    a, b, c = ids[:3]
    html = client.get("/", params={"similar": a}).text
    less = [t["href"] for t in Page(html).find("a", class_="less")]
    assert len(less) == 13
    url = urlsplit(str(less[0]))
    assert parse_qs(url.query) == {"similar": [a], "unlike": [card_ids(html)[0]]}

    # "More like these": the selection is sent as more `similar` values by a plain GET form
    page = Page(html)
    form = page.find("form", id="feedback")[0]
    assert form["method"] == "get" and form["action"] == "/"
    hidden = {(t["name"], t["value"]) for t in page.find("input", type="hidden")}
    assert ("similar", a) in hidden
    picks = page.find("input", type="checkbox", form="feedback")
    assert {p["name"] for p in picks} == {"similar"} and len(picks) == 13

    composed = client.get(
        "/", params=[("similar", a), ("similar", b), ("unlike", c), ("not", "night")]
    )
    assert composed.status_code == 200
    got = card_ids(composed.text)
    assert len(got) == 11 and not {a, b, c} & set(got)
    assert "Less like:" in composed.text and "“night”" in composed.text
    assert Page(composed.text).find("a", href="/")  # "Start over"


def test_refine_keeps_the_images_in_the_search_form(client: TestClient) -> None:
    a, c = all_ids(client)[:2]
    html = client.get("/", params=[("similar", a), ("unlike", c)]).text
    form = Page(html).find("input", type="hidden")
    assert {"name": "similar", "value": a, "type": "hidden"} in form
    assert {"name": "unlike", "value": c, "type": "hidden"} in form
    refined = client.get("/", params=[("similar", a), ("unlike", c), ("q", "red")])
    assert refined.status_code == 200 and a not in card_ids(refined.text)
    assert "Refine" in html


def test_min_score_size_and_number_of_results(client: TestClient) -> None:
    every = scores(client.get("/", params={"q": "x", "n": 14}).text)
    cut = every[4]
    html = client.get("/", params={"q": "x", "min_score": f"{cut:.6f}"}).text
    kept = scores(html)
    assert 1 <= len(kept) <= 5 and all(s >= round(cut, 3) - 1e-3 for s in kept)
    assert Page(html).find("input", name="min_score", value=f"{cut:.6f}")
    assert len(card_ids(client.get("/", params={"q": "x", "n": 10}).text)) == 10
    assert (
        len(card_ids(client.get("/", params={"q": "x", "min_size": "1B"}).text)) == PAGE // 30 * 14
    )
    assert card_ids(client.get("/", params={"q": "x", "max_size": "1B"}).text) == []
    bad = client.get("/", params={"q": "x", "min_size": "lots"})
    assert bad.status_code == 400 and Page(bad.text).find(
        "input", name="min_size", **{"aria-invalid": "true"}
    )
    bad = client.get("/", params={"q": "x", "min_score": "2"})
    assert bad.status_code == 400 and "min_score" in bad.text


def test_csv_and_json_downloads_match_the_page(client: TestClient) -> None:
    a = all_ids(client)[0]
    params = [("q", "stripes"), ("unlike", a), ("format", "png")]
    html = client.get("/", params=params).text
    links = {
        t["href"] for t in Page(html).find("a") if str(t.get("href", "")).startswith("/export.")
    }
    assert len(links) == 2
    csv_link = next(link for link in links if str(link).startswith("/export.csv"))
    response = client.get(str(csv_link))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in rows] == card_ids(html)
    assert all(r["format"] == "png" for r in rows)
    body = client.get(str(csv_link).replace("/export.csv", "/export.json")).json()
    assert [r["id"] for r in body["results"]] == card_ids(html)
    assert body["query"]["unlike"] == [a] and body["query"]["filters"]["formats"] == ["png"]


def test_random_weight_models_are_announced(client: TestClient, tmp_path: Path) -> None:
    # the tests' tiny models are built by lookalike.models.testing, which marks them
    assert "Demo models with random weights" in client.get("/").text
    assert "Demo models with random weights" in client.get("/", params={"q": "x"}).text
    plain = tmp_path / "model"
    plain.mkdir()
    assert not is_random_weight_model(str(plain))
    (plain / RANDOM_MARKER).write_text("random")
    assert is_random_weight_model(str(plain))


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ([("unlike", "x")], 400, "say what to find more of"),
        ([("q", "x"), ("similar", "no-such-id")], 404, "no indexed image with id"),
        ([("q", "x"), ("unlike", "no-such-id")], 404, "no indexed image with id"),
        ([("q", "x"), ("not", "x" * 2001)], 400, "longer than 2000 characters"),
    ],
)
def test_composed_mistakes_show_on_the_page(
    client: TestClient, params: list[tuple[str, str]], status: int, message: str
) -> None:
    response = client.get("/", params=params)
    assert response.status_code == status
    assert 'role="alert"' in response.text and message in response.text
