"""The split of the cores between decode workers and inference threads, and the decode pool
it steers: real files, real worker processes (killed for real with SIGKILL), real torch."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import decode_pool
from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.core_split import CoreSplit, Split, plan, usable_cores
from lookalike.decode_pool import DecodePool

pytestmark = pytest.mark.slow  # decode worker processes, killed workers

MAX_PIXELS = 64_000_000


def write_pngs(folder: Path, count: int, side: int = 400) -> list[str]:
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


# -- the policy ----------------------------------------------------------------------------


def test_plan_gives_icons_to_inference_and_photos_to_decoding() -> None:
    # per-image costs measured on a 2-core laptop: decode CPU s, inference core-s (bf16)
    assert plan(2, 0.0015, 0.016) == Split(workers=1, threads=2)  # small icons
    assert plan(2, 0.0085, 0.016) == Split(workers=1, threads=1)  # 1080p JPEGs
    assert plan(2, 0.033, 0.016) == Split(workers=2, threads=1)  # 12 MP JPEGs
    assert plan(2, 0.033, 0.060) == Split(workers=1, threads=1)  # 12 MP, fp32 inference
    assert plan(1, 0.033, 0.016) == Split(workers=1, threads=1)
    assert plan(8, 0.033, 0.016) == Split(workers=6, threads=3)
    assert plan(8, 0.0015, 0.016) == Split(workers=1, threads=7)
    assert plan(2, 0.0, 0.0) == Split(workers=1, threads=1)


def simulate(
    speeds: dict[Split, float], decode_s: float, embed_core_s: float, batches: int, **kw: int
) -> tuple[CoreSplit, list[Split]]:
    """Feed a CoreSplit batches of 32 whose pipeline speed (images/s) depends on the split,
    on a fake clock; returns it and the split in force after each batch."""
    now = [0.0]
    split = CoreSplit(cores=2, clock=lambda: now[0], **kw)
    seen = []
    for _ in range(batches):
        current = split.split
        now[0] += 32 / speeds[current]
        split.observe(32, 32 * decode_s, 32 * embed_core_s / current.threads)
        seen.append(split.split)
    return split, seen


ALL = [Split(1, 1), Split(1, 2), Split(2, 1), Split(2, 2)]


def test_the_split_follows_the_first_batch_then_only_two_agreeing_batches() -> None:
    icons = {s: 60.0 * s.threads for s in ALL}  # inference-bound: threads pay
    split, seen = simulate(icons, 0.0015, 0.016, batches=6)
    assert seen == [Split(1, 2)] * 6  # the starting guess is left after the first batch
    assert split.history == [Split(1, 1), Split(1, 2)]
    assert split.decode_s == pytest.approx(0.0015) and split.embed_core_s == pytest.approx(0.016)
    # the first batch's rate is estimated from its costs (its wall time includes filling up)
    assert split.rates[Split(1, 1)][0] == pytest.approx(32 / (32 * 0.016))
    assert split.rates[Split(1, 2)][0] == pytest.approx(120.0)

    # Costs that change later (the folder turns from icons to photos) move the split only
    # when two batches in a row agree.
    now = [0.0]
    split = CoreSplit(cores=2, clock=lambda: now[0])
    seen = []
    for costs in [(0.0015, 0.016)] * 3 + [(0.2, 0.016)] * 4:
        now[0] += 1.0
        split.observe(32, 32 * costs[0], 32 * costs[1] / split.split.threads)
        seen.append(split.split)
    assert seen[:3] == [Split(1, 2)] * 3
    assert seen[3] == Split(1, 2)  # one vote for more decoders: not yet
    assert seen[-1] == Split(2, 1)

    photos = {s: 20.0 * s.workers for s in ALL}  # decode-bound: workers pay
    split, seen = simulate(photos, 0.033, 0.016, batches=6)
    assert seen[-1] == Split(2, 1) and split.history == [Split(1, 1), Split(2, 1)]


def test_a_split_measured_slower_is_left_whatever_the_plan_says() -> None:
    """Another process holds a core: two torch threads run 5x slower than one."""
    busy = {Split(1, 1): 30.0, Split(1, 2): 6.0, Split(2, 1): 25.0, Split(2, 2): 5.0}
    split, seen = simulate(busy, 0.0015, 0.016, batches=60)
    assert seen[0] == Split(1, 2)  # the plan is tried ...
    assert seen[6] == Split(1, 1)  # ... measured, and left
    tried_again = [i for i in range(1, 60) if seen[i] == Split(1, 2) != seen[i - 1]]
    assert 2 <= len(tried_again) <= 3  # once more per 24 batches, when the figure is stale
    assert seen.count(Split(1, 1)) >= 48


def test_an_explicit_worker_count_is_kept() -> None:
    icons = {s: 60.0 * s.threads for s in [*ALL, Split(3, 1), Split(3, 2)]}
    split, seen = simulate(icons, 0.0015, 0.016, batches=8, fixed_workers=3)
    assert {s.workers for s in seen} == {3}
    assert split.history[0] == Split(3, 1) and seen[-1] == Split(3, 2)  # threads still adapt
    assert usable_cores() >= 1


# -- the pool ------------------------------------------------------------------------------


def test_pool_yields_every_path_in_order_while_the_worker_count_changes(tmp_path: Path) -> None:
    paths = write_pngs(tmp_path, 24)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    paths.insert(5, str(tmp_path / "junk.png"))
    with DecodePool(1, max_pixels=MAX_PIXELS, max_workers=2, buffer=4) as pool:
        seen = []
        for i, result in enumerate(pool.decode(paths)):
            seen.append(result)
            if i == 3:
                pool.set_workers(2)
            if i == 12:
                pool.set_workers(1)
        assert pool.workers == 1
    assert [r.path for r in seen] == paths
    assert seen[5].error and seen[5].image is None
    good = [r for r in seen if r.error is None]
    assert len(good) == 24
    assert all(r.image is not None and r.image.size == (224, 224) for r in good)
    assert all(r.seconds > 0 for r in good)


def test_a_killed_worker_loses_no_file(tmp_path: Path) -> None:
    paths = write_pngs(tmp_path, 30, side=900)
    results = []
    with DecodePool(2, max_pixels=MAX_PIXELS, buffer=8) as pool:
        for i, result in enumerate(pool.decode(paths)):
            results.append(result)
            if i in (2, 15):  # kill -9 a decoder mid-run, twice
                children = multiprocessing.active_children()
                assert children
                os.kill(children[0].pid or 0, signal.SIGKILL)
    assert [r.path for r in results] == paths
    assert all(r.error is None and r.image is not None for r in results)


def test_decode_workers_run_at_a_lower_priority_than_their_parent(tmp_path: Path) -> None:
    """So that they take the cores' idle moments rather than stall torch's threads."""
    paths = write_pngs(tmp_path, 4)
    with DecodePool(2, max_pixels=MAX_PIXELS, buffer=4) as pool:
        assert all(r.error is None for r in pool.decode(paths))
        workers = [p for p in multiprocessing.active_children() if p.pid is not None]
        assert workers
        wanted = min(19, os.getpriority(os.PRIO_PROCESS, 0) + decode_pool.WORKER_NICENESS)

        def priorities() -> list[int]:
            return [os.getpriority(os.PRIO_PROCESS, w.pid or 0) for w in workers]

        # A worker that got no file may still be starting (its initializer not run yet):
        # wait for the condition, within a deadline, instead of reading it once.
        deadline = time.monotonic() + 60
        pause = threading.Event()
        while priorities() != [wanted] * len(workers) and time.monotonic() < deadline:
            pause.wait(0.05)
        assert priorities() == [wanted] * len(workers)


def test_stopping_early_does_not_hang_or_leave_workers(tmp_path: Path) -> None:
    paths = write_pngs(tmp_path, 40)
    pool = DecodePool(2, max_pixels=MAX_PIXELS, buffer=6)
    taken = []
    for result in pool.decode(paths):
        taken.append(result.path)
        if len(taken) == 3:
            break
    pool.close()
    assert taken == paths[:3]
    assert multiprocessing.active_children() == []

    # closed while a generator is still open (its consumer failed): no pool starts again
    pool = DecodePool(2, max_pixels=MAX_PIXELS, buffer=6)
    results = pool.decode(paths)
    assert next(results).path == paths[0]
    pool.close()
    assert multiprocessing.active_children() == []
    results.close()
    with pytest.raises(RuntimeError):
        next(pool.decode(paths))


# -- the indexer ---------------------------------------------------------------------------


def test_indexing_restores_torch_threads_and_records_its_split(
    tiny_settings: Settings, tiny_embedder, tmp_path: Path
) -> None:
    import torch

    write_pngs(tmp_path / "pics", 40, side=64)
    before = torch.get_num_threads()
    col = Collection(tiny_settings.with_overrides(batch_size=4), embedder=tiny_embedder)
    indexer = col.indexer
    try:
        report = indexer.index([tmp_path / "pics"])
    finally:
        col.close()
    assert report.indexed == 40
    assert torch.get_num_threads() == before
    split = indexer.split
    assert split is not None and split.batches == 10
    assert split.decode_s is not None and split.decode_s > 0
    assert split.embed_core_s is not None and split.embed_core_s > 0


@pytest.mark.parametrize("workers", [1, 3])
def test_the_decode_workers_setting_is_honoured(
    tiny_settings: Settings, tiny_embedder, tmp_path: Path, workers: int
) -> None:
    write_pngs(tmp_path / "pics", 12, side=64)
    settings = tiny_settings.with_overrides(decode_workers=workers, batch_size=4)
    col = Collection(settings, embedder=tiny_embedder)
    indexer = col.indexer
    try:
        assert indexer.index([tmp_path / "pics"]).indexed == 12
    finally:
        col.close()
    assert indexer.split is not None
    assert {s.workers for s in indexer.split.history} == {workers}
    assert all(s.threads >= 1 for s in indexer.split.history)
