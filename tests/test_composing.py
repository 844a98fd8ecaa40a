"""Composed queries and relevance feedback in the library, on a collection whose answers are
known (families of a picture, its exact copy and a slightly edited copy; see
support/families.py). Tiny random models: their vectors are all fairly alike (cosines near
0.95), so the tests rely only on what holds for any model: an exact copy embeds to the same
vector, and subtracting a vector lowers the score of what points that way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike.collection import Collection
from lookalike.composing import Weighted, rocchio
from lookalike.config import Settings
from lookalike.errors import NotFoundError, QueryError
from lookalike.models.base import Embedder
from lookalike.search import Query
from support.families import FAMILIES, write_families


@pytest.fixture(scope="module")
def families(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: Embedder,
) -> Iterator[tuple[Collection, list[dict[str, str]]]]:
    root = tmp_path_factory.mktemp("families")
    paths = write_families(root)
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        image_model=str(tiny_clip_dir),
        text_model=str(tiny_multilingual_dir),
        batch_size=8,
    )
    with Collection(settings, embedder=tiny_embedder) as col:
        col.indexer.index([root])
        by_path = {h.path: h.id for h in col.searcher.text("x", k=100)}
        ids = [{kind: by_path[p.as_posix()] for kind, p in fam.items()} for fam in paths]
        yield col, ids


def ranked(col: Collection, query: Query) -> list[str]:
    return [h.id for h in col.searcher.search(query)]


def test_more_like_this_finds_the_copies_first(
    families: tuple[Collection, list[dict[str, str]]],
) -> None:
    col, ids = families
    a = ids[0]
    hits = col.searcher.search(Query(ids=[a["orig"]], k=3))
    assert hits[0].id == a["copy"] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert a["orig"] not in {h.id for h in hits}


def test_less_like_this_pushes_a_family_down(
    families: tuple[Collection, list[dict[str, str]]],
) -> None:
    col, ids = families
    a = ids[0]
    before = [h.id for h in col.searcher.search(Query(ids=[a["orig"]], k=100))]
    # the other family that ranks highest before: "less like this" has room to push it down
    b = min(ids[1:], key=lambda fam: before.index(fam["copy"]))
    hits = col.searcher.search(Query(ids=[a["orig"]], negative_ids=[b["orig"]], k=100))
    after = [h.id for h in hits]
    assert after.index(b["copy"]) > before.index(b["copy"])
    assert after.index(b["edit"]) > before.index(b["edit"])
    assert b["orig"] not in after  # what was excluded never comes back
    assert after[0] == a["copy"]  # the positive still leads


@pytest.mark.parametrize("heavy", [0, 1])
def test_weights_pull_towards_the_heavier_part(
    families: tuple[Collection, list[dict[str, str]]], heavy: int
) -> None:
    col, ids = families
    a, b = ids[0], ids[1]
    parts = [
        Weighted(a["orig"], 20.0 if heavy == 0 else 1.0),
        Weighted(b["orig"], 20.0 if heavy == 1 else 1.0),
    ]
    top = ranked(col, Query(ids=parts, k=2))
    assert top[0] == (a if heavy == 0 else b)["copy"]


def test_more_like_these_gathers_both_families(
    families: tuple[Collection, list[dict[str, str]]],
) -> None:
    """Rocchio with two positives of the same family and one negative: the family comes first,
    the negative's family goes last among the copies."""
    col, ids = families
    a, c = ids[2], ids[3]
    hits = ranked(col, Query(ids=[a["orig"], a["edit"]], negative_ids=[c["orig"]], k=3 * FAMILIES))
    assert hits[0] == a["copy"]
    assert hits.index(c["copy"]) > hits.index(a["copy"])


def test_negative_images_and_texts_are_parts_too(
    families: tuple[Collection, list[dict[str, str]]], tmp_path: Path
) -> None:
    col, ids = families
    a, b = ids[0], ids[1]
    b_path = col.store.get([b["orig"]])[0].path
    q_id = col.searcher.query_vector(Query(ids=[a["orig"]], negative_ids=[b["orig"]]))
    q_image = col.searcher.query_vector(Query(ids=[a["orig"]], negative_images=[b_path]))
    assert np.allclose(q_id, q_image, atol=1e-4)  # the file and its indexed vector agree
    with_text = col.searcher.query_vector(Query(ids=[a["orig"]], negative_texts=["night"]))
    assert not np.allclose(with_text, col.searcher.query_vector(Query(ids=[a["orig"]])))
    # a negative image file that is indexed is not returned either
    assert b_path not in {
        h.path for h in col.searcher.search(Query(ids=[a["orig"]], negative_images=[b_path], k=100))
    }


def test_rocchio_arithmetic() -> None:
    x, y = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    assert np.allclose(rocchio([x, y], [3.0, 1.0], [], [], 0.5), np.array([3, 1]) / np.sqrt(10))
    assert np.allclose(rocchio([x], [1.0], [y], [1.0], 1.0), np.array([1, -1]) / np.sqrt(2))
    with pytest.raises(QueryError, match="cancels itself out"):
        rocchio([x], [1.0], [x], [1.0], 1.0)


@pytest.mark.parametrize(
    ("query", "error", "field"),
    [
        (Query(ids=[Weighted("x", 0.0)]), QueryError, "weight"),
        (
            Query(texts=["a"], negative_texts=[Weighted("b", float("nan"))]),
            QueryError,
            "negative_weight",
        ),
        (Query(texts=["a"], negative_weight=-1), QueryError, "negative_weight"),
        (Query(texts=["a"], negative_ids=["nope"]), NotFoundError, "negative_id"),
        (Query(negative_texts=["only negatives"]), QueryError, "q"),
        (Query(texts=["a"] * 70), QueryError, "q"),
    ],
)
def test_mistakes_name_the_part(
    families: tuple[Collection, list[dict[str, str]]], query: Query, error: type, field: str
) -> None:
    col, _ = families
    with pytest.raises(error) as caught:
        col.searcher.search(query)
    assert caught.value.field == field
