"""Duplicate groups over real files indexed with the tiny random model (no pretrained
weights exist here), a real SQLite store, and the default (documented) thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from duplicates.planted import plant
from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.duplicates import find_duplicates
from lookalike.duplicates.grouping import ann_pairs, components, exact_pairs
from lookalike.duplicates.pixels import taken_at
from lookalike.errors import QueryError


@pytest.fixture
def planted(tmp_path: Path, tiny_settings: Settings, tiny_embedder) -> tuple[Collection, dict]:
    root = tmp_path / "photos"
    groups = plant(root)
    col = Collection(tiny_settings, embedder=tiny_embedder)
    report = col.indexer.index([root])
    assert report.indexed + report.reused == 16 and not report.skipped
    yield col, groups
    col.close()


def paths_of(report) -> list[set[str]]:
    return [{m.path for m in g.members} for g in report.groups]


@pytest.mark.parametrize("kind", ["exact", "near", "similar"])
def test_planted_groups_found_with_default_thresholds(planted, kind: str) -> None:
    col, groups = planted
    report = find_duplicates(col.store, kind=kind)
    assert paths_of(report) == [groups[kind]]
    assert report.documents == 16


def test_best_copy_is_largest_then_biggest_file(planted) -> None:
    col, groups = planted
    (group,) = find_duplicates(col.store, kind="near").groups
    best = group.best
    assert best.best and not any(m.best for m in group.others)
    assert best.width * best.height == max(m.width * m.height for m in group.members)
    same_pixels = [m for m in group.members if m.width * m.height == best.width * best.height]
    assert best.size == max(m.size for m in same_pixels)
    assert best.path.endswith("trip/b.jpg")
    assert all(m.score <= 1.0 for m in group.members)


def test_similar_shots_use_the_exif_capture_time(planted, tmp_path: Path) -> None:
    col, _ = planted
    shots = sorted((tmp_path / "photos" / "burst").glob("c*.jpg"))
    assert [taken_at(str(p)) for p in shots] == [1714557600.0, 1714557602.0, 1714557604.0]
    # with a window shorter than the 2 s between shots, there is no burst
    assert find_duplicates(col.store, kind="similar", burst_seconds=1).groups == []


def test_folder_limits_the_search(planted, tmp_path: Path) -> None:
    col, groups = planted
    report = find_duplicates(col.store, kind="near", folder=(tmp_path / "photos/edits").as_posix())
    assert report.documents == 3
    assert paths_of(report) == [{p for p in groups["near"] if "/edits/" in p}]
    assert (
        find_duplicates(
            col.store, kind="exact", folder=(tmp_path / "photos/trip").as_posix()
        ).groups
        == []
    )


@pytest.mark.parametrize("kind", ["exact", "near", "similar"])
def test_ann_grouping_equals_exact_grouping_on_the_collection(planted, kind: str) -> None:
    col, _ = planted
    ann = find_duplicates(col.store, kind=kind, method="ann")
    exact = find_duplicates(col.store, kind=kind, method="exact")
    assert paths_of(ann) == paths_of(exact) != []


def test_ann_pairs_group_like_all_pairs_on_planted_vectors() -> None:
    rng = np.random.default_rng(7)
    n, dim = 3000, 64
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    planted_groups = []
    order, used = rng.permutation(n), 0
    for g in range(60):  # groups of 2..40 members (more than k), noisy copies of one centre
        size = 2 + (g * 7) % 39
        members = order[used : used + size].tolist()
        used += size
        vectors[members] = vectors[members[0]] + rng.normal(scale=0.08, size=(size, dim))
        planted_groups.append(members)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = components(n, exact_pairs(vectors, 0.9))
    ann = components(n, ann_pairs(vectors, 0.9, k=16))
    assert ann == exact
    assert sorted(map(sorted, planted_groups)) == sorted(ann)


def test_bad_parameters_are_query_errors(planted) -> None:
    col, _ = planted
    with pytest.raises(QueryError, match="kind must be one of") as e:
        find_duplicates(col.store, kind="twins")
    assert e.value.field == "kind"
    with pytest.raises(QueryError, match="threshold"):
        find_duplicates(col.store, kind="near", threshold=1.5)
    with pytest.raises(QueryError, match="method"):
        find_duplicates(col.store, kind="near", method="fast")
