"""Composed queries and exports through the real CLI (in-process ``main``; one real
subprocess), over the families collection whose answers are known (support/families.py)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.cli import main
from lookalike.config import Settings
from lookalike.export import CSV_COLUMNS
from support.families import write_families


@pytest.fixture
def fams(
    tiny_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> list[dict[str, Path]]:
    monkeypatch.setenv("LOOKALIKE_HOME", str(tiny_settings.home))
    monkeypatch.setenv("LOOKALIKE_MODEL", tiny_settings.image_model)
    monkeypatch.setenv("LOOKALIKE_TEXT_MODEL", tiny_settings.text_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    paths = write_families(tmp_path / "pics", 4)
    assert run(capsys, "index", "--quiet", "--json", str(tmp_path / "pics"))[0] == 0
    return paths


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def search_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out, err = run(capsys, "search", *args, "--json")
    assert code == 0, err
    body: dict[str, object] = json.loads(out)
    return body


def test_like_an_image_file_and_an_id(
    fams: list[dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    a = fams[0]
    body = search_json(capsys, "--like", str(a["orig"]), "-k", "2")
    results = body["results"]
    assert isinstance(results, list)
    assert results[0]["path"] == a["copy"].as_posix()  # the exact copy, the file itself excluded
    assert a["orig"].as_posix() not in {r["path"] for r in results}
    assert body["query"] == {"type": "composed", "images": [a["orig"].as_posix()], "filters": {}}

    copy_id = results[0]["id"]
    body = search_json(
        capsys, "red", "--like", f"2:{copy_id}", "--not", "night", "--unlike", str(fams[1]["orig"])
    )
    assert body["query"] == {
        "type": "composed",
        "texts": ["red"],
        "ids": [{"value": copy_id, "weight": 2.0}],
        "negative_texts": ["night"],
        "negative_images": [fams[1]["orig"].as_posix()],
        "negative_weight": 0.5,
        "filters": {},
    }
    paths = [r["path"] for r in body["results"]]  # type: ignore[union-attr]
    assert fams[1]["orig"].as_posix() not in paths and copy_id not in [
        r["id"] for r in body["results"]
    ]  # type: ignore[union-attr]


def test_unlike_moves_a_family_down(
    fams: list[dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    a = fams[0]
    before = [
        r["path"] for r in search_json(capsys, "--like", str(a["orig"]), "-k", "20")["results"]
    ]  # type: ignore[union-attr]
    other = min(fams[1:], key=lambda f: before.index(f["copy"].as_posix()))
    after = [
        r["path"]
        for r in search_json(
            capsys, "--like", str(a["orig"]), "--unlike", str(other["orig"]), "-k", "20"
        )["results"]  # type: ignore[union-attr]
    ]
    assert after.index(other["copy"].as_posix()) > before.index(other["copy"].as_posix())
    assert after[0] == a["copy"].as_posix()


def test_csv_export(fams: list[dict[str, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "similar", str(fams[0]["orig"]), "--csv", "-k", "5", "--offset", "1"
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["rank"]) for r in rows] == [2, 3, 4, 5, 6]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(Path(r["path"]).is_file() and r["format"] == "png" for r in rows)
    code, json_out, _ = run(
        capsys, "similar", str(fams[0]["orig"]), "--json", "-k", "5", "--offset", "1"
    )
    assert [r["id"] for r in json.loads(json_out)["results"]] == [r["id"] for r in rows]


@pytest.mark.slow
def test_csv_from_a_real_subprocess(fams: list[dict[str, Path]]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lookalike",
            "search",
            "red",
            "--like",
            str(fams[2]["edit"]),
            "--csv",
            "-k",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and len(lines) == 4
