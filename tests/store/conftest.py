"""Fixtures for the store tests: a backend-parametrised store factory and record builders.

``store_factory`` runs every contract test against the embedded store twice (the
exact path, and the HNSW path with its size threshold forced to 0) and against
Elasticsearch when LOOKALIKE_TEST_ES_URL names a live cluster (nothing here can
start one, so it is skipped otherwise).

The live matrix (.github/workflows/elasticsearch.yml) also sets
LOOKALIKE_TEST_DIM (the vectors' dimension, 24 by default; ``bbq_hnsw`` needs more
than 64) and LOOKALIKE_TEST_ES_INDEX_OPTIONS (``es_index_options`` of the indexes the
suite creates) and LOOKALIKE_TEST_ES_RESCORE (``es_rescore``).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.records import ModelInfo, Record
from lookalike.store import IndexParams, LocalStore, Store

DIM = int(os.environ.get("LOOKALIKE_TEST_DIM") or 24)
ES_INDEX_OPTIONS = os.environ.get("LOOKALIKE_TEST_ES_INDEX_OPTIONS") or "auto"
ES_RESCORE = os.environ.get("LOOKALIKE_TEST_ES_RESCORE") or "auto"
MODEL = ModelInfo(model_id="test/tiny-clip", dim=DIM, preprocess="clip-224-v1")

#: folders chosen to catch prefix bugs: a sibling sharing a prefix (a/b vs a/bc), LIKE
#: metacharacters (% and _) with look-alike siblings, non-ASCII names and a deep folder.
FOLDERS = (
    "/photos/a/b",
    "/photos/a/bc",
    "/photos/a/b/deeper",
    "/photos/50%_sale",
    "/photos/50xx_sale",
    "/photos/50%Qsale",
    "/photos/été 2024",
    "/photos",
)
FORMATS = ("jpeg", "png", "webp", "gif")

ES_SKIP_REASON = "set LOOKALIKE_TEST_ES_URL to run the store contract against Elasticsearch"


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_records(
    n: int, *, seed: int = 0, start: int = 0, root: str = "/photos", dim: int = DIM
) -> list[Record]:
    """``n`` records with varied folders, formats, sizes and times, and unit vectors."""
    rng = np.random.default_rng(seed + 1)
    vectors = unit_vectors(n, dim, seed)
    out = []
    for i in range(n):
        num = start + i
        folder = FOLDERS[int(rng.integers(len(FOLDERS)))] if root == "/photos" else root
        relfolder = folder[len(root) :].strip("/")
        name = f"img_{num:05d}.{FORMATS[num % 4]}"
        relpath = f"{relfolder}/{name}" if relfolder else name
        doc_id = f"{root.strip('/').replace('/', ':')}:{relpath}"
        out.append(
            Record(
                id=doc_id,
                path=f"{folder}/{name}",
                root=root,
                relpath=relpath,
                format=FORMATS[num % 4],
                size=int(rng.integers(1_000, 10_000_000)),
                mtime=float(1_600_000_000 + int(rng.integers(0, 100_000_000))),
                sha256=hashlib.sha256(doc_id.encode()).hexdigest(),
                width=int(rng.integers(16, 4000)),
                height=int(rng.integers(16, 4000)),
                vector=vectors[i],
            )
        )
    return out


@dataclass
class StoreFactory:
    """Opens (or reopens) a store of a named collection on one backend; cleans up after."""

    backend: str
    exact: bool  # whether knn is exact (else: approximate recall, exact scores)
    opener: Callable[[str], Store]
    opened: list[Store] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def __call__(self, name: str = "contract") -> Store:
        store = self.opener(name)
        self.opened.append(store)
        self.names.add(name)
        return store

    def write(self, store: Store, records: list[Record]) -> None:
        store.upsert(records)
        store.flush()


def _local_opener(root: Path, hnsw: bool) -> Callable[[str], Store]:
    # A small selective_limit so that the filter cases take both paths: exact scoring of
    # the few matching rows, and index search with over-fetch for broad filters.
    def open_local(name: str) -> Store:
        if hnsw:  # every change merged into the HNSW at once: the ANN path, always
            params = IndexParams(merge_min=0, merge_fraction=0.0)
            return LocalStore(
                root / name, name, exact_threshold=0, selective_limit=40, index_params=params
            )
        return LocalStore(root / name, name, selective_limit=40)

    return open_local


def _elastic_opener(url: str, home: Path) -> Callable[[str], Store]:
    prefix = f"lookalike-test-{uuid.uuid4().hex[:10]}"

    def open_elastic(name: str) -> Store:
        from lookalike.store.elastic.store import ElasticStore

        settings = Settings(
            store=url,
            collection=f"{prefix}-{name}",
            home=home,
            es_index_options=ES_INDEX_OPTIONS,
            es_rescore=ES_RESCORE,
        )
        store: Store = ElasticStore.from_settings(settings)
        return store

    return open_elastic


@pytest.fixture(params=["local", "local-hnsw", "elastic"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    backend: str = request.param
    if backend == "elastic":
        url = os.environ.get("LOOKALIKE_TEST_ES_URL", "")
        if not url:
            pytest.skip(ES_SKIP_REASON)
        factory = StoreFactory(backend, exact=False, opener=_elastic_opener(url, tmp_path))
    else:
        hnsw = backend == "local-hnsw"
        opener = _local_opener(tmp_path / "collections", hnsw)
        factory = StoreFactory(backend, exact=not hnsw, opener=opener)
    yield factory
    for store in factory.opened:
        store.close()
    if backend == "elastic":
        for name in factory.names:
            factory(name).drop()


def brute_force(
    records: list[Record], q: np.ndarray, keep: Callable[[Record], bool] | None = None
) -> list[tuple[str, float]]:
    """(id, cosine) of every record that ``keep`` accepts, best first, in float64."""
    qd = q.astype(np.float64)
    qd /= np.linalg.norm(qd)
    scored = [
        (r.id, float(np.asarray(r.vector, dtype=np.float64) @ qd))
        for r in records
        if keep is None or keep(r)
    ]
    return sorted(scored, key=lambda t: -t[1])


def assert_ranking(
    hits: list[Any],
    ranking: list[tuple[str, float]],
    k: int,
    *,
    exact: bool,
    min_recall: float = 0.9,
) -> None:
    """``hits`` against the true ``ranking`` (every eligible document, best first).

    Exact backends: the top ``k`` ids in the same order. Approximate ones: ``k`` hits
    (or all there are) with enough of the true top ``k`` among them. Both: no
    duplicates, scores descending, each the document's true cosine (within 1e-4).
    """
    truth = dict(ranking)
    got = [h.id for h in hits]
    assert len(got) == len(set(got)), "duplicate hits"
    for h in hits:
        assert h.id in truth, f"{h.id} should not be a hit"
        assert abs(h.score - truth[h.id]) < 1e-4, (h.id, h.score, truth[h.id])
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    want = [i for i, _ in ranking[:k]]
    if exact:
        assert got == want
    else:
        assert len(got) == len(want)
        recall = len(set(got) & set(want)) / len(want) if want else 1.0
        assert recall >= min_recall, recall


# The helpers above, as fixtures (test modules cannot import a conftest by name).


@pytest.fixture
def records_factory() -> Callable[..., list[Record]]:
    return make_records


@pytest.fixture
def model_info() -> ModelInfo:
    return MODEL


@pytest.fixture
def brute() -> Callable[..., list[tuple[str, float]]]:
    return brute_force


@pytest.fixture
def check_ranking() -> Callable[..., None]:
    return assert_ranking
