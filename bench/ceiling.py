"""The model-only ceiling: images/s of each image-tower runtime on pre-decoded 224x224 input.

    python bench/ceiling.py [--models DIR] [--runtimes torch-fp32,torch-bf16,onnx-int8-static]
                            [--batches 1,32] [--repeats 3] [--images N]

Loads ``CLIPVisionModelWithProjection`` from the random-weight ViT-B/32 that
scripts/make_random_models.py builds (the same weights ``lookalike index`` runs)
and times it alone: pixels already decoded, resized, normalised and stacked, torch
on every usable core, ``inference_mode``. Each (runtime, batch) is the best of
--repeats timed passes over --images images, after one warm-up pass: the best is the
figure least disturbed by other work on a shared machine.

Prints one JSON object: {"cores", "cpu_flags", "runtimes": {name: {"1": images/s,
"32": images/s, "cosine": min cosine to torch fp32}}}. ``bench/ingest.py`` runs this
in a fresh process in the same run as the pipelines it compares.

A runtime is one entry of RUNTIMES: a name and a function that takes the model
folder and returns a callable from a (n, 3, 224, 224) float32 array to (n, d)
embeddings. Another runtime (say ONNX Runtime int8) is one more entry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "scripts"))
DEFAULT_MODELS = Path("/tmp/lookalike-bench/models")
FLAGS = ("avx512_bf16", "amx_bf16", "amx_int8", "amx_tile", "avx512_vnni", "avx_vnni", "avx512f")

Run = Callable[[np.ndarray], np.ndarray]


def _vision(folder: Path) -> Any:
    from transformers import CLIPVisionModelWithProjection

    from lookalike.models.sentence import _quiet_loading

    inner = folder / "0_CLIPModel" if (folder / "0_CLIPModel").is_dir() else folder
    with _quiet_loading():  # the CLIP folder's text weights are "unexpected" here
        return CLIPVisionModelWithProjection.from_pretrained(str(inner)).eval()


def torch_runtime(dtype_name: str) -> Callable[[Path], Run]:
    def build(folder: Path) -> Run:
        import torch

        dtype = getattr(torch, dtype_name)
        model = _vision(folder).to(dtype)

        def run(pixels: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(pixels).to(dtype)
                out: np.ndarray = model(pixel_values=x).image_embeds.float().numpy()
            return out

        return run

    return build


def onnx_int8_runtime(variant: str) -> Callable[[Path], Run]:
    """ONNX Runtime int8 (``lookalike.models.vision_int8``, what ``index`` runs on CPUs with
    VNNI and no AMX): the export made from the fp32 model into a temporary folder."""

    def build(folder: Path) -> Run:
        import tempfile

        from lookalike.core_split import usable_cores
        from lookalike.models.vision_int8 import ceiling_sessions

        model = _vision(folder)
        made = Path(tempfile.mkdtemp(prefix="lookalike-ceiling-int8-"))
        sessions = ceiling_sessions(
            model.vision_model, model.visual_projection, made, threads=usable_cores()
        )
        if not sessions:
            raise SystemExit("onnx int8 needs ONNX Runtime: pip install 'lookalike[onnx]'")
        session = sessions[f"onnx int8 {variant}"]

        def run(pixels: np.ndarray) -> np.ndarray:
            return np.asarray(session(pixels)[0], dtype=np.float32)

        return run

    return build


#: name -> builder; the first is the reference the others' cosine is taken against
RUNTIMES: dict[str, Callable[[Path], Run]] = {
    "torch-fp32": torch_runtime("float32"),
    "torch-bf16": torch_runtime("bfloat16"),
    "onnx-int8-static": onnx_int8_runtime("static"),
    "onnx-int8-dynamic": onnx_int8_runtime("dynamic"),
}


def cpu_flags() -> dict[str, bool]:
    from lookalike.models.cpu import cpu_features

    flags = cpu_features().flags
    return {name: name in flags for name in FLAGS}


def pixels(n: int, seed: int = 0) -> np.ndarray:
    """n images of 224x224 noise, normalised as CLIP's processor does."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, 3, 224, 224)).astype(np.float32) / 255.0
    mean = np.array([0.4815, 0.4578, 0.4082], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.2686, 0.2613, 0.2758], dtype=np.float32).reshape(1, 3, 1, 1)
    return ((raw - mean) / std).astype(np.float32)


def rate(run: Run, data: np.ndarray, batch: int, repeats: int) -> float:
    """The best images/s over ``repeats`` passes over ``data`` in batches of ``batch``."""
    run(data[:batch])  # warm-up: first-call allocations, oneDNN kernel choice
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(data), batch):
            run(data[start : start + batch])
        best = max(best, len(data) / (time.perf_counter() - started))
    return best


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    return float(cos.min())


def measure(
    folder: Path, names: list[str], batches: list[int], repeats: int, images: int
) -> dict[str, Any]:
    import torch

    from lookalike.core_split import usable_cores

    cores = usable_cores()
    torch.set_num_threads(cores)
    data = pixels(max(images, *batches))
    out: dict[str, Any] = {"cores": cores, "cpu_flags": cpu_flags(), "runtimes": {}}
    reference: np.ndarray | None = None
    for name in names:
        run = RUNTIMES[name](folder)
        vectors = run(data[:8])
        reference = vectors if reference is None else reference
        entry: dict[str, float] = {"cosine": round(min_cosine(vectors, reference), 6)}
        for batch in batches:
            n = max(batch, images - images % batch) if batch > 1 else min(images, 16)
            entry[str(batch)] = round(rate(run, data[:n], batch, repeats), 2)
        out["runtimes"][name] = entry
        del run
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated")
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument("--images", type=int, default=64, help="images per pass (batch > 1)")
    args = parser.parse_args()
    from make_random_models import make_random_models

    folder = make_random_models(args.models)["image"]
    names = [n for n in args.runtimes.split(",") if n]
    unknown = sorted(set(names) - set(RUNTIMES))
    if unknown:
        parser.error(f"unknown runtime(s) {unknown}; known: {', '.join(RUNTIMES)}")
    batches = [int(b) for b in args.batches.split(",") if b]
    print(json.dumps(measure(folder, names, batches, args.repeats, args.images)))


if __name__ == "__main__":
    main()
