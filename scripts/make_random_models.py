#!/usr/bin/env python
"""Build full-size random-weight models for the demo and the benchmarks, offline.

    python scripts/make_random_models.py OUTDIR [--size base|tiny] [--seed N]

Writes OUTDIR/clip-ViT-B-32-random (CLIP ViT-B/32 in the layout of the Hub's
sentence-transformers/clip-ViT-B-32) and OUTDIR/multilingual-random (the shape of
clip-ViT-B-32-multilingual-v1), using ``lookalike.models.testing``. Use them where
pretrained weights cannot be downloaded:

    LOOKALIKE_MODEL=OUTDIR/clip-ViT-B-32-random LOOKALIKE_TEXT_MODEL=OUTDIR/multilingual-random

Their vectors mean nothing (random weights), but they cost what the real models
cost. A model already built is kept (delete its folder to rebuild); each is built
in a temporary folder and renamed into place, so an interrupted build leaves
nothing that looks finished. Prints one line per model: its path and whether it
was built or already there.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from lookalike.models.testing import build_random_clip, build_random_multilingual, mark_random

CLIP_NAME = "clip-ViT-B-32-random"
TEXT_NAME = "multilingual-random"


def _is_built(folder: Path) -> bool:
    return (folder / "modules.json").is_file()


def ensure_model(folder: Path, build: Callable[[Path], Path]) -> bool:
    """Build ``folder`` unless it holds a model already; True when it was built now."""
    if _is_built(folder):
        mark_random(folder)  # folders built before the marker existed (it leaves the id alone)
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        build(staging / "model")
        if folder.exists():  # a leftover without modules.json: not a finished model
            shutil.rmtree(folder)
        (staging / "model").rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def make_random_models(outdir: Path, *, size: str = "base", seed: int = 0) -> dict[str, Path]:
    """Both models under ``outdir``; returns {"image": path, "text": path}."""
    clip, text = outdir / CLIP_NAME, outdir / TEXT_NAME
    if size == "tiny":
        clip, text = outdir / (CLIP_NAME + "-tiny"), outdir / (TEXT_NAME + "-tiny")
    ensure_model(clip, lambda f: build_random_clip(f, size=size, seed=seed))  # type: ignore[arg-type]
    ensure_model(text, lambda f: build_random_multilingual(f, size=size, seed=seed))  # type: ignore[arg-type]
    return {"image": clip, "text": text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--size", choices=["base", "tiny"], default="base")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    before = {
        n: _is_built(args.outdir / n)
        for n in (CLIP_NAME, TEXT_NAME, CLIP_NAME + "-tiny", TEXT_NAME + "-tiny")
    }
    paths = make_random_models(args.outdir, size=args.size, seed=args.seed)
    for path in paths.values():
        print(f"{path}  {'already there' if before.get(path.name) else 'built'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
