"""What proving a served file is the indexed one costs (``lookalike.web.media``).

    python bench/media_verify.py [--files 20] [--megapixels 12]

Writes ``--files`` noisy JPEGs (camera-sized by default), records them as indexing
would (size, mtime, sha256), and times ``Media.open`` per file: the first time
(the file's identity is new, so it is hashed) and again (identity remembered:
open + fstat + a lookup, what a size-and-mtime check alone cost before), after a
restart (a marker file proves it: one more stat), and after ``touch`` (a new
identity: hashed again). The ratio is the price of the first view of a file.
The machine is shared and noisy: compare figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.records import Record
from lookalike.web.media import Media


class _Records:
    """Just ``get`` of a store: the benchmark is about the file check, not the database."""

    def __init__(self, records: dict[str, Record]) -> None:
        self.records = records

    def get(self, ids: list[str], with_vectors: bool = False) -> list[Record]:
        return [self.records[i] for i in ids if i in self.records]


def _write(folder: Path, count: int, megapixels: float) -> dict[str, Record]:
    rng = np.random.default_rng(0)
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = {}
    for i in range(count):
        path = folder / f"photo-{i:03d}.jpg"
        Image.fromarray(np.roll(base, i * 7, axis=1)).save(path, "JPEG", quality=90)
        data = path.read_bytes()
        st = path.stat()
        out[f"id{i}"] = Record(
            id=f"id{i}", path=str(path), root=str(folder), relpath=path.name, format="jpeg",
            size=st.st_size, mtime=st.st_mtime, sha256=hashlib.sha256(data).hexdigest(),
            width=width, height=height,
        )  # fmt: skip
    return out


def _time_opens(media: Media, ids: list[str]) -> list[float]:
    times = []
    for doc_id in ids:
        started = time.perf_counter()
        media.open(doc_id).file.close()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records = _write(Path(tmp), args.files, args.megapixels)
        store: Any = _Records(records)
        media = Media(store, Path(tmp) / "thumbs", max_pixels=10**9, work_slots=1)
        ids = list(records)
        mean_mb = statistics.mean(r.size for r in records.values()) / 1e6
        cold = _time_opens(media, ids)
        warm = _time_opens(media, ids)
        restarted = Media(store, Path(tmp) / "thumbs", max_pixels=10**9, work_slots=1)
        after_restart = _time_opens(restarted, ids)  # proven by the marker files
        # a new identity again (ctime moves): what a touched or replaced file costs
        for rec in records.values():
            os.utime(rec.path, None)
        retouched = _time_opens(media, ids)
    load = os.getloadavg()[0]
    print(f"{args.files} JPEGs of {args.megapixels:g} MP, {mean_mb:.1f} MB each; load {load:.2f}")
    for name, times in (("first view (hashed)", cold), ("again (remembered)", warm),
                        ("after a restart (marker)", after_restart),
                        ("after touch (hashed)", retouched)):  # fmt: skip
        print(f"  {name:25s} median {statistics.median(times):7.2f} ms per file")
    ratio = statistics.median(cold) / statistics.median(warm)
    speed = mean_mb / (statistics.median(cold) / 1000)
    print(f"  first view / remembered: {ratio:.0f}x  (hashing at {speed:.0f} MB/s)")


if __name__ == "__main__":
    main()
