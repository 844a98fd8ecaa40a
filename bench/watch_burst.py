#!/usr/bin/env python
"""A burst of new files under ``lookalike watch``: how many passes, each file embedded once?

    python bench/watch_burst.py [--files 10000]

Starts a Watcher (inotify) over an empty folder of a fresh collection with the tiny
random CLIP model (the cost measured is the watcher's, not a big model's), writes
``--files`` small PNGs into 50 subfolders as fast as it can, and reports the write
time, the time until every file is searchable, the number of passes, and whether
each file was embedded exactly once. The baseline in the same run: one plain
``Indexer.index`` of the same files into a second collection.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lookalike.collection import Collection  # noqa: E402
from lookalike.config import Settings  # noqa: E402
from lookalike.models.testing import build_random_clip, build_random_multilingual  # noqa: E402
from lookalike.watch import PassReport, watch_collection  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="watchburst-") as tmp:
        work = Path(tmp)
        clip = build_random_clip(work / "clip", size="tiny")
        text = build_random_multilingual(work / "text", size="tiny")
        root = work / "incoming"
        root.mkdir()
        settings = Settings(home=work / "home", image_model=str(clip), text_model=str(text))
        passes: list[PassReport] = []
        done = threading.Event()
        with Collection(settings) as col:
            col.embedder.load()

            def on_pass(p: PassReport) -> None:
                passes.append(p)
                if col.store.count() >= args.files:
                    done.set()

            watcher = watch_collection(col, [root], on_pass=on_pass)
            watcher.start()
            while not passes:
                time.sleep(0.1)
            rng = np.random.default_rng(0)
            started = time.perf_counter()
            for i in range(args.files):
                pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                folder = root / f"d{i % 50:02d}"
                folder.mkdir(exist_ok=True)
                Image.fromarray(pixels).save(folder / f"{i:05d}.png")
            written = time.perf_counter() - started
            done.wait(3600)
            visible = time.perf_counter() - started
            watcher.stop()
            indexed = sum(p.report.indexed for p in passes if p.report)
            again = sum(p.report.updated + p.report.reused for p in passes if p.report)
            once = indexed == args.files and again == 0
            print(f"wrote {args.files:,} files in {written:.1f} s; all searchable after "
                  f"{visible:.1f} s; {len(passes) - 1} passes after the start pass; "
                  f"embedded {indexed:,} (exactly once each: {once})")  # fmt: skip
        baseline = settings.with_overrides(home=work / "home2")
        with Collection(baseline) as col:
            col.embedder.load()
            started = time.perf_counter()
            report = col.indexer.index([root])
            plain = time.perf_counter() - started
        print(f"baseline: one `lookalike index` of the same files {plain:.1f} s "
              f"({report.indexed:,} embedded); watch / index = {visible / plain:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
