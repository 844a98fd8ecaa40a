"""The CLIP image tower for ONNX Runtime, made for image queries: exported, checked, recorded.

Why: ``lookalike similar FILE`` embeds one image, and loading torch and the
sentence-transformers model for it cost most of the command's 9.5 s. The fast runtime
(``FastTorchEmbedder.prepare_queries``, run by the first ``index``) hands over the
vision tower and its projection in fp32 with reference vectors for the check images;
this module exports them as one ONNX graph (``pixel_values`` (n, 3, 224, 224) float32
in, the unnormalised (n, dim) vector out), optionally quantised to int8, runs the
export through ``onnx_query.QueryImage`` (its own pixel normalisation included) and
records it (``onnx_query.record_image``) when every check image reaches the bar.
A cached file that fails its check is made again once; a precision whose fresh
export fails is noted as rejected in the cache and not tried again.

Indexing keeps the torch tower (bf16 where the CPU has it, batched): the export only
answers queries, in processes that never load torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.models.onnx_cache import ExportCache
from lookalike.models.onnx_export import (
    _has_dynamo_option,
    _quiet,
    file_maker,
)
from lookalike.models.onnx_query import QueryImage, probe_image
from lookalike.models.onnx_record import record_image
from lookalike.models.vision_fast import min_cosine

__all__ = ["FILES", "KIND", "PRECISIONS", "export_image", "image_cache"]

log = logging.getLogger(__name__)

KIND = "clip-vision"
FILES = {"fp32": "image-fp32.onnx", "int8": "image-int8.onnx"}
#: tried in this order, each only when the one before fails its check. Measured cold on the
#: 2-core box (random-weight ViT-B/32, load average ~11): int8 opens its session in
#: 0.45-0.7 s at 222 MB peak, fp32 in 1.4-1.9 s at 512 MB, and runs one image in half the
#: time; on random weights int8 reached cosine 0.99986 to the reference. Trained CLIPs have
#: activation outliers that int8 may not survive: the check then gives way to fp32.
PRECISIONS = ("int8", "fp32")
_INPUT, _OUTPUT, _OPSET = "pixel_values", "image_vector", 17


def image_cache(root: Path, model_folder: Path) -> ExportCache:
    """The image model's export folder under ``root`` (keyed as the text exports are)."""
    from lookalike.models.onnx_text import text_cache

    return text_cache(root, model_folder, KIND)


def export_image(
    cache: ExportCache,
    vision: Any,
    projection: Any,
    processor: Any,
    images: Sequence[Image.Image],
    reference: np.ndarray,
    *,
    precisions: Sequence[str] = PRECISIONS,
    bars: Mapping[str, float],
    threads: int | None = None,
) -> tuple[QueryImage | None, str]:
    """The checked, recorded image export and why, or (None, why not); never raises.

    ``vision`` and ``projection`` are the fp32 torch modules; ``reference`` is the
    reference runtime's vectors for ``images`` (224x224 RGB).
    """
    from lookalike.models.onnx_text import _session, onnx_missing

    missing = onnx_missing()
    if missing is not None:
        return None, f"ONNX off: {missing}"
    manifest: dict[str, Any] = {
        "mean": [float(m) for m in processor.image_mean],
        "std": [float(s) for s in processor.image_std],
        "rescale": float(getattr(processor, "rescale_factor", 1 / 255)),
        "dim": int(reference.shape[1]),
    }
    failures: list[str] = []
    try:
        for precision in precisions:
            rejected = cache.note(f"image-{precision}.rejected")
            if rejected:
                failures.append(rejected)
                continue
            make = file_maker(
                lambda path: export_vision(vision, projection, path), FILES, precision
            )
            for attempt in range(2):
                path, cached = cache.ensure(FILES[precision], make)
                encoder = QueryImage.at(
                    path, {**manifest, "precision": precision}, _session(path, threads)
                )
                cosine = min_cosine(encoder(images), reference)
                if cosine >= bars[precision]:
                    probe = [float(v) for v in encoder([probe_image()])[0]]
                    record_image(
                        cache, path, precision, cosine, manifest["dim"], **_norms(manifest),
                        probe_vector=probe,
                    )  # fmt: skip
                    return encoder, f"export cached in {cache.folder}, cosine {cosine:.5f}"
                cache.discard(FILES[precision])
                if not cached or attempt:
                    break
            why = f"image {precision} check: cosine {cosine:.5f} < {bars[precision]}"
            log.warning("ONNX image path off in %s: %s", precision, why)
            failures.append(why)
            cache.write_note(f"image-{precision}.rejected", why)
    except Exception as exc:  # an export or runtime surprise: image queries keep torch
        log.warning("ONNX image export failed: %s: %s", type(exc).__name__, exc)
        return None, f"ONNX image export failed ({type(exc).__name__}: {exc})"
    return None, "; ".join(failures) or "no precision to try"


def _norms(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {"mean": manifest["mean"], "std": manifest["std"], "rescale": manifest["rescale"]}


def export_vision(vision: Any, projection: Any, path: Path) -> None:
    """Write the vision tower and projection to ``path`` as one self-contained ONNX file."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision, self.projection = vision, projection

        def forward(self, pixel_values: Any) -> Any:
            return self.projection(self.vision(pixel_values=pixel_values).pooler_output)

    dummy = torch.zeros((2, 3, 224, 224), dtype=torch.float32)
    choice: dict[str, Any] = {"dynamo": False} if _has_dynamo_option() else {}
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            Tower().eval(),
            (dummy,),
            str(path),
            **choice,
            input_names=[_INPUT],
            output_names=[_OUTPUT],
            opset_version=_OPSET,
            do_constant_folding=True,
            dynamic_axes={_INPUT: {0: "batch"}, _OUTPUT: {0: "batch"}},
        )
    if not path.is_file():
        raise RuntimeError(f"the ONNX export made no file at {path}")
