"""Fixtures for the web tests: a real collection (SQLite store, tiny random models) indexed
from generated images, and the app called in-process through Starlette's TestClient
(which runs the app's lifespan, unlike a bare httpx ASGITransport)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from lookalike.collection import Collection
from lookalike.models.base import Embedder
from lookalike.web import create_app
from web.helpers import make_settings, write_images


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webimages")
    write_images(root, 14)
    return root


@pytest.fixture(scope="module")
def shared_collection(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip_dir: Path,
    tiny_multilingual_dir: Path,
    tiny_embedder: Embedder,
    shared_root: Path,
) -> Iterator[Collection]:
    """One indexed collection per test module, for tests that only read."""
    settings = make_settings(tmp_path_factory.mktemp("home"), tiny_clip_dir, tiny_multilingual_dir)
    collection = Collection(settings, embedder=tiny_embedder)
    collection.indexer.index([shared_root])
    yield collection
    collection.close()


@pytest.fixture(scope="module")
def client(shared_collection: Collection) -> Iterator[TestClient]:
    app = create_app(shared_collection.settings, collection=shared_collection)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def own_collection(
    tmp_path: Path, tiny_clip_dir: Path, tiny_multilingual_dir: Path, tiny_embedder: Embedder
) -> Iterator[Collection]:
    """A fresh collection (with 6 images under tmp_path/images) for tests that change files."""
    root = tmp_path / "images"
    write_images(root, 6)
    settings = make_settings(tmp_path / "home", tiny_clip_dir, tiny_multilingual_dir)
    collection = Collection(settings, embedder=tiny_embedder)
    collection.indexer.index([root])
    yield collection
    collection.close()
