"""Re-checking an unchanged folder that holds files which fail to index.

    python bench/failed_files.py [--images N] [--broken N] [--rounds N] [--models DIR]
                                 [--baseline-src DIR]

Builds (once) the full-size random-weight ViT-B/32 with scripts/make_random_models.py
(in its own process, so that this one stays small: a child's peak RSS counts the memory
of the process it was forked from),
writes --images small PNGs and --broken files that cannot be decoded, indexes the folder
once, then re-checks it --rounds times, alternating:

(a) ``lookalike index`` as it now runs: failed files remembered, skipped while unchanged;
(b) ``lookalike index --retry-failed``: every failed file decoded again, which loads the
    model: what every re-check did before failures were remembered.

Each is a fresh ``python -m lookalike index`` process; its wall time and peak RSS (the
process and its decode workers, from ``wait4``) are printed, with the median ratio (b)/(a).
``--baseline-src`` also re-checks with another checkout's ``src`` (e.g. the commit before
the change) in its own data folder, as a third column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")


def write_folder(folder: Path, images: int, broken: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
    for i in range(broken):
        kind = i % 3
        path = folder / f"broken{i}.{('png', 'jpg', 'webp')[kind]}"
        head = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBPVP8 ")[kind]
        path.write_bytes(head + rng.bytes(5000))


def run_index(
    folder: Path, home: Path, models: Path, src: Path, *extra: str
) -> tuple[float, float, dict]:
    """(seconds, peak RSS in MB, the JSON report) of one ``lookalike index`` process."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(src),
        LOOKALIKE_HOME=str(home),
        LOOKALIKE_MODEL=str(models / "clip-ViT-B-32-random"),
        LOOKALIKE_TEXT_MODEL=str(models / "multilingual-random"),
        HF_HUB_OFFLINE="1",
    )
    cmd = [sys.executable, "-m", "lookalike", "index", "--quiet", "--json", str(folder), *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--broken", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--baseline-src", type=Path)
    args = parser.parse_args()

    # in another process: a child forked from a process that loaded torch would report
    # this one's memory as its own peak RSS
    build = [sys.executable, str(ROOT / "scripts" / "make_random_models.py"), str(args.models)]
    subprocess.run([*build, "--size", "base"], check=True, stdout=subprocess.DEVNULL)
    src = ROOT / "src"
    with tempfile.TemporaryDirectory(prefix="lookalike-failed-") as tmp:
        folder = Path(tmp) / "pics"
        write_folder(folder, args.images, args.broken)
        homes = {"now": Path(tmp) / "home"}
        if args.baseline_src:
            homes["baseline"] = Path(tmp) / "home-baseline"
        first = run_index(folder, homes["now"], args.models, src)
        print(f"first run: indexed {first[2]['indexed']}, skipped {len(first[2]['skipped'])}")
        if args.baseline_src:
            run_index(folder, homes["baseline"], args.models, args.baseline_src)
        rows: dict[str, list[tuple[float, float]]] = {"remembered": [], "retried": []}
        rows.update({"baseline": []} if args.baseline_src else {})
        for _ in range(args.rounds):
            secs, rss, rep = run_index(folder, homes["now"], args.models, src)
            assert rep["indexed"] == 0 and len(rep["skipped"]) == args.broken, rep
            rows["remembered"].append((secs, rss))
            secs, rss, _ = run_index(folder, homes["now"], args.models, src, "--retry-failed")
            rows["retried"].append((secs, rss))
            if args.baseline_src:
                secs, rss, _ = run_index(folder, homes["baseline"], args.models, args.baseline_src)
                rows["baseline"].append((secs, rss))
    print(f"load: {os.getloadavg()[0]:.1f}; {args.images} images, {args.broken} broken, "
          f"{args.rounds} rounds (median)")  # fmt: skip
    base_s = statistics.median(s for s, _ in rows["remembered"])
    base_m = statistics.median(m for _, m in rows["remembered"])
    for name, values in rows.items():
        s = statistics.median(v for v, _ in values)
        m = statistics.median(v for _, v in values)
        print(f"{name:>10}: {s:6.2f} s  {m:7.0f} MB peak RSS   "
              f"x{s / base_s:.1f} time, x{m / base_m:.1f} memory")  # fmt: skip


if __name__ == "__main__":
    main()
