"""The watcher over real folders, real inotify (watchdog) and a real SQLite collection with
the tiny random model: create, modify, move and delete are each applied once; a 2,000-file
burst is indexed exactly once; a folder that disappears keeps its images until it is back;
the inotify limit falls back to polling."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import pytest
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.indexer import document_id
from lookalike.watch import Watcher, watch_collection
from watch.helpers import Passes, write_png


@pytest.fixture
def col(tiny_settings: Settings, tiny_embedder) -> Collection:
    c = Collection(tiny_settings, embedder=tiny_embedder)
    yield c
    c.close()


def store_paths(col: Collection) -> set[str]:
    return {r.path for batch in col.store.iter_records(500) for r in batch}


def start(col: Collection, root: Path, passes: Passes, **options) -> Watcher:
    options = {"debounce_s": 0.3, "settle_s": 0.3, "tick_s": 0.1, **options}
    watcher = watch_collection(col, [root], on_pass=passes, **options)
    watcher.start()
    return watcher


def test_create_modify_move_delete_each_applied_once(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    first = write_png(root / "a.png", 1)
    passes = Passes()
    watcher = start(col, root, passes)
    try:
        passes.wait_until(lambda: len(passes.reports) >= 1, "the start pass")
        assert passes.reports[0].reason == "start"
        assert store_paths(col) == {first.as_posix()}

        # each step waits for the pass that applies it to finish (not just for its first
        # commit), so the next change never lands in the middle of a pass
        made = write_png(root / "new" / "b.png", 2)
        passes.wait_until(lambda: passes.total("indexed") == 2, "a created file")
        assert made.as_posix() in store_paths(col)

        before = col.store.get([document_id(made.as_posix())])[0].sha256
        write_png(made, 3)  # the same name, new content
        passes.wait_until(lambda: passes.total("indexed") == 3, "a modified file")
        assert col.store.get([document_id(made.as_posix())])[0].sha256 != before

        moved_dir = root / "renamed"
        os.rename(root / "new", moved_dir)  # a moved folder keeps its vectors by hash
        moved = (moved_dir / "b.png").as_posix()
        passes.wait_until(lambda: passes.total("reused") == 1, "a moved folder")
        assert store_paths(col) == {first.as_posix(), moved}

        os.remove(first)
        passes.wait_until(lambda: passes.total("removed") == 2, "a deleted file")
        assert store_paths(col) == {moved}
    finally:
        watcher.stop()
    assert passes.total("indexed") == 3  # a.png, b.png, b.png's new content: once each
    assert passes.total("removed") == 2  # the old path of b.png, then a.png
    assert all(p.error is None for p in passes.reports)


@pytest.mark.slow
def test_a_burst_of_2000_files_is_indexed_exactly_once(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "burst"
    root.mkdir()
    passes = Passes()
    watcher = start(col, root, passes)
    try:
        passes.wait_until(lambda: len(passes.reports) >= 1, "the start pass")
        expected = {write_png(root / f"d{i % 20}" / f"{i:04d}.png", 1000 + i).as_posix()
                    for i in range(2000)}  # fmt: skip
        passes.wait_until(lambda: col.store.count() == 2000, "2,000 files indexed", 600)
    finally:
        watcher.stop()
    assert store_paths(col) == expected
    assert passes.total("indexed") == 2000
    assert passes.total("reused") == passes.total("updated") == passes.total("removed") == 0


def test_a_folder_that_disappears_keeps_its_images_until_it_is_back(
    col: Collection, tmp_path: Path
) -> None:
    root = tmp_path / "disk"
    files = {write_png(root / f"{i}.png", 10 + i).as_posix() for i in range(3)}
    passes = Passes()
    watcher = start(col, root, passes)
    try:
        passes.wait_until(lambda: len(passes.reports) >= 1, "the start pass")
        assert store_paths(col) == files
        away = tmp_path / "unmounted"
        os.rename(root, away)  # the disk goes away...
        passes.wait_until(lambda: not watcher.status()["roots"][0]["present"], "the root gone")
        root.mkdir()  # ...and its empty mount point is back: still not a reason to remove
        seen = watcher.status()["ticks"]
        passes.wait_until(lambda: watcher.status()["ticks"] >= seen + 3, "a few more checks")
        assert watcher.status()["roots"][0]["present"] is False
        assert store_paths(col) == files
        root.rmdir()
        shutil.move(away, root)  # the disk is back, with one more file
        extra = write_png(root / "later.png", 99).as_posix()
        passes.wait_until(lambda: store_paths(col) == files | {extra}, "the root back")
    finally:
        watcher.stop()
    assert passes.total("removed") == 0
    assert any(p.reason == "back" for p in passes.reports)


class LimitedObserver(Observer):  # type: ignore[misc, valid-type]
    """The real inotify observer, except that adding a watch fails the way the kernel does
    when fs.inotify.max_user_watches is used up. Lowering the real limit would change this
    shared machine's sysctl for everyone, so the error is raised here instead."""

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_the_inotify_limit_says_what_to_raise_then_polls(
    col: Collection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "many"
    root.mkdir()
    passes = Passes()

    def observers(polling: bool):
        return PollingObserver(timeout=0.2) if polling else LimitedObserver()

    with caplog.at_level(logging.WARNING, logger="lookalike.watch"):
        watcher = start(col, root, passes, observer_factory=observers)
        try:
            passes.wait_until(lambda: len(passes.reports) >= 1, "the start pass")
            made = write_png(root / "x.png", 5).as_posix()
            passes.wait_until(lambda: made in store_paths(col), "a file seen by polling")
        finally:
            watcher.stop()
    assert watcher.polling and watcher.status()["mode"] == "polling"
    assert "sysctl fs.inotify.max_user_watches=" in caplog.text


@pytest.mark.slow
def test_serve_watch_makes_new_images_searchable(
    tmp_path: Path, tiny_settings: Settings, tiny_embedder
) -> None:
    from starlette.testclient import TestClient

    from lookalike.web import create_app

    root = tmp_path / "served"
    write_png(root / "first.png", 1)
    col = Collection(tiny_settings, embedder=tiny_embedder)
    app = create_app(tiny_settings, collection=col, watch=[str(root)])
    poller = Passes()  # nothing reports to it: it re-checks every half second
    try:
        with TestClient(app) as client:
            poller.wait_until(lambda: col.store.count() == 1, "the start pass")
            new = write_png(root / "second.png", 2).as_posix()

            def found() -> bool:
                body = client.get("/api/v1/search", params={"q": "noise", "k": 5}).json()
                return new in {r["path"] for r in body["results"]}

            poller.wait_until(found, "the new image in search results")
        assert app.state.watcher.status()["passes"] >= 2
    finally:
        col.close()


def test_watch_refuses_a_path_that_is_not_a_folder(
    tmp_path: Path, tiny_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_cli import run

    code, _, err = run(capsys, "watch", "--home", str(tiny_settings.home), str(tmp_path / "nope"))
    assert code == 3 and "is not a folder" in err
