"""The page in a real browser: Debian's chromium driven by Playwright (no browser download),
against a real ``lookalike serve`` process over an indexed sample collection (tiny random
models, since pretrained weights cannot be had here).

It types a query and sees results, loads more, opens the viewer by keyboard, clicks "Find
similar" (the query image is not among the results), uploads / pastes / drops an image,
follows "Find similar" from upload results, and checks the error and phone-width states.
Any console error or CSP violation fails the test. Screenshots go to ``test-artifacts/``;
the desktop one is copied to ``docs/screenshot.png`` for the README.

Without chromium the tests fail in CI (CI=true) and are skipped elsewhere.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from lookalike.collection import Collection
from lookalike.models.base import Embedder
from web.helpers import make_settings
from web.live import ServeProcess, free_port

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
SAMPLES = 48  # more than one page of 30, so "Load more" has work to do
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _chromium() -> str:
    path = shutil.which("chromium")
    problem = None
    if path is None:
        problem = "Debian chromium is not installed: apt-get install chromium (or `make browser`)"
    elif importlib.util.find_spec("playwright") is None:
        problem = "the playwright package is missing: pip install -e '.[dev]'"
    if problem is None and path is not None:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser test cannot run: {problem}")
    pytest.skip(problem or "")


def _generate_samples(folder: Path, count: int) -> list[Path]:
    spec = importlib.util.spec_from_file_location(
        "make_samples", REPO / "scripts" / "make_samples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths: list[Path] = module.generate_samples(folder, count)
    return paths


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


@pytest.fixture(scope="module")
def served(
    chromium: str,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: Embedder,
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("samples")
    _generate_samples(root, SAMPLES)
    settings = make_settings(
        tmp_path_factory.mktemp("home"), tiny_clip_dir, tiny_multilingual_dir, collection="samples"
    )
    with Collection(settings, embedder=tiny_embedder) as collection:
        collection.indexer.index([root])
    server = ServeProcess(settings, free_port(), log=tmp_path_factory.mktemp("log") / "serve.log")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(chromium: str, served: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
            base_url=served,
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


class Console:
    """Collects console errors, page errors and CSP violations of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def check(self, *, allow_http_errors: bool = False) -> None:
        errors = [
            e for e in self.errors if not (allow_http_errors and "Failed to load resource" in e)
        ]
        assert errors == [], errors


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page()
    tab.console = Console(tab)
    try:
        yield tab
    finally:
        tab.close()


def card_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.id)"))


def wait_for_thumbnails(page: Any, count: int = 3) -> None:
    """The first ``count`` thumbnails load and decode (``decode()`` rejects a broken image).

    Not ``wait_for_function``: it evaluates strings, which the page's CSP rightly forbids."""
    images = page.locator(".card img")
    for i in range(min(count, images.count())):
        images.nth(i).evaluate("img => img.decode()")


def wait_for_cards(page: Any, count: int) -> None:
    page.wait_for_selector(f".grid > li.card:nth-child({count})")
    assert len(card_ids(page)) == count


def png_of(path: Path) -> bytes:
    with Image.open(path) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, "PNG")
        return out.getvalue()


def test_text_search_load_more_and_viewer(page: Any) -> None:
    page.goto("/")
    assert "samples" in page.inner_text("header") and f"{SAMPLES} images" in page.inner_text(
        "header"
    )
    assert page.is_visible("text=Find images by what is in them")
    page.fill("#q", "recycling symbol")
    page.press("#q", "Enter")
    page.wait_for_selector(".card")
    assert "q=recycling+symbol" in page.url
    assert "folder=" not in page.url  # empty filter fields stay out of the address
    assert len(card_ids(page)) == 30
    wait_for_thumbnails(page)
    first_img = page.query_selector(".card img")
    assert first_img.get_attribute("alt") and first_img.get_attribute("loading") == "lazy"

    page.click("[data-more]")
    wait_for_cards(page, SAMPLES)
    assert f"n={SAMPLES}" in page.url
    assert page.query_selector("[data-more]") is None
    assert len(set(card_ids(page))) == SAMPLES

    # keyboard: focus the first result, Enter opens the viewer, Escape closes it
    page.focus(".card a.thumb")
    page.keyboard.press("Enter")
    page.wait_for_selector("#viewer[open]")
    page.locator("#viewer-img").evaluate("img => img.decode()")
    assert page.inner_text("#viewer-title")
    assert page.get_attribute("#viewer-img", "alt")
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer:not([open])", state="attached")

    page.reload()
    assert len(card_ids(page)) == SAMPLES  # n= in the URL brings the same page back
    page.console.check()


def test_find_similar_excludes_the_query_image(page: Any) -> None:
    page.goto("/?q=green")
    page.wait_for_selector(".card")
    query_id = card_ids(page)[0]
    page.click(".card >> nth=0 >> text=Find similar")
    page.wait_for_url(f"**/?similar={query_id}*")
    page.wait_for_selector(".card")
    ids = card_ids(page)
    assert ids and query_id not in ids
    assert len(ids) == SAMPLES - 1 if SAMPLES - 1 <= 30 else len(ids) == 30
    assert "Similar to" in page.inner_text("#results-title")
    wait_for_thumbnails(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-similar.png"))
    page.console.check()


def test_upload_paste_and_drop(page: Any, tmp_path: Path) -> None:
    page.goto("/?q=anything")
    page.wait_for_selector(".card")
    sample = Path(page.eval_on_selector(".card a.thumb", "a => JSON.parse(a.dataset.view).path"))
    upload = tmp_path / "query.png"
    upload.write_bytes(png_of(sample))

    page.set_input_files("#upload", str(upload))
    page.wait_for_selector('.results[data-mode="upload"] .card')
    assert "upload=1" in page.url
    page.locator("[data-upload-preview] img").evaluate("img => img.decode()")
    ids = card_ids(page)
    assert len(ids) == 30
    wait_for_thumbnails(page)
    page.click("[data-more]")  # re-sends the image kept in the page, never on the server
    wait_for_cards(page, SAMPLES)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-upload.png"))

    # reload: the upload cannot come back from the URL, and the page says so
    page.reload()
    assert page.is_visible("text=Uploads are never kept")

    # "Find similar" on an upload result
    page.set_input_files("#upload", str(upload))
    page.wait_for_selector('.results[data-mode="upload"] .card')
    target = card_ids(page)[1]
    page.click(".card >> nth=1 >> text=Find similar")
    page.wait_for_url(f"**/?similar={target}*")
    page.wait_for_selector(".card")
    assert target not in card_ids(page)

    # paste and drop an image anywhere on the page
    data = base64.b64encode(upload.read_bytes()).decode()
    for event in ("paste", "drop"):
        page.goto("/")
        page.evaluate(
            """([b64, kind]) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], "clip.png", {type: "image/png"}));
                const init = {bubbles: true, cancelable: true};
                const ev = kind === "paste"
                  ? new ClipboardEvent("paste", {...init, clipboardData: dt})
                  : new DragEvent("drop", {...init, dataTransfer: dt});
                document.body.dispatchEvent(ev);
            }""",
            [data, event],
        )
        page.wait_for_selector('.results[data-mode="upload"] .card')
        assert len(card_ids(page)) == 30, event
    page.console.check()


def test_error_states(page: Any, tmp_path: Path) -> None:
    page.goto("/?q=x&modified_after=someday")
    assert page.is_visible(".alert")
    assert "modified_after" in page.inner_text(".alert")
    assert page.get_attribute('input[name="modified_after"]', "aria-invalid") == "true"

    page.goto("/")
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a picture at all")
    page.set_input_files("#upload", str(bogus))
    page.wait_for_selector("#results .alert")
    assert "not a supported image" in page.inner_text("#results .alert")

    page.goto("/?similar=unknown-id")
    assert page.is_visible(".alert")
    page.console.check(allow_http_errors=True)


def test_phone_width_and_dark_mode_screenshots(browser: Any) -> None:
    phone = browser.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    console = Console(phone)
    try:
        phone.goto("/?q=recycling+symbol")
        phone.wait_for_selector(".card")
        wait_for_thumbnails(phone, 2)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        columns = phone.locator(".grid").evaluate(
            "grid => getComputedStyle(grid).gridTemplateColumns.split(' ').length"
        )
        assert columns == 2
        ARTIFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "browser-phone.png"))
        phone.emulate_media(color_scheme="dark")
        phone.reload()  # a fresh render, not a colour transition caught half-way
        wait_for_thumbnails(phone, 2)
        phone.screenshot(path=str(ARTIFACTS / "browser-phone-dark.png"))
        console.check()
    finally:
        phone.close()

    desk = browser.new_page()
    console = Console(desk)
    try:
        desk.goto("/?q=recycling+symbol")
        desk.wait_for_selector(".card")
        desk.evaluate("document.querySelectorAll('.card img').forEach(i => i.loading = 'eager')")
        wait_for_thumbnails(desk, 20)
        shot = ARTIFACTS / "browser-results.png"
        desk.screenshot(path=str(shot))
        console.check()
    finally:
        desk.close()
    docs = REPO / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copyfile(shot, docs / "screenshot.png")


def test_api_docs_render_with_no_network(browser: Any, served: str) -> None:
    """Swagger UI comes from this server: every other host is cut off, and the docs
    still render the API's operations."""
    tab = browser.new_page()
    console = Console(tab)
    elsewhere: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(served + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    tab.route("**/*", only_this_server)
    try:
        tab.goto("/docs")
        tab.wait_for_selector(".swagger-ui .opblock-summary-path")
        assert "lookalike" in tab.inner_text(".swagger-ui .info .title")
        paths = tab.eval_on_selector_all(
            ".opblock-summary-path", "els => els.map(e => e.textContent)"
        )
        assert any("/api/v1/search" in p for p in paths), paths
        assert elsewhere == []
        console.check()
    finally:
        tab.close()
