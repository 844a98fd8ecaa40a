"""The server-rendered page and its fragments, in-process: states (empty, results, no match,
error, upload reload), links that carry the query, escaping of hostile names and queries,
and the security headers. The browser behaviour itself is in test_web_browser.py."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from starlette.testclient import TestClient

from lookalike.collection import Collection
from web.helpers import app_client, draw_image, first_id


class Page(HTMLParser):
    """Collects the tags of a page, to assert on structure rather than on text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        """Tags named ``tag`` whose attributes hold these values (``class_`` is one class)."""

        def holds(have: dict[str, str | None], key: str, value: str) -> bool:
            got = have.get(key.rstrip("_")) or ""
            return value in got.split() if key == "class_" else got == value

        return [
            a
            for name, a in self.tags
            if name == tag and all(holds(a, k, v) for k, v in attrs.items())
        ]


def cards(html: str) -> list[dict[str, str | None]]:
    return Page(html).find("li", class_="card")


def test_home_page_shows_collection_and_empty_state(
    client: TestClient, shared_collection: Collection
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert shared_collection.name in html and "14 images" in html
    assert "Find images by what is in them" in html
    page = Page(html)
    assert page.find("input", name="q") and page.find("input", type="file", name="image")
    assert page.find("form", id="upload-form")[0]["enctype"] == "multipart/form-data"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # no inline script or style anywhere, so the CSP can forbid them
    assert all(s.get("src") for s in page.find("script"))
    assert "<style" not in html and " style=" not in html
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]


def test_text_results_page(client: TestClient) -> None:
    html = client.get("/", params={"q": "red circle"}).text
    found = cards(html)
    assert len(found) == 14
    page = Page(html)
    for img in page.find("img", loading="lazy"):
        assert img["alt"] and img["width"] and img["height"] and img["decoding"] == "async"
    assert len(page.find("img", loading="lazy")) == 14
    similar_links = page.find("a", class_="similar")
    assert len(similar_links) == 14 and all(
        str(a["href"]).startswith("/?similar=") for a in similar_links
    )
    assert "Results for “red circle”" in html
    assert 'value="red circle"' in html


def test_n_sets_how_many_results_and_load_more_links(client: TestClient) -> None:
    html = client.get("/", params={"q": "stripes", "n": 5}).text
    assert len(cards(html)) == 5
    more = Page(html).find("a", class_="button")
    load = [a for a in more if a.get("data-more")]
    assert len(load) == 1
    assert load[0]["href"] == "/?q=stripes&n=35"  # one more page of 30
    assert str(load[0]["data-more"]).startswith("/partials/results?q=stripes&offset=5&k=30")
    fragment = client.get("/partials/results", params={"q": "stripes", "offset": 5, "k": 30})
    assert fragment.status_code == 200
    assert len(cards(fragment.text)) == 9
    assert "data-more" not in fragment.text  # nothing after the last page


def test_similar_page_excludes_the_query_image(client: TestClient) -> None:
    doc_id = first_id(client)
    html = client.get("/", params={"similar": doc_id}).text
    ids = [c["data-id"] for c in cards(html)]
    assert len(ids) == 13 and doc_id not in ids
    assert "Similar to" in html


def test_filters_carry_into_find_similar_links(client: TestClient, shared_root: Path) -> None:
    folder = (shared_root / "shapes").as_posix()
    html = client.get("/", params={"q": "x", "folder": folder, "format": ""}).text
    assert len(cards(html)) == 7
    links = [str(a["href"]) for a in Page(html).find("a", class_="similar")]
    assert all(f"folder={folder.replace('/', '%2F')}" in link for link in links)
    assert "format=" not in links[0]  # empty form fields are dropped
    assert '<details class="filters" open' in html


def test_error_states_are_pages_with_the_right_status(client: TestClient) -> None:
    unknown = client.get("/", params={"similar": "nope"})
    assert unknown.status_code == 404 and 'role="alert"' in unknown.text
    bad = client.get("/", params={"q": "x", "modified_after": "soon"})
    assert bad.status_code == 400
    assert 'name="modified_after"' in bad.text and 'aria-invalid="true"' in bad.text
    assert client.get("/", params={"q": "x", "n": "0"}).status_code == 400
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "<html" in missing.text
    no_match = client.get("/", params={"q": "x", "modified_after": "2999-01-01"})
    assert no_match.status_code == 200 and "No images matched" in no_match.text


def test_fragments_answer_errors_as_json(client: TestClient) -> None:
    response = client.get("/partials/results", params={"q": "x", "offset": "-3"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "offset"
    assert client.get("/partials/results").json()["error"]["field"] == "q"


def test_upload_fragment_and_no_script_upload(client: TestClient) -> None:
    path = Path(
        client.get("/api/v1/search", params={"q": "x", "k": 1}).json()["results"][0]["path"]
    )
    data = path.read_bytes()
    fragment = client.post("/partials/upload", params={"k": 4}, files={"image": (path.name, data)})
    assert fragment.status_code == 200
    assert len(cards(fragment.text)) == 4 and 'data-mode="upload"' in fragment.text
    more = [a for a in Page(fragment.text).find("button") if a.get("data-more")]
    assert more and str(more[0]["data-more"]).startswith("/partials/upload?offset=4")
    page = client.post("/", files={"image": (path.name, data)})
    assert page.status_code == 200 and len(cards(page.text)) == 14 and "<html" in page.text
    bad = client.post("/partials/upload", files={"image": ("x.jpg", b"no picture here")})
    assert bad.status_code == 415 and bad.json()["error"]["field"] == "image"
    bad_page = client.post("/", files={"image": ("x.jpg", b"no picture here")})
    assert bad_page.status_code == 415 and 'role="alert"' in bad_page.text


def test_reloading_an_upload_url_explains_itself(client: TestClient) -> None:
    html = client.get("/", params={"upload": "1"}).text
    assert "Uploads are never kept" in html


def test_view_page(client: TestClient) -> None:
    doc_id = first_id(client)
    response = client.get(f"/view/{doc_id}")
    assert response.status_code == 200
    page = Page(response.text)
    main_img = [i for i in page.find("img") if str(i.get("src", "")).startswith("/api/v1/images/")]
    assert main_img and main_img[0]["alt"]
    assert page.find("a", href=f"/?similar={doc_id}")
    assert client.get("/view/nope").status_code == 404


def test_hostile_names_and_queries_are_escaped(own_collection: Collection, tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    name = "<img src=x onerror=alert(1)>'\"&.png"
    draw_image(3).save(evil / name, "PNG")
    own_collection.indexer.index([evil])
    with app_client(own_collection) as client:
        html = client.get("/", params={"q": "<script>alert(2)</script>", "n": 30}).text
        assert "<script>alert(2)" not in html and "&lt;script&gt;alert(2)" in html
        assert "<img src=x onerror" not in html
        assert any(
            "onerror" in str(c.get("aria-label", "")) for c in Page(html).find("a", class_="thumb")
        )
        for tag, attrs in Page(html).tags:
            assert not any(k.startswith("on") for k in attrs), (tag, attrs)


def test_empty_collection_says_how_to_fill_it(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path, tiny_embedder: object
) -> None:
    from lookalike.models.base import Embedder
    from web.helpers import make_settings

    assert isinstance(tiny_embedder, Embedder)
    settings = make_settings(
        tmp_path / "home", tiny_clip_dir, tiny_multilingual_dir, collection="holidays"
    )
    with Collection(settings, embedder=tiny_embedder) as empty, app_client(empty) as client:
        html = client.get("/").text
        assert "This collection is empty" in html and "--collection holidays" in html
        assert "0 images" in html
        assert "No images matched" in client.get("/", params={"q": "x"}).text


def test_static_files_are_served(client: TestClient) -> None:
    for name in ("app.js", "app.css", "icon.svg"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.content
    assert client.get("/static/../pages.py").status_code == 404
    assert client.get("/static/%2e%2e/pages.py").status_code == 404
