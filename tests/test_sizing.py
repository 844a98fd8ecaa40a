from pathlib import Path

import pytest

from lookalike.records import ModelInfo, StoreStats
from lookalike.sizing import human_bytes, sizing_report


def test_measured_projection() -> None:
    stats = StoreStats(
        "local",
        "c",
        documents=1000,
        dimensions=512,
        image_bytes=10**9,
        index_bytes=2_300_000,
        model=ModelInfo("m", 512, "p"),
    )
    r = sizing_report(stats)
    assert r.bytes_per_document == 2300
    assert r.bytes_per_dimension == 2300 / 512
    assert r.projections[1_000_000] == 2_300_000_000
    assert r.projection_basis.startswith("measured")
    assert r.to_dict()["projections"]["10000000"] == 23_000_000_000


def test_estimate_when_too_small_to_measure() -> None:
    r = sizing_report(
        StoreStats("local", "c", documents=0, dimensions=0, image_bytes=0, index_bytes=4096)
    )
    assert r.bytes_per_document is None and r.bytes_per_dimension is None
    assert r.projection_basis.startswith("estimated")
    assert r.projections[10_000] == (4 * 512 + 400) * 10_000


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"


def test_printed_report_carries_the_backends_notes(capsys: pytest.CaptureFixture[str]) -> None:
    from lookalike.cli.output import print_sizing

    details = {"notes": ["index_options bbq_hnsw is a technical preview before 9.0"]}
    stats = StoreStats("elasticsearch", "c", 10, 512, 1, 40_000, details=details)
    print_sizing(sizing_report(stats))
    out = capsys.readouterr().out
    assert "note: index_options bbq_hnsw is a technical preview before 9.0" in out
    print_sizing(sizing_report(StoreStats("local", "c", 10, 512, 1, 40_000)))
    assert "note:" not in capsys.readouterr().out  # a backend without notes prints none


def test_projections_follow_the_structure_a_store_will_have_at_scale(tmp_path: Path) -> None:
    """A small embedded collection searches an exact matrix, but at 10M it will hold an
    HNSW graph: the sizing report's projections use the store's own per-vector figure at
    scale (``details.search``), so its two projections (`stats` prints both) agree."""
    import numpy as np

    from lookalike.records import Record
    from lookalike.store import LocalStore

    store = LocalStore(tmp_path / "c", "c")
    store.bind_model(ModelInfo("m", 512, "p"))
    rng = np.random.default_rng(0)
    store.upsert(
        [
            Record(
                id=f"i{i}", path=f"/p/i{i}.png", root="/p", relpath=f"i{i}.png", format="png",
                size=10, mtime=1.0, sha256=f"{i:064x}", width=8, height=8,
                vector=rng.standard_normal(512).astype(np.float32),
            )
            for i in range(120)
        ]
    )  # fmt: skip
    report = sizing_report(store.stats())
    store.close()
    search = report.details["search"]
    assert report.projections[10_000_000] == search["scale"]["10000000"]["disk_bytes"]
    assert "bytes per document at scale" in report.projection_basis
