"""Time ``scan()`` over a generated tree of image-named files, against ``os.walk``.

    python bench/scan.py [--files 100000] [--per-folder 500] [--keep DIR]

Creates N one-byte files with image names (plus some junk) in nested folders, then
times a full scan twice (the second one is the "unchanged tree" case an indexer sees
on every run) and a bare os.walk + stat of the same tree as the baseline, in the same
process. Prints files/s and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from lookalike.scan import scan

EXTS = [".jpg", ".JPG", ".jpeg", ".png", ".webp", ".heic"]


def build(root: Path, files: int, per_folder: int) -> None:
    made = 0
    folder_index = 0
    while made < files:
        folder = root / f"year{folder_index % 10}" / f"event{folder_index:05d}"
        folder.mkdir(parents=True)
        for i in range(min(per_folder, files - made)):
            with open(folder / f"IMG_{i:05d}{EXTS[i % len(EXTS)]}", "wb") as fh:
                fh.write(b"x")
        (folder / ".DS_Store").write_bytes(b"")
        (folder / "notes.txt").write_bytes(b"")
        made += min(per_folder, files - made)
        folder_index += 1


def walk_baseline(root: Path) -> int:
    count = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            count += 1
    return count


def timed(label: str, fn, files: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    count = fn()
    elapsed = time.perf_counter() - started
    print(f"{label:<28}{count:>9} files {elapsed:>8.3f} s {count / elapsed:>12,.0f} files/s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per-folder", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "tree"
        if not root.exists():
            started = time.perf_counter()
            build(root, args.files, args.per_folder)
            print(f"built {args.files} files in {time.perf_counter() - started:.1f} s")
        first = timed("scan (first)", lambda: sum(1 for _ in scan(root)), args.files)
        again = timed("scan (unchanged tree)", lambda: sum(1 for _ in scan(root)), args.files)
        base = timed("os.walk + stat (baseline)", lambda: walk_baseline(root), args.files)
        print(f"scan / baseline time: {min(first, again) / base:.2f}")


if __name__ == "__main__":
    main()
