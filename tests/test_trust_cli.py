"""Issue 10 through the command line and the library: a typo never creates a collection,
one writer at a time, failed files are not retried while unchanged, and ``lookalike check
--repair`` heals a flipped vector by re-embedding just that image.

Real files, real SQLite, the real CLI (in-process through ``main``, and real
subprocesses where two processes must meet); tiny random models (no pretrained
weights can be had here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

import test_cli
from lookalike.collection import Collection, open_collection
from lookalike.config import Settings
from lookalike.errors import CollectionNotFound
from lookalike.indexer import document_id
from lookalike.store import open_store
from test_cli import run
from test_indexer import _cli_env, write_images

env = test_cli.env  # the CLI tests' fixtures: a tiny-model environment, 9 indexed images
indexed = test_cli.indexed

# -- defect 4: only index (and copy into) create a collection ----------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("search", "blue"),
        ("similar", "0123456789abcdef0123"),
        ("stats",),
        ("check",),
        ("check", "--repair"),
        ("drop", "--yes"),
        ("serve",),
    ],
)
def test_a_mistyped_collection_is_not_created(
    indexed: list[Path], capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *args, "-c", "typo-coll")
    assert code == 3, (out, err)
    assert "no collection named typo-coll (collections: default)" in err
    code, out, _ = run(capsys, "collections", "--json")
    assert json.loads(out) == ["default"]


def test_drop_of_a_missing_collection_without_yes_asks_nothing(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "drop", "-c", "nosuch")
    assert code == 3 and "no collection named nosuch (collections: none yet)" in err
    assert not (env.home / "collections" / "nosuch").exists()


def test_the_library_opens_only_existing_collections_unless_told_to_create(
    tiny_settings: Settings,
) -> None:
    with pytest.raises(CollectionNotFound, match=r"no collection named other"):
        open_collection(tiny_settings, collection="other")
    assert not (tiny_settings.home / "collections" / "other").exists()
    with open_collection(tiny_settings, collection="other", create=True) as col:
        assert col.store.count() == 0
    with open_collection(tiny_settings, collection="other") as col:
        assert col.name == "other"


def test_the_web_app_on_a_missing_collection_fails_to_start(tiny_settings: Settings) -> None:
    from lookalike.web import create_app

    app = create_app(tiny_settings.with_overrides(collection="nosuch"), preload=False)
    with pytest.raises(CollectionNotFound, match="no collection named nosuch"), TestClient(app):
        pass
    assert not (tiny_settings.home / "collections" / "nosuch").exists()


# -- defect 2: check --repair re-embeds a damaged vector from its file --------------------


def test_check_repair_heals_a_flipped_vector(
    indexed: list[Path], env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = indexed[4].as_posix()
    vid = document_id(victim)
    with open_store(env) as store:
        original = store.get([vid])[0].vector
    assert original is not None
    db = env.collection_dir / "store.db"
    data = db.read_bytes()
    at = data.find(np.asarray(original, dtype="<f4").tobytes())
    with open(db, "r+b") as fh:  # one bit flipped inside the vector, on disk
        fh.seek(at + 40)
        byte = fh.read(1)[0]
        fh.seek(at + 40)
        fh.write(bytes([byte ^ 0x10]))

    code, out, err = run(capsys, "similar", victim)
    assert code == 5 and "check --repair -c default" in err, (out, err)
    code, out, _ = run(capsys, "check", "--json")
    assert code == 5
    report = json.loads(out)
    assert [d["path"] for d in report["damaged"]] == [victim]

    code, out, err = run(capsys, "check", "--repair")
    assert code == 0, (out, err)
    assert "re-embedded 1 damaged image(s)" in out
    with open_store(env) as store:
        healed = store.get([vid])[0].vector
    # Re-embedded by the runtime this machine runs now: where the CPU prefers int8, the
    # first run embedded in bf16 and the repair in int8 (made after that first run), so
    # the vectors agree to the runtimes' fidelity bar, not to the last bit.
    assert healed is not None and float(np.dot(healed, original)) >= 0.999
    code, out, _ = run(capsys, "check")
    assert code == 0 and out.strip().endswith("ok")
    code, out, _ = run(capsys, "search", "anything", "-k", "20", "--json")
    assert code == 0 and len(json.loads(out)) == 9


# -- defect 5: one writer at a time, searchers never wait -------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lookalike.store import LocalStore
    store = LocalStore(Path(sys.argv[1]), "default", create=False)
    with store.writer():
        print("holding", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    store.close()
    """
)


@pytest.mark.slow
def test_a_second_writer_is_refused_or_waits_and_searches_go_on(
    indexed: list[Path], env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env = _cli_env(env)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(env.collection_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        more = tmp_path / "more"
        write_images(more, 2, seed=7)
        index = [sys.executable, "-m", "lookalike", "index", "--quiet", str(more)]
        second = subprocess.run(index, capture_output=True, text=True, env=cli_env, timeout=120)
        assert second.returncode == 5
        assert f"another index run (pid {holder.pid}) is working on collection" in second.stderr

        # a search meanwhile: no lock, no wait
        code, out, _ = run(capsys, "search", "x", "-k", "3", "--json")
        assert code == 0 and len(json.loads(out)["results"]) == 3

        waiting = subprocess.Popen(
            [*index, "--wait", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env,
        )  # fmt: skip
        assert waiting.stderr is not None
        line = waiting.stderr.readline()
        assert f"(pid {holder.pid})" in line and "waiting" in line
        holder.stdin.close()  # type: ignore[union-attr]
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert json.loads(out)["indexed"] == 2
    finally:
        holder.kill()
        holder.wait()


# -- defect 6: failed files are remembered while unchanged -------------------------------


def test_failed_files_are_skipped_while_unchanged(
    tiny_settings: Settings, tiny_embedder: object, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    write_images(pics, 4)
    broken = [pics / "broken1.png", pics / "broken2.jpg"]
    broken[0].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    broken[1].write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 300)
    with Collection(tiny_settings, embedder=tiny_embedder) as col:  # type: ignore[arg-type]
        first = col.indexer.index([pics])
        assert first.indexed == 4 and len(first.skipped) == 2

        again = col.indexer
        second = again.index([pics])
        assert (second.indexed, second.unchanged) == (0, 4)
        assert sorted(s.path for s in second.skipped) == sorted(p.as_posix() for p in broken)
        assert all(s.reason.startswith("failed before: ") for s in second.skipped)
        assert again.split is None  # nothing was decoded or embedded

        os.utime(broken[0], (1_000_000, 1_000_000))  # touched, same content: still skipped
        third = col.indexer.index([pics])
        assert [s.reason.startswith("failed before") for s in third.skipped] == [True, True]

        retry = col.indexer
        retried = retry.index([pics], retry_failed=True)
        assert retry.split is not None and len(retried.skipped) == 2
        assert not any(s.reason.startswith("failed before") for s in retried.skipped)

        write_images(tmp_path / "fixed", 1, seed=3)[0].replace(broken[0])  # now a real image
        fixed = col.indexer.index([pics])
        assert fixed.indexed == 1
        assert [s.path for s in fixed.skipped] == [broken[1].as_posix()]
        assert set(col.store.failed_files(pics.as_posix())) == {"broken2.jpg"}
        broken[1].unlink()
        col.indexer.index([pics])
        assert col.store.failed_files(pics.as_posix()) == {}
