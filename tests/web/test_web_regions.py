"""Region search through the JSON API and the page: a real collection indexed with
``--regions`` from generated scenes (tiny random models: the symbol is pasted as an exact
copy of a tile, see tests/test_regions.py), the app in-process, and once in chromium
drawing a box on an image ("search this part")."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from lookalike.collection import Collection
from lookalike.indexer import document_id
from lookalike.models.base import Embedder
from test_regions import BOX, scene, symbol
from web.helpers import app_client, assert_error, make_settings

BOX_PARAM = ",".join(f"{v:.4f}" for v in BOX)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Scenes, one with the symbol and an identical copy of it in another folder."""
    folder = tmp_path_factory.mktemp("scenes")
    target = folder / "with-symbol.png"
    scene(1, with_symbol=True).save(target)
    for i in range(2, 6):
        scene(i, with_symbol=False).save(folder / f"plain-{i}.png")
    (folder / "copies").mkdir()
    copy = folder / "copies" / "same.png"
    shutil.copyfile(target, copy)
    return folder, target, copy


@pytest.fixture(scope="module")
def regions_collection(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: Embedder,
    scenes: tuple[Path, Path, Path],
) -> Iterator[Collection]:
    settings = make_settings(
        tmp_path_factory.mktemp("home"), tiny_clip_dir, tiny_multilingual_dir, collection="scenes"
    )
    collection = Collection(settings, embedder=tiny_embedder)
    collection.indexer.index([scenes[0]], regions=True)
    yield collection
    collection.close()


@pytest.fixture(scope="module")
def client(regions_collection: Collection) -> Iterator[TestClient]:
    with app_client(regions_collection) as test_client:
        yield test_client


def symbol_png() -> bytes:
    out = io.BytesIO()
    symbol().save(out, "PNG")
    return out.getvalue()


def test_api_searches_return_region_boxes(client: TestClient, scenes) -> None:
    _folder, target, copy = scenes
    body = client.post(
        "/api/v1/search/image",
        params={"regions": "true", "k": 3},
        files={"image": ("symbol.png", symbol_png(), "image/png")},
    ).json()
    top = body["results"][:2]
    assert {r["path"] for r in top} == {target.as_posix(), copy.as_posix()}
    for result in top:
        assert result["region"] == pytest.approx(list(BOX), abs=1e-3)
    plain = client.post(
        "/api/v1/search/image",
        params={"k": 3},
        files={"image": ("symbol.png", symbol_png(), "image/png")},
    ).json()
    assert all("region" not in r for r in plain["results"])
    text = client.get("/api/v1/search", params={"q": "green triangle", "regions": "true"}).json()
    assert len({r["id"] for r in text["results"]}) == text["count"] == 6  # one hit per image


def test_api_searches_a_part_of_an_image(client: TestClient, scenes) -> None:
    _folder, target, copy = scenes
    target_id = document_id(target.as_posix())
    body = client.get(
        f"/api/v1/images/{target_id}/similar",
        params={"box": BOX_PARAM, "regions": "true", "k": 3},
    ).json()
    assert body["query"]["box"] == pytest.approx(list(BOX), abs=1e-4)
    assert target_id not in [r["id"] for r in body["results"]]  # the image itself is left out
    assert body["results"][0]["path"] == copy.as_posix()
    assert body["results"][0]["region"] == pytest.approx(list(BOX), abs=1e-3)
    bad = client.get(f"/api/v1/images/{target_id}/similar", params={"box": "0.5,0.5,0.2,0.9"})
    assert_error(bad, 400, "box")
    assert_error(client.get(f"/api/v1/images/{target_id}/similar", params={"box": "x"}), 400, "box")


def test_regions_on_a_collection_without_them_is_a_400(client: TestClient, own_collection) -> None:
    with app_client(own_collection) as other:
        response = other.get("/api/v1/search", params={"q": "red", "regions": "true"})
    assert_error(response, 400, "regions")


def test_page_outlines_the_matched_region(client: TestClient, scenes) -> None:
    _folder, target, copy = scenes
    target_id = document_id(target.as_posix())
    page = client.get("/", params={"similar": target_id, "box": BOX_PARAM, "regions": "1"})
    assert page.status_code == 200, page.text
    html = page.text
    assert "Similar to a part of" in html
    assert html.count('class="region"') >= 1
    first_card = html.split('class="card"')[1]
    assert f'data-id="{document_id(copy.as_posix())}"' in first_card
    assert 'data-region="0.3571,0.25,0.6429,0.75"' in first_card
    # the outline is in percent of the square, cover-cropped thumbnail (1568x896 scene)
    assert 'x="25.0" y="25.0" width="50.0" height="50.0"' in first_card
    assert "regions=1" in html  # links keep region search on
    view = client.get(f"/view/{target_id}").text
    assert 'name="box"' in view and "Search this part" in view


@pytest.mark.browser
def test_drawing_a_box_on_an_image_searches_that_part(
    scenes, regions_collection: Collection, tmp_path: Path
) -> None:
    from web.live import ServeProcess, free_port
    from web.test_web_browser import CHROMIUM_ARGS, Console, _chromium

    chromium = _chromium()
    _folder, target, copy = scenes
    server = ServeProcess(regions_collection.settings, free_port(), log=tmp_path / "serve.log")
    url = server.start()
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page: Any = browser.new_page(base_url=url, viewport={"width": 1280, "height": 900})
            console = Console(page)
            page.goto(f"/view/{document_id(target.as_posix())}")
            img = page.locator("figure.part img")
            img.evaluate("img => img.decode()")
            rect = img.bounding_box()
            x0, y0, x1, y1 = BOX
            page.mouse.move(rect["x"] + x0 * rect["width"] + 2, rect["y"] + y0 * rect["height"] + 2)
            page.mouse.down()
            page.mouse.move(rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2)
            assert page.is_visible(".part-box")  # the box follows the pointer
            page.mouse.move(rect["x"] + x1 * rect["width"] - 2, rect["y"] + y1 * rect["height"] - 2)
            page.mouse.up()
            page.wait_for_url("**/?similar=*box=*")
            page.wait_for_selector(".card")
            first = page.locator(".card").first
            assert first.get_attribute("data-id") == document_id(copy.as_posix())
            assert first.locator("svg.region").count() == 1
            console.check()
            browser.close()
    finally:
        server.stop()
