"""ONNX Runtime for text queries: export the text encoder once per model and version, then run it.

The fast runtime (``lookalike.models.fast_torch``) hands over the text encoder it
assembles from the sentence-transformers weights (the CLIP text tower and its
projection, or a Transformer + mean Pooling + Dense stack) as a ``TextGraph``.
This module has it exported as one ONNX graph and quantised to int8
(``lookalike.models.onnx_export``), cached per model and version in an
``ExportCache`` (``<home>/onnx``), and runs it with tokenizer-side dynamic padding.
The mean pooling inside the graph weighs tokens by the attention mask, so a padded
batch gives the vectors of its texts run alone (in fp32; int8 quantises activations
per batch, so there it is as close as the check demands).

Session: graph optimisation ALL, ``min(2, usable cores)`` intra-op threads that do
not spin. Measured on a busy 2-core box, multilingual model: one short query in
int8 takes about as long on 1 thread as on 2 (7.9 vs 8.8 ms), in fp32 less on 2
(25 vs 30 ms), and a batch of 8 texts half as long on 2 (43 vs 82 ms); spinning
threads doubled the fp32 p50 while another process held a core, and would take
a core from the indexer.

Which precision runs, and whether ONNX runs at all, is decided by the caller's
check against the reference (``load_checked``): a cached file that will not load,
run or pass the check is deleted and exported again once; a precision that fails
its check on a fresh export is noted in the cache, so later starts skip it at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.models.onnx_cache import ExportCache, folder_fingerprint
from lookalike.models.onnx_export import (
    INPUTS,
    INSTALL_HINT,
    TextGraph,
    Tokenize,
    export_text_graph,
    file_maker,
    int8_options,
    package_version,
)

__all__ = [
    "EXPORT_VERSION",
    "INSTALL_HINT",
    "OnnxTextEncoder",
    "TextGraph",
    "attach",
    "default_threads",
    "load_checked",
    "onnx_missing",
    "text_cache",
]

log = logging.getLogger(__name__)

#: bump when the exported graph or the quantisation changes: every cached export is redone
EXPORT_VERSION = 1
FILES = {"fp32": "text-fp32.onnx", "int8": "text-int8.onnx"}
_USEARCH = "usearch.compiled"


def onnx_missing() -> str | None:
    """None when ONNX Runtime imports, else why the ONNX path is off and how to get it."""
    if "onnxruntime" not in sys.modules and _USEARCH in sys.modules:
        return (
            "onnxruntime cannot be loaded after usearch in one process (usearch's static "
            "libstdc++ makes that crash); import lookalike before usearch"
        )
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"onnxruntime not installed ({INSTALL_HINT}): {exc}"
    return None


def default_threads() -> int:
    from lookalike.core_split import usable_cores

    return min(2, usable_cores())


class OnnxTextEncoder:
    """Tokenize with dynamic padding, run the ONNX graph: (n, dim) float32, unnormalised."""

    def __init__(
        self, session: Any, tokenize: Tokenize, path: Path, precision: str, cached: bool
    ) -> None:
        inputs = [i.name for i in session.get_inputs()]
        if not inputs or set(inputs) - set(INPUTS):
            raise ValueError(f"{path} takes inputs {inputs}, not {list(INPUTS)}")
        self.session = session
        self.tokenize = tokenize
        self.path = path
        self.precision = precision
        self.cached = cached  # loaded from the cache rather than exported just now
        self.input_names = inputs
        self.output_name = session.get_outputs()[0].name

    def __call__(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenize(texts)
        feeds = {n: np.ascontiguousarray(batch[n], dtype=np.int64) for n in self.input_names}
        (out,) = self.session.run([self.output_name], feeds)
        return np.asarray(out, dtype=np.float32)


def text_cache(root: Path, model_folder: Path, kind: str) -> ExportCache:
    """The cache folder for this text model's exports under ``root``.

    Keyed by the weights folder (path and every file's size and time), the
    architecture, ``EXPORT_VERSION``, the torch and onnxruntime versions and the
    int8 options, so any change there means a fresh export.
    """
    folder = Path(model_folder).resolve()
    key = {
        "model": str(folder),
        "files": folder_fingerprint(folder),
        "kind": kind,
        "export": EXPORT_VERSION,
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
        "int8": int8_options(),
    }
    # A Hugging Face snapshot folder is named by its commit: name it by the repository.
    name = folder.parent.parent.name if folder.parent.name == "snapshots" else folder.name
    return ExportCache(root, f"{name}-{kind}", key)


def attach(
    root: Path,
    model_folder: Path,
    graph: TextGraph,
    tokenize: Tokenize,
    *,
    precisions: Sequence[str],
    score: Callable[[OnnxTextEncoder], float],
    bars: Mapping[str, float],
    threads: int | None = None,
) -> tuple[OnnxTextEncoder | None, str]:
    """The checked ONNX encoder and why it runs, or (None, why ONNX is off); never raises.

    Exports into ``root`` (see ``text_cache``) on first use; see ``load_checked``.
    """
    missing = onnx_missing()
    if missing is not None:
        return None, f"ONNX off: {missing}"
    try:
        cache = text_cache(root, model_folder, graph.kind)
        encoder, failures = load_checked(
            cache, graph, tokenize, precisions=precisions, score=score, bars=bars, threads=threads
        )
    except Exception as exc:  # any export or runtime surprise: the caller's torch path answers
        log.warning("ONNX text path off: %s: %s", type(exc).__name__, exc)
        return None, f"ONNX off ({type(exc).__name__}: {_short(exc)})"
    if encoder is None:
        return None, "ONNX off: " + "; ".join(failures)
    where = f"dynamic padding, export cached in {encoder.path.parent}"
    if failures:
        where = f"{'; '.join(failures)}; {encoder.precision} instead; {where}"
    return encoder, where


def load_checked(
    cache: ExportCache,
    graph: TextGraph,
    tokenize: Tokenize,
    *,
    precisions: Sequence[str],
    score: Callable[[OnnxTextEncoder], float],
    bars: Mapping[str, float],
    threads: int | None = None,
) -> tuple[OnnxTextEncoder | None, list[str]]:
    """The first of ``precisions`` whose encoder scores at least its bar, and why others failed.

    ``score`` is the caller's check against the reference (the lowest cosine). A
    cached file that fails it is exported again once before the precision is given
    up; a fresh export that fails it is noted in the cache and skipped from then on.
    Exceptions (export, quantisation, a file that will not load) propagate.
    """
    failures: list[str] = []
    for precision in precisions:
        rejected = cache.note(_rejected(precision))
        if rejected:
            failures.append(rejected)
            continue
        encoder = _open(cache, graph, tokenize, precision, threads)
        value = _score_cached(encoder, score) if encoder.cached else score(encoder)
        if value < bars[precision] and encoder.cached:
            log.warning("cached %s fails its check (cosine %.5f); exporting it again",
                        encoder.path, value)  # fmt: skip
            cache.discard(FILES[precision])
            encoder = _open(cache, graph, tokenize, precision, threads)
            value = score(encoder)
        if value >= bars[precision]:
            return encoder, failures
        why = f"{precision} load check: cosine {value:.5f} < {bars[precision]}"
        log.warning("ONNX %s path off: %s", precision, why)
        failures.append(why)
        cache.write_note(_rejected(precision), why)
        cache.discard(FILES[precision])
    return None, failures


# -- internals ---------------------------------------------------------------------------------


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rejected(precision: str) -> str:
    return f"text-{precision}.rejected"


def _score_cached(encoder: OnnxTextEncoder, score: Callable[[OnnxTextEncoder], float]) -> float:
    """A cached file that loads but cannot run (another model's graph...) scores as failing."""
    try:
        return score(encoder)
    except Exception as exc:
        log.warning("cached %s does not run (%s: %s)", encoder.path, type(exc).__name__, exc)
        return -1.0


def _open(
    cache: ExportCache, graph: TextGraph, tokenize: Tokenize, precision: str, threads: int | None
) -> OnnxTextEncoder:
    """Load the cached file, or export it; a cached file that will not load is made anew."""
    name = FILES[precision]
    make = file_maker(lambda path: export_text_graph(graph, tokenize, path), FILES, precision)
    path, cached = cache.ensure(name, make)
    try:
        return OnnxTextEncoder(_session(path, threads), tokenize, path, precision, cached)
    except Exception as exc:
        if not cached:
            raise
        log.warning("cached %s does not load (%s: %s); exporting it again",
                    path, type(exc).__name__, exc)  # fmt: skip
    cache.discard(name)
    path, cached = cache.ensure(name, make)
    return OnnxTextEncoder(_session(path, threads), tokenize, path, precision, cached)


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    # Fatal only: errors reach the caller as exceptions, the library does not write to stderr.
    options.log_severity_level = 4
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
