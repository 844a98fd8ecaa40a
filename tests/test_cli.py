"""The command line, run in-process through ``main`` (and once as a real subprocess),
over real files with tiny random models (no pretrained weights can be had here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.cli import cli, main, parse_date, parse_size
from lookalike.config import Settings
from lookalike.errors import QueryError
from lookalike.models import vision_int8
from lookalike.models.cpu import cpu_features, prefers_int8
from test_indexer import write_images

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def env(tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("LOOKALIKE_HOME", str(tiny_settings.home))
    monkeypatch.setenv("LOOKALIKE_MODEL", tiny_settings.image_model)
    monkeypatch.setenv("LOOKALIKE_TEXT_MODEL", tiny_settings.text_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    return tiny_settings


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def indexed(env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[Path]:
    files = write_images(tmp_path / "pics", 9)
    code, out, _ = run(capsys, "index", "--quiet", "--json", str(tmp_path / "pics"))
    assert code == 0
    assert json.loads(out)["indexed"] == 9
    return files


def test_search_similar_stats_json(indexed: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "search", "a green recycling symbol", "-k", "5", "--json")
    assert code == 0
    body = json.loads(out)
    assert set(body) >= {"collection", "query", "took_ms", "results", "count", "next_offset"}
    assert body["query"] == {"type": "text", "q": "a green recycling symbol", "filters": {}}
    hits = body["results"]
    assert len(hits) == 5 and body["count"] == 5 and body["next_offset"] == 5
    assert {"id", "path", "score", "metadata"} <= set(hits[0])
    assert hits == sorted(hits, key=lambda h: -h["score"])

    query_id = hits[0]["id"]
    code, out, _ = run(capsys, "similar", query_id, "-k", "20", "--json")
    similar = json.loads(out)["results"]
    assert code == 0 and len(similar) == 8
    assert query_id not in {h["id"] for h in similar}

    # an indexed file as the query: itself is not a result
    code, out, _ = run(capsys, "similar", str(indexed[0]), "--json")
    assert indexed[0].as_posix() not in {h["path"] for h in json.loads(out)["results"]}

    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert stats["documents"] == 9 and stats["dimensions"] > 0
    assert stats["index_bytes"] > 0 and stats["bytes_per_dimension"] > 0
    assert set(stats["projections"]) == {"10000", "1000000", "10000000"}


def test_filters_on_the_command_line(
    indexed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = indexed[0].parent
    code, out, _ = run(capsys, "search", "x", "-k", "50", "--folder", str(folder), "--json")
    hits = json.loads(out)["results"]
    assert code == 0 and hits
    assert all(h["path"].startswith(folder.as_posix() + "/") for h in hits)
    code, out, _ = run(capsys, "search", "x", "--format", "JPG", "--json")
    assert json.loads(out)["results"] == []  # all the pictures are PNG
    code, out, _ = run(capsys, "search", "x", "--format", "png", "--min-size", "1KB", "--json")
    assert len(json.loads(out)["results"]) == 9
    code, out, _ = run(capsys, "search", "x", "-k", "50", "--format", "jpg,png", "--json")
    body = json.loads(out)
    assert len(body["results"]) == 9 and body["query"]["filters"]["formats"] == ["jpeg", "png"]


def test_human_output(indexed: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "search", "cat", "-k", "3")
    assert code == 0
    assert len(out.strip().splitlines()) == 3
    code, out, _ = run(capsys, "stats")
    assert "bytes per dimension" in out and "documents" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("search", "   "), 2, "the search text is empty"),
        (("search", "x", "-k", "0"), 2, "k must be"),
        (("search", "x", "--min-size", "lots"), 2, "cannot read size"),
        (("search", "x", "--after", "yesterday"), 2, "cannot read date"),
        (("similar", "0123456789abcdef0000"), 3, "no indexed image with id"),
        (("similar", "/typo.jpg"), 3, "no such file: /typo.jpg"),
        (("similar", "holiday/typo.png"), 3, "no such file"),
        (
            ("search", "x", "--format", "jpgg"),
            2,
            "unknown image format 'jpgg'; use names such as jpeg",
        ),
        (("search", "x", "--format", "png,jpgg"), 2, "unknown image format 'jpgg'"),
        (("search", "x", "--like", "~/no/such.jpg"), 3, "no such file: ~/no/such.jpg"),
        (("search", "x", "--not", "101:night"), 2, "a weight must be above 0 and at most 100"),
        (("search", "--not", "night"), 2, "give a text, an image or an indexed id"),
        (("search", "x", "--json", "--csv"), 2, "choose one of --json and --csv"),
        (("index", "/no/such/folder"), 3, "does not exist"),
        (("search", "x", "--collection", "Bad Name!"), 2, "invalid collection name"),
    ],
)
def test_errors_are_one_line(
    indexed: list[Path],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, out, err = run(capsys, *args)
    assert got == code
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_models_reports_missing_weights(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path
) -> None:
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    assert all(s["available"] and s["loads"] for s in json.loads(out))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    code, out, _ = run(
        capsys, "models", "--no-load", "--model", "sentence-transformers/clip-ViT-B-32"
    )
    assert code == 4
    assert "NOT AVAILABLE" in out


def test_index_without_weights_fails_before_work(
    env: Settings, capsys, monkeypatch, tmp_path: Path
) -> None:
    write_images(tmp_path / "pics", 2)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    code, _, err = run(
        capsys, "index", "--model", "sentence-transformers/clip-ViT-B-32", str(tmp_path / "pics")
    )
    assert code == 4
    assert "clip-ViT-B-32" in err and "LOOKALIKE_MODEL" in err


@pytest.mark.slow
def test_real_subprocess_round_trip(indexed: list[Path], env: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lookalike", "search", "recycling", "-k", "2", "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["results"]) == 2


def test_parsers() -> None:
    assert parse_size("200KB", "x") == 200_000
    assert parse_size("5MiB", "x") == 5 * 1024 * 1024
    assert parse_size("123", "x") == 123
    assert parse_date("2024-01-01", "x", end_of_day=False) == 1704067200.0
    assert parse_date("2024-01-01", "x", end_of_day=True) > 1704067200.0 + 86000
    with pytest.raises(QueryError):
        parse_size("1 parsec", "x")


def test_every_command_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    for name in cli.commands:
        assert re.search(rf"lookalike {name}\b", text), f"`lookalike {name}` is not in README.md"


def test_index_prepares_fast_queries_once(
    env: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first ``index`` says it loads the model, then exports the text and image towers
    for ONNX Runtime (saying so), so that the first query finds them ready; later runs and
    searches do not export again."""
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    write_images(tmp_path / "p", 3)
    code, out, err = run(capsys, "index", str(tmp_path / "p"))
    assert code == 0 and "loading the image model" in err
    assert err.count("image model loaded in") == 1  # said once, though loaded twice over
    assert "preparing fast queries: exporting the text model and image model" in err
    assert "images/s embedding" in out
    exports = sorted((home / "onnx").glob("*/[it]*.onnx"))  # not the query-* copies
    int8 = [p for p in exports if vision_int8.KIND in p.parent.name]  # the indexing tower's
    exports = [p for p in exports if p not in int8]
    assert [p.name.split("-")[0] for p in exports] == ["image", "text"]
    assert bool(int8) == prefers_int8("auto", cpu_features())[0]  # made only where it pays
    exports += int8
    stamps = [p.stat().st_mtime_ns for p in exports]
    code, _, err = run(capsys, "index", str(tmp_path / "p"))
    assert code == 0 and "preparing" not in err
    assert "loading the image model" not in err  # nothing to embed: no model loaded
    code, out, err = run(capsys, "search", "cat", "-k", "2")
    assert code == 0 and "preparing" not in err and len(out.strip().splitlines()) == 2
    assert [p.stat().st_mtime_ns for p in exports] == stamps
