"""``lookalike eval``: labelled queries, metrics checked against hand-computed values, cut-offs.

The metric tests search a real embedded store (SQLite on disk) whose vectors are placed
so that each query's ranking is known in advance; the query texts are embedded by a stub
with a fixed table of vectors, since what is measured is the bookkeeping, not a model.
The CLI test runs the real pipeline with tiny random models (no pretrained weights here).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import test_cli
from lookalike.cutoff import largest_gap
from lookalike.errors import ConfigError, NotFoundError, QueryError
from lookalike.evaluation import evaluate, ndcg_at
from lookalike.labels import load_labels
from lookalike.models.base import Embedder
from lookalike.records import ModelInfo, Record
from lookalike.search import Searcher
from lookalike.store import LocalStore
from test_cli import run

env = test_cli.env  # the CLI tests' fixtures: a home with tiny models, an indexed folder
indexed = test_cli.indexed

DIM = 4
MODEL = ModelInfo("test/table", DIM, "p1")


def _at(cosine: float) -> np.ndarray:
    """A unit vector whose cosine with the query vector e0 is ``cosine``."""
    return np.array([cosine, math.sqrt(1 - cosine**2), 0.0, 0.0], dtype=np.float32)


class TableEmbedder(Embedder):
    """Text queries map to fixed vectors (the stub stands in for a model)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    @property
    def model_id(self) -> str:
        return MODEL.model_id

    @property
    def dim(self) -> int:
        return DIM

    @property
    def info(self) -> ModelInfo:
        return MODEL

    def load(self) -> None:
        pass

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise AssertionError("no image queries in this test")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


# query "q" (e0) ranks: a/1 (0.9), b/3 (0.8), a/2 (0.7), b/4 (0.5), b/5 (0.1)
DOCS = {"a/1.png": 0.9, "b/3.png": 0.8, "a/2.png": 0.7, "b/4.png": 0.5, "b/5.png": 0.1}


@pytest.fixture
def searcher(tmp_path: Path) -> tuple[Searcher, LocalStore, Path]:
    root = tmp_path / "pics"
    store = LocalStore(tmp_path / "col", "col")
    store.bind_model(MODEL)
    records = [
        Record(
            id=rel,
            path=(root / rel).as_posix(),
            root=root.as_posix(),
            relpath=rel,
            format="png",
            size=100,
            mtime=1.0,
            sha256=f"{i:064x}",
            width=8,
            height=8,
            vector=_at(cos),
        )
        for i, (rel, cos) in enumerate(DOCS.items())
    ]
    store.upsert(records)
    embedder = TableEmbedder({"q": np.eye(DIM, dtype=np.float32)[0]})
    yield Searcher(store, embedder, max_pixels=10**6), store, root
    store.close()


def _labels(tmp_path: Path, text: str, name: str = "labels.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_metrics_equal_hand_computed_values(
    searcher: tuple[Searcher, LocalStore, Path], tmp_path: Path
) -> None:
    search, store, root = searcher
    labels = _labels(
        tmp_path,
        f"root: {root}\nqueries:\n"
        "  - {text: q, relevant: [a/]}\n"  # right at ranks 1 and 3 of 5
        "  - {text: q, relevant: [b/5.png, b/4.png], name: tail}\n",  # ranks 4, 5
    )
    report = evaluate(search, store, load_labels(labels), k=2, depth=5, thresholds=(0.6,))
    a, tail = report.queries
    assert (a.relevant, a.found_at) == (2, [1, 3])
    assert a.recall == pytest.approx(1 / 2)
    assert a.precision == pytest.approx(1 / 2)
    assert a.reciprocal_rank == pytest.approx(1.0)
    assert a.ndcg == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert a.misses == [(root / "a/2.png").as_posix()] and a.miss_ranks[a.misses[0]] == 3
    assert (tail.relevant, tail.found_at) == (2, [4, 5])
    assert (tail.recall, tail.precision) == (0.0, 0.0)
    assert tail.reciprocal_rank == pytest.approx(1 / 4)
    ideal = 1 + 1 / math.log2(3)
    assert tail.ndcg == pytest.approx((1 / math.log2(5) + 1 / math.log2(6)) / ideal)
    assert report.overall["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    assert report.overall["recall@2"] == pytest.approx(1 / 4)
    # score >= 0.6 keeps 3 hits: a/ query 2 right of 3 kept, tail 0 of 3
    cut = next(c for c in report.cuts if c.name == "score>=0.6")
    assert cut.kept == 3
    assert cut.precision == pytest.approx((2 / 3 + 0) / 2)
    assert cut.recall == pytest.approx((1 + 0) / 2)


def test_a_listed_file_that_is_not_indexed_counts_as_a_miss(
    searcher: tuple[Searcher, LocalStore, Path], tmp_path: Path
) -> None:
    search, store, root = searcher
    labels = _labels(
        tmp_path, f"root: {root}\nqueries:\n  - {{text: q, relevant: [a/1.png, gone.png]}}\n"
    )
    (result,) = evaluate(search, store, load_labels(labels), k=5, depth=5).queries
    assert result.relevant == 2 and result.recall == pytest.approx(0.5)
    assert (root / "gone.png").as_posix() in result.misses


def test_ndcg_and_largest_gap_by_hand() -> None:
    assert ndcg_at([True, False, True], relevant=2) == pytest.approx(
        (1 + 0.5) / (1 + 1 / math.log2(3))
    )
    assert ndcg_at([False, False], relevant=0) == 0.0
    assert largest_gap([0.9, 0.88, 0.87, 0.5, 0.49]) == 3
    assert largest_gap([0.3, 0.3, 0.3]) == 3  # flat: keep all
    assert largest_gap([0.9, 0.2, 0.19], min_keep=2) == 2
    assert largest_gap([]) == 0


def test_yaml_json_and_csv_labels_agree(tmp_path: Path) -> None:
    (tmp_path / "pics" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "pics" / "cats" / "q.png")
    yaml_file = _labels(
        tmp_path,
        "root: pics\nqueries:\n"
        "  - {text: a cat, relevant: [cats]}\n"
        "  - {image: cats/q.png, relevant: [cats/, dog.jpg], name: by image}\n",
    )
    body = {
        "root": "pics",
        "queries": [
            {"text": "a cat", "relevant": ["cats"]},
            {"image": "cats/q.png", "relevant": ["cats/", "dog.jpg"], "name": "by image"},
        ],
    }
    json_file = _labels(tmp_path, json.dumps(body), "labels.json")
    csv_file = _labels(
        tmp_path,
        "name,text,image,relevant\n,a cat,,cats\nby image,,cats/q.png,cats/;dog.jpg\n",
        "labels.csv",
    )
    from_yaml = load_labels(yaml_file)
    assert from_yaml == load_labels(json_file)
    assert from_yaml == load_labels(csv_file, root=str(tmp_path / "pics"))
    cats = (tmp_path / "pics" / "cats").as_posix() + "/"
    assert from_yaml[0].relevant == (cats,)  # an existing folder without its slash
    assert from_yaml[1].image == (tmp_path / "pics" / "cats" / "q.png").as_posix()
    assert from_yaml[1].relevant == (cats, (tmp_path / "pics" / "dog.jpg").as_posix())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("queries:\n  - {relevant: [a/]}\n", "query 1: give exactly one of 'text' and 'image'"),
        ("queries:\n  - {text: x}\n", "query 1: 'relevant' must list"),
        ("queries:\n  - {text: x, relevant: [a]}\n  - 7\n", "query 2: expected a mapping"),
        ("queries: [\n", "not valid YAML"),
        ("queries: []\n", "holds no queries"),
        ("{}\n", "expected a list of queries"),
    ],
)
def test_bad_labels_name_the_file_and_the_query(tmp_path: Path, text: str, message: str) -> None:
    path = _labels(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_labels(path)
    assert str(path) in str(err.value)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no labels file"):
        load_labels(tmp_path / "nope.yaml")
    path = _labels(tmp_path, "queries:\n  - {image: gone.png, relevant: [a/]}\n")
    with pytest.raises(NotFoundError, match="no image file at .*gone.png"):
        load_labels(path)
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml, \.json or \.csv"):
        load_labels(_labels(tmp_path, "x", "labels.txt"))


def test_window_is_checked(searcher: tuple[Searcher, LocalStore, Path], tmp_path: Path) -> None:
    search, store, root = searcher
    queries = load_labels(
        _labels(tmp_path, f"root: {root}\nqueries: [{{text: q, relevant: [a/]}}]\n")
    )
    with pytest.raises(QueryError, match="depth"):
        evaluate(search, store, queries, k=10, depth=5)


def test_cli_eval_with_compare_and_json(
    indexed: list[Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels = _labels(
        tmp_path,
        f"root: {tmp_path / 'pics'}\nqueries:\n"
        "  - {text: noise, relevant: [sub0/]}\n"
        "  - {image: sub1/img001.png, relevant: [sub1/]}\n",
    )
    code, out, _ = run(capsys, "index", "--quiet", "-c", "other", str(tmp_path / "pics"))
    assert code == 0
    code, out, err = run(capsys, "eval", str(labels), "-k", "3", "--compare", "other", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert set(body) == {"default", "other"}
    for report in body.values():
        assert [q["relevant"] for q in report["queries"]] == [3, 2]  # 9 files in sub0..sub2
        assert set(report["overall"]) == {"recall@3", "precision@3", "mrr", "ndcg@10"}
        assert {c["cut"] for c in report["cuts"]} >= {"top-k", "largest-gap"}
    # the same images and models: the same figures
    assert body["default"]["overall"] == body["other"]["overall"]
    code, out, _ = run(capsys, "eval", str(labels), "--compare", "other")
    assert code == 0
    assert "overall" in out and "other against default" in out
    code, _, err = run(capsys, "eval", str(labels), "--thresholds", "0.2,x")
    assert code == 2 and "thresholds" in err


def test_cli_auto_cutoff_keeps_the_hits_above_the_widest_gap(
    indexed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "search", "noise", "-k", "9", "--json")
    assert code == 0
    scores = [h["score"] for h in json.loads(out)["results"]]
    code, out, _ = run(capsys, "search", "noise", "-k", "9", "--json", "--auto-cutoff")
    assert code == 0
    kept = json.loads(out)["results"]
    assert [h["score"] for h in kept] == scores[: largest_gap(scores)]
    assert 1 <= len(kept) <= 9
    code, out, _ = run(capsys, "similar", str(indexed[0]), "--auto-cutoff", "--json")
    assert code == 0 and json.loads(out)["results"]
