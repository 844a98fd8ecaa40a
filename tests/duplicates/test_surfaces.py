"""``lookalike duplicates`` (in-process CLI), ``GET /api/v1/duplicates`` and the
``/duplicates`` page (the real app through Starlette's TestClient), over planted real
files indexed with the tiny random model. Moving never deletes: files end up under the
named folder, with a dry run that touches nothing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from duplicates.planted import plant
from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.web import create_app
from test_cli import run
from web.helpers import assert_error


@pytest.fixture
def env(tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("LOOKALIKE_HOME", str(tiny_settings.home))
    monkeypatch.setenv("LOOKALIKE_MODEL", tiny_settings.image_model)
    monkeypatch.setenv("LOOKALIKE_TEXT_MODEL", tiny_settings.text_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tiny_settings


@pytest.fixture
def indexed(env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    groups = plant(tmp_path / "photos")
    code, _, err = run(capsys, "index", "--quiet", "--json", str(tmp_path / "photos"))
    assert code == 0, err
    return groups


def test_cli_json_csv_and_kinds(indexed: dict, capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ("exact", "near", "similar"):
        code, out, err = run(capsys, "duplicates", "--kind", kind, "--json")
        assert code == 0, err
        body = json.loads(out)
        assert body["kind"] == kind and body["total"] == 1
        (group,) = body["groups"]
        assert {m["path"] for m in group["members"]} == indexed[kind]
        assert group["members"][0]["best"] and group["best"] == group["members"][0]["id"]

    code, out, _ = run(capsys, "duplicates", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["path"] for r in rows} == indexed["near"]
    assert [r["best"] for r in rows].count("1") == 1 and {r["group"] for r in rows} == {"1"}

    code, out, err = run(capsys, "duplicates")
    assert code == 0 and "group 1: 4 near" in out and "best" in out

    code, out, _ = run(capsys, "duplicates", "--kind", "near", "--threshold", "1.0", "--json")
    assert json.loads(out)["total"] == 0  # edits are never exactly alike


def test_cli_folder_and_errors(
    indexed: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "duplicates",
        "--kind",
        "exact",
        "--folder",
        str(tmp_path / "photos/backup"),
        "--json",
    )
    assert code == 0 and json.loads(out)["documents"] == 1 and json.loads(out)["total"] == 0
    code, _, err = run(capsys, "duplicates", "--threshold", "3")
    assert code == 2 and "threshold must be a cosine from -1 to 1" in err
    code, _, err = run(capsys, "duplicates", "--dry-run")
    assert code == 2 and "--dry-run goes with --move-to" in err


def test_move_to_dry_run_then_move(
    indexed: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "set-aside"
    before = sorted(p for p in (tmp_path / "photos").rglob("*") if p.is_file())
    code, out, _ = run(capsys, "duplicates", "--move-to", str(dest), "--dry-run", "--json")
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["count"] == 3  # the near group's three other copies
    assert all(m["status"] == "planned" for m in plan["moves"])
    assert sorted(p for p in (tmp_path / "photos").rglob("*") if p.is_file()) == before
    assert not dest.exists()

    # a target that exists already is never overwritten
    blocked = Path(plan["moves"][0]["target"])
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"keep me")
    code, out, _ = run(capsys, "duplicates", "--move-to", str(dest), "--yes", "--json")
    moves = json.loads(out)["plan"]["moves"]
    assert [m["status"] for m in moves].count("moved") == 2
    assert moves[0]["status"].startswith("skipped: the target exists")
    assert blocked.read_bytes() == b"keep me"
    for m in moves[1:]:
        assert Path(m["target"]).is_file() and not Path(m["source"]).exists()
    best = next(p for p in indexed["near"] if p.endswith("trip/b.jpg"))
    assert Path(best).is_file()
    after = {p for p in dest.rglob("*") if p.is_file()} | set(
        p for p in (tmp_path / "photos").rglob("*") if p.is_file()
    )
    assert len(after) == len(before) + 1  # every file is still somewhere (+ "keep me")


def test_move_into_the_collection_is_refused(
    indexed: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "duplicates", "--move-to", str(tmp_path / "photos"), "--dry-run")
    assert code == 2 and "choose a destination outside the collection" in err


@pytest.fixture
def served(tmp_path: Path, tiny_settings: Settings, tiny_embedder) -> tuple[TestClient, dict]:
    groups = plant(tmp_path / "photos")
    col = Collection(tiny_settings, embedder=tiny_embedder)
    col.indexer.index([tmp_path / "photos"])
    with TestClient(create_app(tiny_settings, collection=col)) as c:
        yield c, groups
    col.close()


def test_api_pages_through_groups(served: tuple[TestClient, dict], tmp_path: Path) -> None:
    client, groups = served
    body = client.get("/api/v1/duplicates", params={"kind": "exact"}).json()
    assert body["total"] == 1 and body["next_offset"] is None
    members = body["groups"][0]["members"]
    assert {m["path"] for m in members} == groups["exact"]
    assert members[0]["best"] and members[0]["urls"]["thumbnail"].startswith("/api/v1/images/")
    assert {"size", "width", "height", "modified", "score"} <= set(members[0])

    # two kinds' worth of groups at a low threshold, one per page
    first = client.get(
        "/api/v1/duplicates", params={"kind": "near", "threshold": "0.5", "limit": 1}
    )
    page = first.json()
    assert first.status_code == 200 and len(page["groups"]) == 1
    if page["total"] > 1:
        assert page["next_offset"] == 1
        again = client.get(
            "/api/v1/duplicates",
            params={"kind": "near", "threshold": "0.5", "limit": 1, "offset": 1},
        ).json()
        assert again["groups"] != page["groups"]

    folder = (tmp_path / "photos" / "edits").as_posix()
    body = client.get("/api/v1/duplicates", params={"folder": folder}).json()
    assert body["documents"] == 3 and body["total"] == 1


def test_api_errors_are_4xx(served: tuple[TestClient, dict]) -> None:
    client, _ = served
    assert_error(client.get("/api/v1/duplicates", params={"kind": "twins"}), 400, "kind")
    assert_error(client.get("/api/v1/duplicates", params={"threshold": "high"}), 400, "threshold")
    assert_error(client.get("/api/v1/duplicates", params={"limit": "0"}), 400, "limit")
    assert_error(client.get("/api/v1/duplicates", params={"folder": "rel/x"}), 400, "folder")
    assert_error(client.get("/api/v1/duplicates", params={"colour": "red"}), 400, "colour")


def test_page_shows_groups_side_by_side_with_the_best_copy(
    served: tuple[TestClient, dict],
) -> None:
    client, _ = served
    page = client.get("/duplicates", params={"kind": "near"})
    assert page.status_code == 200
    html = page.text
    assert html.count('class="dup-group"') == 1
    assert html.count('class="card best"') == 1 and "best copy" in html
    assert "400×300" in html and "200×150" in html and "bytes" in html
    assert "b-q40.jpg" in html and "Modified" in html
    bad = client.get("/duplicates", params={"kind": "twins"})
    assert bad.status_code == 400 and "kind must be one of" in bad.text
