"""Searcher over a real local store filled by the real indexer, with tiny random models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.errors import ImageError, NotFoundError, QueryError
from lookalike.records import Filters
from lookalike.search import Query
from test_indexer import write_images


@pytest.fixture
def col(tiny_settings: Settings, tiny_embedder, tmp_path: Path):
    write_images(tmp_path / "pics", 12)
    with Collection(tiny_settings, embedder=tiny_embedder) as c:
        c.indexer.index([tmp_path / "pics"])
        yield c


def test_image_query_finds_itself_first(col: Collection, tmp_path: Path) -> None:
    target = tmp_path / "pics" / "sub1" / "img004.png"
    hits = col.searcher.image(target.read_bytes(), k=3)  # bytes: not recognisable as the file
    assert hits[0].path == target.as_posix()
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    # the file itself as a path is excluded, as with "find similar"
    assert target.as_posix() not in {h.path for h in col.searcher.image(target, k=12)}


def test_similar_excludes_the_query_and_pages_consistently(col: Collection) -> None:
    first = col.searcher.text("anything", k=1)[0]
    everything = col.searcher.similar(first.id, k=20)
    assert len(everything) == 11 and first.id not in {h.id for h in everything}
    pages = [col.searcher.similar(first.id, k=4, offset=o) for o in (0, 4, 8)]
    assert [h.id for page in pages for h in page] == [h.id for h in everything]
    scores = [h.score for h in everything]
    assert scores == sorted(scores, reverse=True)
    cut = scores[5]
    assert all(h.score >= cut for h in col.searcher.similar(first.id, k=20, min_score=cut))


def test_filters(col: Collection, tmp_path: Path) -> None:
    folder = (tmp_path / "pics" / "sub2").as_posix()
    hits = col.searcher.text("x", k=50, filters=Filters(folder=folder))
    assert len(hits) == 4 and all(h.path.startswith(folder + "/") for h in hits)
    assert col.searcher.text("x", k=50, filters=Filters(formats=("jpeg",))) == []


def test_combined_query_with_negatives(col: Collection, tmp_path: Path) -> None:
    target = tmp_path / "pics" / "sub0" / "img000.png"
    q = Query(images=[Image.open(target)], texts=["red"], negative_texts=["blue"], k=5)
    vec = col.searcher.query_vector(q)
    assert vec.dtype == np.float32 and np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    assert len(col.searcher.search(q)) == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 100_000}, "k"),
        ({"offset": -1}, "offset"),
        ({"k": 1000, "offset": 9500}, "offset"),
        ({"min_score": 2.0}, "min_score"),
    ],
)
def test_bad_parameters_name_the_field(col: Collection, kwargs: dict, field: str) -> None:
    with pytest.raises(QueryError) as err:
        col.searcher.text("x", **kwargs)
    assert err.value.field == field


def test_bad_queries(col: Collection) -> None:
    with pytest.raises(QueryError):
        col.searcher.text("")
    with pytest.raises(QueryError):
        col.searcher.text("x" * 5000)
    with pytest.raises(NotFoundError):
        col.searcher.similar("does-not-exist")
    with pytest.raises(ImageError):
        col.searcher.image(b"not an image")
    with pytest.raises(ImageError):
        col.searcher.image(io.BytesIO(b""))
