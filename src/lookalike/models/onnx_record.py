"""Recording a checked export for torch-free queries (see ``lookalike.models.onnx_query``).

The fast runtime calls these right after an export passed its check against the
reference: each writes a memory-mappable copy of the export, the standalone
tokenizer (text) and, last, the manifest; then opens the result as a query process
would, so a recording that cannot answer is removed at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.models.onnx_cache import ExportCache
from lookalike.models.onnx_query import (
    IMAGE_MANIFEST,
    TEXT_MANIFEST,
    TOKENIZER_FILE,
    QueryImage,
    QueryText,
    TokenizerRunner,
    _short,
)

__all__ = ["mapped_copy", "record_image", "record_text", "standalone_tokenizer"]

log = logging.getLogger(__name__)


def _write_json(cache: ExportCache, name: str, data: Mapping[str, Any]) -> None:
    cache.write_text(name, json.dumps(dict(data), indent=2, sort_keys=True))


def standalone_tokenizer(tokenizer: Any, max_tokens: int | None) -> Any:
    """A ``tokenizers.Tokenizer`` that pads and truncates as ``tokenizer(texts, padding=True,
    truncation=True, max_length=max_tokens)`` does, from a transformers fast tokenizer."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} has no fast (Rust) tokenizer to save")
    standalone = Tokenizer.from_str(backend.to_str())
    if max_tokens is not None:
        standalone.enable_truncation(
            max_tokens, direction=getattr(tokenizer, "truncation_side", "right")
        )
    else:
        standalone.no_truncation()
    standalone.enable_padding(
        direction=getattr(tokenizer, "padding_side", "right"),
        pad_id=int(tokenizer.pad_token_id),
        pad_type_id=int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        pad_token=str(tokenizer.pad_token),
    )
    return standalone


def record_text(
    cache: ExportCache,
    file: Path,
    precision: str,
    cosine: float,
    dim: int,
    *,
    tokenizer: Any,
    max_tokens: int | None,
    lower: bool,
    tokens: Callable[[list[str]], Mapping[str, Any]],
    texts: Sequence[str],
    probe_vector: list[float],
    again: bool = False,
) -> str | None:
    """Record a checked text export for torch-free queries; None, or why it cannot be.

    ``tokens`` is the tokenization the export was checked with; the standalone
    tokenizer must give exactly its ids and masks on ``texts``. ``probe_vector`` is
    the export's own vector for ``PROBE_TEXT``: a process that opens the export
    checks that it still gives it (a file swapped or damaged since is not used).
    Already recorded from this very file (a server start, ``lookalike models``): kept,
    unless ``again`` (this process found the recording broken).
    """
    if not again and _recorded(cache, TEXT_MANIFEST, file, precision, extra=(TOKENIZER_FILE,)):
        return None
    try:
        standalone = standalone_tokenizer(tokenizer, max_tokens)
        probe = TokenizerRunner(standalone, lower)
        for batch in ([*texts], *([t] for t in texts)):
            want, got = tokens(list(batch)), probe(list(batch))
            for name in ("input_ids", "attention_mask"):
                if not np.array_equal(np.asarray(want[name]), got[name]):
                    return f"the standalone tokenizer's {name} differ from the model tokenizer's"
        cache.write_text(TOKENIZER_FILE, standalone.to_str())
        mapped = mapped_copy(cache, file, f"query-text-{precision}.onnx")
        _write_json(cache, TEXT_MANIFEST, {
            "file": mapped.name, "precision": precision, "cosine": round(cosine, 6), "dim": dim,
            "max_tokens": max_tokens, "lower": lower, "probe": probe_vector,
        })  # fmt: skip
        QueryText.open(cache.folder, [precision])  # the copy gives the probe vector
    except Exception as exc:  # a tokenizer we cannot save: queries keep the full runtime
        cache.discard(TEXT_MANIFEST)
        log.info("torch-free text queries off: %s: %s", type(exc).__name__, exc)
        return f"torch-free text queries off ({type(exc).__name__}: {_short(exc)})"
    return None


def _recorded(
    cache: ExportCache, manifest: str, source: Path, precision: str, extra: Sequence[str] = ()
) -> bool:
    """Whether ``manifest`` records ``source`` in ``precision`` with its files in place,
    made after ``source`` was (a re-exported file is recorded again)."""
    try:
        data = json.loads(cache.path(manifest).read_text(encoding="utf-8"))
        copy = cache.path(str(data["file"]))
        needed = [copy, cache.path(f"{copy.name}.data"), *(cache.path(e) for e in extra)]
        return (
            data.get("precision") == precision
            and all(p.is_file() for p in needed)
            and copy.stat().st_mtime_ns >= source.stat().st_mtime_ns
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def mapped_copy(cache: ExportCache, source: Path, name: str) -> Path:
    """A copy of the checked export ``source`` whose weights sit in a side file
    (``name.data``), made anew each time an export is recorded.

    ONNX Runtime memory-maps such a file instead of parsing and copying the weights:
    measured cold on the int8 multilingual text model, session 0.55 s -> 0.18 s and
    peak RSS 275 MB -> 106 MB. The side file is published before the graph that
    names it, so a graph in place always finds its weights.
    """
    data = f"{name}.data"

    def make(tmp: Path) -> dict[str, Path]:
        import onnx

        model = onnx.load(str(source))
        onnx.save_model(
            model, str(tmp / name), save_as_external_data=True, all_tensors_to_one_file=True,
            location=data, size_threshold=1024,
        )  # fmt: skip
        return {data: tmp / data, name: tmp / name}

    cache.discard(name)
    path, _ = cache.ensure(name, make)
    return path


def record_image(
    cache: ExportCache,
    file: Path,
    precision: str,
    cosine: float,
    dim: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    rescale: float,
    probe_vector: list[float],
) -> None:
    """Record a checked image export for torch-free image queries (``probe_vector``: its
    own vector for ``probe_image()``, checked again by each process that opens it).
    Raises when the mapped copy cannot be made or does not give the probe vector."""
    mapped = mapped_copy(cache, file, f"query-image-{precision}.onnx")
    _write_json(cache, IMAGE_MANIFEST, {
        "file": mapped.name, "precision": precision, "cosine": round(cosine, 6), "dim": dim,
        "mean": [float(m) for m in mean], "std": [float(s) for s in std], "rescale": rescale,
        "probe": probe_vector,
    })  # fmt: skip
    try:
        QueryImage.open(cache.folder, [precision])
    except Exception:
        cache.discard(IMAGE_MANIFEST)
        raise
