"""Region search end to end: generated scenes with a symbol pasted into one tile, real
files, real SQLite, real decode workers, tiny random models (no pretrained weights can be
had here, so the symbol is pasted as an exact copy of a tile: its region vector then
equals the query's, whatever the weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.errors import ConfigError
from lookalike.indexer import document_id
from lookalike.records import Filters
from lookalike.regions import RegionSpec, tile_boxes
from lookalike.search import Query

# 1568x896: grid 3 cuts 448-px tiles at x = 0, 280, 560, 840, 1120 and y = 0, 224, 448;
# the symbol is pasted exactly over the tile at (560, 224), 14 % of the scene
W, H = 1568, 896
SPOT = (560, 224)
BOX = (560 / W, 224 / H, 1008 / W, 672 / H)


def symbol(size: int = 448) -> Image.Image:
    """A bold, flat mark unlike the noisy scenes (arrows in a triangle, roughly)."""
    im = Image.new("RGB", (size, size), (250, 250, 240))
    d = ImageDraw.Draw(im)
    d.polygon(
        [(size // 2, size // 8), (size * 7 // 8, size * 7 // 8), (size // 8, size * 7 // 8)],
        outline=(20, 140, 40),
        width=size // 12,
    )
    d.ellipse((size * 3 // 8, size * 4 // 8, size * 5 // 8, size * 6 // 8), fill=(20, 140, 40))
    return im


def scene(seed: int, *, with_symbol: bool) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (H // 16, W // 16, 3), dtype=np.uint8)
    im = Image.fromarray(pixels).resize((W, H), Image.Resampling.NEAREST)
    d = ImageDraw.Draw(im)
    for _ in range(40):
        x, y = (int(v) for v in rng.integers(0, H, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        d.rectangle((x, y, x + 80, y + 50), fill=colour)
    if with_symbol:
        im.paste(symbol(), SPOT)
    return im


@pytest.fixture
def collection(tiny_settings: Settings, tiny_embedder):
    col = Collection(tiny_settings, embedder=tiny_embedder)
    yield col
    col.close()


@pytest.fixture
def scenes(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "scenes"
    folder.mkdir()
    target = folder / "with-symbol.png"
    scene(1, with_symbol=True).save(target)
    for i in range(2, 8):
        scene(i, with_symbol=False).save(folder / f"plain-{i}.png")
    # a whole-image lookalike: the symbol's colours and shape over the whole frame
    symbol(H).transpose(Image.Transpose.FLIP_TOP_BOTTOM).resize((W, H)).save(folder / "poster.png")
    query = tmp_path / "symbol.png"
    symbol().save(query)
    return folder, target, query


def test_tile_boxes_cover_the_image_in_overlapping_grids() -> None:
    boxes = tile_boxes(896, 896, RegionSpec(grids=(2, 3)))
    assert len(boxes) == 4 + 9
    assert (0.25, 0.25, 0.75, 0.75) in boxes
    wide = tile_boxes(1200, 900, RegionSpec(grids=(3,)))
    assert len(wide) == 4 * 3  # more tiles along the long side
    assert min(b[0] for b in wide) == 0.0 and max(b[2] for b in wide) == 1.0
    assert tile_boxes(400, 300, RegionSpec()) == []  # too small: the whole view suffices


def test_region_hit_reports_the_image_and_its_box(collection: Collection, scenes) -> None:
    folder, target, query = scenes
    report = collection.indexer.index([folder], regions=True)
    assert report.indexed == 8
    hits = collection.searcher.search(Query(images=[query], k=3, regions=True))
    assert hits[0].path == target.as_posix()
    assert hits[0].region is not None
    assert hits[0].region == pytest.approx(BOX, abs=1e-3)
    assert hits[0].score > 0.99
    assert hits[0].to_dict()["region"] == [round(v, 4) for v in BOX]
    assert len({h.id for h in hits}) == len(hits)  # one hit per image
    whole = collection.searcher.image(query, k=8)
    assert whole[0].path != target.as_posix()  # the whole view prefers the lookalike poster
    assert all(h.region is None for h in whole)


def region_rows(col: Collection) -> int:
    return int(col.store.stats().details["regions"]["region_vectors"])


def test_regions_stay_recorded_and_an_unchanged_rerun_does_no_region_work(
    collection: Collection, scenes, tmp_path: Path
) -> None:
    folder, _target, _query = scenes
    collection.indexer.index([folder], regions=True)
    assert collection.store.region_spec == RegionSpec()
    rows = region_rows(collection)
    assert rows == 8 * (5 * 3 + 4 * 2)  # 15 grid-3 + 8 grid-2 tiles per 1568x896 scene
    cost = collection.store.stats().details["regions"]
    again = collection.indexer.index([folder])  # no regions=True: the collection remembers
    assert (again.indexed, again.unchanged) == (0, 8)
    assert region_rows(collection) == rows
    assert collection.store.stats().details["regions"] == cost  # no seconds added either
    scene(9, with_symbol=False).save(folder / "new.png")
    small = folder / "small.png"
    scene(10, with_symbol=False).resize((300, 200)).save(small)
    later = collection.indexer.index([folder])
    assert later.indexed == 2
    assert region_rows(collection) == rows + 23  # the small image gets no tiles
    assert cost["embed_time_ratio"] > 1.0
    (folder / "new.png").unlink()
    collection.indexer.index([folder])
    assert region_rows(collection) == rows


def test_turning_regions_on_later_tiles_the_images_already_indexed(
    collection: Collection, scenes
) -> None:
    folder, target, query = scenes
    collection.indexer.index([folder])
    assert region_rows(collection) == 0
    with pytest.raises(ConfigError, match="--regions"):
        collection.searcher.search(Query(images=[query], regions=True))
    report = collection.indexer.index([folder], regions=True)
    assert report.indexed == 8  # decoded again for their tiles
    assert region_rows(collection) == 8 * 23
    assert collection.indexer.index([folder]).indexed == 0
    hits = collection.searcher.search(Query(images=[query], k=1, regions=True))
    assert [h.id for h in hits] == [document_id(target.as_posix())]


def test_a_copy_reuses_the_tiles_and_filters_apply(collection: Collection, scenes) -> None:
    folder, target, query = scenes
    collection.indexer.index([folder], regions=True)
    other = folder / "copies"
    other.mkdir()
    (other / "same.png").write_bytes(target.read_bytes())
    report = collection.indexer.index([folder])
    assert (report.indexed, report.reused) == (0, 1)
    copy_id = document_id((other / "same.png").as_posix())
    assert len(collection.store.regions_of([copy_id])[copy_id]) == 23
    only_copies = Query(images=[query], k=5, regions=True, filters=Filters(folder=other.as_posix()))
    hits = collection.searcher.search(only_copies)
    assert [h.id for h in hits] == [copy_id]
    assert hits[0].region == pytest.approx(BOX, abs=1e-3)
    without = Query(images=[query], k=2, regions=True, exclude_ids=[copy_id])
    assert collection.searcher.search(without)[0].path == target.as_posix()


def test_cli_index_search_similar_and_stats_with_regions(
    tiny_settings: Settings, scenes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    from test_cli import run

    monkeypatch.setenv("LOOKALIKE_HOME", str(tiny_settings.home))
    monkeypatch.setenv("LOOKALIKE_MODEL", tiny_settings.image_model)
    monkeypatch.setenv("LOOKALIKE_TEXT_MODEL", tiny_settings.text_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    folder, target, query = scenes
    code, out, err = run(capsys, "similar", str(query), "--regions")
    assert code == 3 and "no collection named default" in err  # reads never create one
    code, out, _ = run(capsys, "index", "--quiet", "-c", "plain", "--json", str(folder))
    assert code == 0
    code, out, err = run(capsys, "similar", str(query), "--regions", "-c", "plain")
    assert code != 0 and "--regions" in err  # indexed without regions: none to search
    code, out, _ = run(capsys, "index", "--quiet", "--regions", "--json", str(folder))
    assert code == 0 and json.loads(out)["indexed"] == 8
    code, out, _ = run(capsys, "similar", str(query), "--regions", "-k", "3", "--json")
    assert code == 0
    hits = json.loads(out)["results"]
    assert hits[0]["path"] == target.as_posix()
    assert hits[0]["region"] == pytest.approx(list(BOX), abs=1e-3)
    code, out, _ = run(capsys, "similar", str(query), "--regions", "-k", "1")
    assert code == 0 and "with-symbol.png" in out and "region 0.36,0.25-0.64,0.75" in out
    code, out, _ = run(capsys, "search", "a green triangle", "--regions", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 8  # one hit per image, tiles merged
    code, out, _ = run(capsys, "stats", "--json")
    report = json.loads(out)
    regions = report["details"]["regions"]
    assert regions["vectors_per_image"] == 24.0 and regions["region_vectors"] == 8 * 23
    float32_bytes = regions["region_vectors"] * 4 * report["dimensions"]
    assert regions["region_ram_bytes"] < float32_bytes / 2  # int8 rows, not float32
    code, out, _ = run(capsys, "stats")
    assert "24.00 (1 whole + tiles)" in out
    assert "embedding time ratio" in out


def test_int8_region_vectors_keep_cosines() -> None:
    from lookalike.store.local.regions import quantise

    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 512)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q, scale = quantise(v)
    assert q.dtype == np.int8 and q.nbytes == v.nbytes // 4
    restored = q.astype(np.float32) * scale[:, None]
    query = v[0]
    assert np.max(np.abs(restored @ query - v @ query)) < 5e-3


@pytest.mark.parametrize(
    ("box", "fragment"),
    [("1,2,3", "four numbers"), ("0.5,0.1,0.2,0.9", "x0 < x1"), ("0,0,1.5,1", "inside")],
)
def test_bad_boxes_name_the_box(box: str, fragment: str) -> None:
    from lookalike.errors import QueryError
    from lookalike.regions import check_box

    with pytest.raises(QueryError, match=fragment) as caught:
        check_box(box)
    assert caught.value.field == "box"
    assert check_box("0.1, 0.2, 0.3, 0.4") == (0.1, 0.2, 0.3, 0.4)
