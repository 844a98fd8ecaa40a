"""Folder scanning on real files, folders and symlinks in tmp_path."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

import lookalike.scan as scan_module
from lookalike.errors import NotFoundError
from lookalike.images import clip_ready
from lookalike.scan import ScannedFile, ScanProblem, scan

ROOT = Path(__file__).resolve().parents[1]


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _collect(root: Path | str) -> tuple[list[ScannedFile], list[ScanProblem]]:
    problems: list[ScanProblem] = []
    files = list(scan(root, on_problem=problems.append))
    return files, problems


def test_extensions_any_case_and_junk_ignored(tmp_path: Path) -> None:
    for name in [
        "a.JPG",
        "b.jpeg",
        "c.Png",
        "d.webp",
        "e.GIF",
        "f.bmp",
        "g.TIF",
        "h.tiff",
        "i.jpe",
    ]:
        _touch(tmp_path / name)
    for name in [
        ".DS_Store",
        "._a.JPG",
        "Thumbs.db",
        "notes.txt",
        "jpg",
        "archive.jpg.zip",
        ".hidden.png",
    ]:
        _touch(tmp_path / name)
    _touch(tmp_path / "empty.png", b"")  # zero-length files are the decoder's business
    files, problems = _collect(tmp_path)
    names = [f.relpath for f in files]
    assert names == [
        "a.JPG",
        "b.jpeg",
        "c.Png",
        "d.webp",
        "e.GIF",
        "empty.png",
        "f.bmp",
        "g.TIF",
        "h.tiff",
        "i.jpe",
    ]
    assert problems == []


def test_hidden_and_junk_folders_skipped_and_order_is_deterministic(tmp_path: Path) -> None:
    for rel in [
        "z.jpg",
        "b/2.jpg",
        "b/1.jpg",
        "a/x/deep.png",
        "a.jpg",
        ".git/objects/p.png",
        ".thumbnails/t.jpg",
        "@eaDir/a.jpg/SYNOPHOTO_THUMB_M.jpg",
        "__MACOSX/._p.jpg",
    ]:
        _touch(tmp_path / rel)
    files, problems = _collect(tmp_path)
    # sorted by name within each folder, depth first ("a" sorts before "a.jpg")
    assert [f.relpath for f in files] == ["a/x/deep.png", "a.jpg", "b/1.jpg", "b/2.jpg", "z.jpg"]
    assert problems == []
    root = tmp_path.absolute().as_posix()
    for f in files:
        assert f.root == root
        assert f.path == f"{root}/{f.relpath}"
        assert f.size == 1 and f.mtime == pytest.approx(os.stat(f.path).st_mtime)
    assert [f.relpath for f in scan(tmp_path)] == [f.relpath for f in files]  # stable


def test_symlink_loop_terminates_with_each_file_once(image_zoo: dict[str, Path]) -> None:
    started = time.monotonic()
    files, problems = _collect(image_zoo["loop_dir"])
    assert time.monotonic() - started < 5
    assert sorted(f.relpath for f in files) == ["a.jpg", "sub/b.jpg"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert "already scanned" in reasons["back-up"] and "already scanned" in reasons["self"]
    assert "broken symbolic link" in reasons["dangling.jpg"]


def test_symlinks_are_followed_but_not_resolved(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _touch(outside / "elsewhere.jpg")
    _touch(outside / "linked-file-target.png")
    top = tmp_path / "top"
    top.mkdir()
    os.symlink(outside, top / "folder-link")
    os.symlink(outside / "linked-file-target.png", top / "file-link.png")
    files, problems = _collect(top)
    assert problems == []
    assert [f.relpath for f in files] == [
        "file-link.png",
        "folder-link/elsewhere.jpg",
        "folder-link/linked-file-target.png",
    ]
    assert files[1].path == (top / "folder-link" / "elsewhere.jpg").as_posix()
    # a root given as a symlink keeps its own spelling
    os.symlink(top, tmp_path / "top-link")
    assert {f.root for f in scan(tmp_path / "top-link")} == {(tmp_path / "top-link").as_posix()}


def test_single_file_root(tmp_path: Path) -> None:
    f = _touch(tmp_path / "pics" / "One.JPG", b"abc")
    (only,) = scan(f)
    assert (only.path, only.root, only.relpath, only.size) == (
        f.as_posix(),
        f.parent.as_posix(),
        "One.JPG",
        3,
    )
    (relative,) = scan(os.path.relpath(f))
    assert relative.path == f.as_posix()


def test_missing_root_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nope") as err:
        list(scan(tmp_path / "nope"))
    assert "does not exist" in str(err.value)
    os.symlink(tmp_path / "gone", tmp_path / "dangling-root")
    with pytest.raises(NotFoundError, match="broken symbolic link"):
        list(scan(tmp_path / "dangling-root"))


def test_unreadable_folder_is_reported_and_the_rest_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder with mode 000. Root reads such folders anyway, so when the tests run as
    root (as in this container) the kernel's refusal is simulated by making os.scandir
    raise the PermissionError it would raise for anyone else."""
    _touch(tmp_path / "locked" / "secret.jpg")
    _touch(tmp_path / "open" / "fine.jpg")
    locked = str(tmp_path / "locked")
    if os.geteuid() == 0:
        real_scandir = os.scandir

        def scandir(path: str) -> object:
            if os.fspath(path) == locked:
                raise PermissionError(13, "Permission denied", path)
            return real_scandir(path)

        monkeypatch.setattr(scan_module.os, "scandir", scandir)
    (tmp_path / "locked").chmod(0)
    try:
        files, problems = _collect(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [f.relpath for f in files] == ["open/fine.jpg"]
    assert [(Path(p.path).name, "permission" in p.reason.lower()) for p in problems] == [
        ("locked", True)
    ]


def test_files_vanishing_mid_scan_are_reported(tmp_path: Path) -> None:
    for i in range(6):
        _touch(tmp_path / "a" / f"{i}.jpg")
    _touch(tmp_path / "b" / "kept.jpg")
    problems: list[ScanProblem] = []
    seen = []
    for f in scan(tmp_path, on_problem=problems.append):
        seen.append(f.relpath)
        if f.relpath == "a/0.jpg":  # delete the rest of this folder and the next one
            for i in range(1, 6):
                (tmp_path / "a" / f"{i}.jpg").unlink()
            (tmp_path / "b" / "kept.jpg").unlink()
            (tmp_path / "b").rmdir()
    assert seen == ["a/0.jpg"]
    assert sorted(Path(p.path).name for p in problems) == [
        "1.jpg",
        "2.jpg",
        "3.jpg",
        "4.jpg",
        "5.jpg",
        "b",
    ]
    assert all("vanished" in p.reason for p in problems)


def test_undecodable_names_and_fifos_are_reported(tmp_path: Path) -> None:
    _touch(tmp_path / "ok.jpg")
    bad = os.fsencode(tmp_path) + b"/caf\xe9.jpg"  # Latin-1 bytes, not UTF-8
    with open(bad, "wb") as fh:
        fh.write(b"x")
    os.mkfifo(tmp_path / "pipe.jpg")
    files, problems = _collect(tmp_path)
    assert [f.relpath for f in files] == ["ok.jpg"]
    reasons = sorted(p.reason for p in problems)
    assert len(reasons) == 2
    assert "UTF-8" in reasons[1] and "not a regular file" in reasons[0]


def test_without_on_problem_nothing_raises(image_zoo: dict[str, Path]) -> None:
    assert len(list(scan(image_zoo["loop_dir"]))) == 2


def test_zoo_scan_ignores_junk(image_zoo: dict[str, Path]) -> None:
    files, _ = _collect(image_zoo["jpeg"].parent)
    names = {Path(f.path).name for f in files}
    assert {"UPPER.JPG", "long.jpeg", "Mixed.Png", "notes.jpg", "empty.jpg"} <= names
    assert not names & {".DS_Store", "._card.jpg", "Thumbs.db"}


def test_small_collection_fixture(small_collection: Path) -> None:
    files = list(scan(small_collection))
    assert len(files) == 12
    assert {f.relpath.split("/")[0] for f in files} == {"shapes", "more"}
    pixels = {clip_ready(f.path, max_pixels=64_000_000).image.tobytes() for f in files}
    assert len(pixels) == 12  # all distinct


def test_many_files_scan_quickly(tmp_path: Path) -> None:
    """A small-scale version of bench/scan.py: 600 files in 6 folders (the bound is loose
    because the machine is shared; bench/scan.py measures 100,000 files)."""
    for d in range(6):
        folder = tmp_path / f"d{d:02d}"
        folder.mkdir()
        for i in range(100):
            (folder / f"img{i:03d}.jpg").write_bytes(b"")
    started = time.perf_counter()
    count = sum(1 for _ in scan(tmp_path))
    elapsed = time.perf_counter() - started
    assert count == 600
    assert elapsed < 1.0, f"{count / elapsed:.0f} files/s"


def _load_make_samples():
    spec = importlib.util.spec_from_file_location(
        "make_samples", ROOT / "scripts" / "make_samples.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module
    spec.loader.exec_module(module)
    return module


def test_sample_collection_is_deterministic_scannable_and_decodable(tmp_path: Path) -> None:
    make_samples = _load_make_samples()
    made = make_samples.generate_samples(tmp_path / "one", count=48)
    again = make_samples.generate_samples(tmp_path / "two", count=16)  # the same first 16
    assert len(made) == 48 and len(again) == 16
    rel = [p.relative_to(tmp_path / "one").as_posix() for p in made]
    assert rel[:16] == [p.relative_to(tmp_path / "two").as_posix() for p in again]
    assert [p.read_bytes() for p in made[:16]] == [p.read_bytes() for p in again]
    assert {r.split("/")[0] for r in rel[:3]} == {"recycle", "estimated", "distractors"}
    assert {p.suffix for p in made} >= {".jpg", ".png", ".webp"}
    assert sorted(f.relpath for f in scan(tmp_path / "one")) == sorted(rel)
    for p in made[::4]:
        assert clip_ready(p, max_pixels=64_000_000).image.size == (224, 224)
