"""Turning a torch text encoder into ONNX files: one fp32 graph, and its int8 quantisation.

* Export: PyTorch's TorchScript exporter (``dynamo=False``; it needs the ``onnx``
  package, takes about a second per 100M parameters and prints nothing). Where a
  later PyTorch has dropped it, the ``torch.export`` exporter is tried instead (that
  one also needs ``onnxscript``). The graph takes ``input_ids`` and
  ``attention_mask`` (int64, any batch, any length) and returns the unnormalised
  vectors; it is traced on a padded batch, since some models skip their masking
  code when the mask is all ones.
* int8: ONNX Runtime's dynamic quantisation, QInt8 weights per channel (measured
  closer to fp32 than per-tensor or QUInt8 weights, and as fast), with 7-bit weights
  on x86 CPUs without VNNI, as ONNX Runtime advises.

Both keep the exporters' and the quantiser's warnings and notices to themselves.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INPUTS",
    "INSTALL_HINT",
    "TextGraph",
    "Tokenize",
    "export_text_graph",
    "file_maker",
    "int8_options",
    "package_version",
    "quantize_int8",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lookalike[onnx]'"
INPUTS = ("input_ids", "attention_mask")
_OUTPUT = "text_vector"
_OPSET = 17
_TRACE_TEXTS = ["a photo of a cat on the beach at sunset", "猫"]
_VNNI = frozenset({"avx512_vnni", "avx_vnni", "avx512vnni", "amx_int8"})
_X86 = ("x86_64", "amd64", "i686", "x86")

#: texts -> {"input_ids": ..., "attention_mask": ...} as numpy integer arrays (dynamic padding)
Tokenize = Callable[[list[str]], Mapping[str, Any]]


@dataclass(frozen=True)
class TextGraph:
    """A text encoder to export.

    ``encode`` takes {"input_ids", "attention_mask"} (int64 tensors) and returns
    (n, dim) vectors using only ``modules``, which hold every weight it needs;
    ``kind`` names the architecture ("clip-text", "mean-pooled") in the cache key.
    """

    kind: str
    encode: Callable[[dict[str, Any]], Any]
    modules: tuple[Any, ...]


def export_text_graph(graph: TextGraph, tokenize: Tokenize, path: Path) -> None:
    """Write ``graph`` to ``path`` as one self-contained ONNX file."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.parts = torch.nn.ModuleList(graph.modules)  # the weights, registered

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return graph.encode({"input_ids": input_ids, "attention_mask": attention_mask})

    module = Encoder().eval()
    batch = tokenize(list(_TRACE_TEXTS))
    args = tuple(torch.from_numpy(np.ascontiguousarray(batch[n], dtype=np.int64)) for n in INPUTS)
    before = set(path.parent.iterdir())
    with _quiet(), torch.no_grad():
        try:
            _export_torchscript(module, args, path)
        except Exception as first:
            if not _has_dynamo_option() or importlib.util.find_spec("onnxscript") is None:
                raise
            log.info("TorchScript ONNX export failed (%s); trying torch.export", first)
            path.unlink(missing_ok=True)
            try:
                _export_dynamo(module, args, path)
            except Exception as second:
                raise RuntimeError(
                    f"TorchScript exporter: {type(first).__name__}: {first}; "
                    f"torch.export exporter: {type(second).__name__}: {second}"
                ) from second
    others = sorted(p.name for p in set(path.parent.iterdir()) - before - {path})
    if others or not path.is_file():
        raise RuntimeError(
            f"the ONNX export did not make one self-contained file (found {others}); "
            "the model is probably over the 2 GB a single ONNX file can hold"
        )


def _has_dynamo_option() -> bool:
    """PyTorch 2.5 and later choose the exporter with ``dynamo=``; earlier ones have one."""
    import torch

    return "dynamo" in inspect.signature(torch.onnx.export).parameters


def _export_torchscript(module: Any, args: tuple[Any, ...], path: Path) -> None:
    import torch

    choice: dict[str, Any] = {"dynamo": False} if _has_dynamo_option() else {}
    torch.onnx.export(
        module,
        args,
        str(path),
        **choice,
        input_names=list(INPUTS),
        output_names=[_OUTPUT],
        opset_version=_OPSET,
        do_constant_folding=True,
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            _OUTPUT: {0: "batch"},
        },
    )


def _export_dynamo(module: Any, args: tuple[Any, ...], path: Path) -> None:
    import torch

    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    torch.onnx.export(
        module,
        args,
        str(path),
        dynamo=True,
        input_names=list(INPUTS),
        output_names=[_OUTPUT],
        dynamic_shapes={
            "input_ids": {0: batch, 1: tokens},
            "attention_mask": {0: batch, 1: tokens},
        },
        external_data=False,
        verbose=False,
    )


def int8_options() -> dict[str, Any]:
    """The quantisation settings (for cache keys)."""
    return {"weights": "QInt8", "per_channel": True, "reduce_range": _reduce_range()}


def package_version(module: str) -> str:
    """A package's version for a cache key, read from its metadata so that a query path
    which never runs torch does not import it (1 ms, not 2 s); the module's own
    ``__version__`` where the distribution has another name (onnxruntime-gpu...)."""
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))


def _reduce_range() -> bool:
    """7-bit weights where u8 x s8 products could saturate: x86 without VNNI."""
    from lookalike.models.cpu import cpu_features

    features = cpu_features()
    return features.machine in _X86 and not (features.flags & _VNNI)


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=_reduce_range(),
        )


class _DropRootChatter(logging.Filter):
    """On the root logger: drops the quantiser's notices (it logs there, not on its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        advice = str(record.msg).startswith("Please consider to run pre-processing")
        return record.levelno >= logging.WARNING and not advice


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporters' and the quantiser's warnings and notices off the user's screen.

    The quantiser logs through the root logger with ``logging.warning``, which
    installs a stderr handler for good when the root has none; a NullHandler held
    for the duration prevents that, and its notices (info, debug and the advice to
    pre-process) are dropped.
    """
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    drop = _DropRootChatter()
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if guard is not None:
            root.addHandler(guard)
        root.addFilter(drop)
        exporter_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            exporter_log.setLevel(level)
            root.removeFilter(drop)
            if guard is not None:
                root.removeHandler(guard)


def file_maker(
    export: Callable[[Path], None], files: Mapping[str, str], precision: str
) -> Callable[[Path], dict[str, Path]]:
    """The cache's maker for one tower: ``export`` writes the fp32 graph into the temporary
    folder, then int8 is quantised from it unless ``precision`` is "fp32"; returns the file
    made, by its name in ``files`` ({"fp32": ..., "int8": ...})."""

    def make(tmp: Path) -> dict[str, Path]:
        if importlib.util.find_spec("onnx") is None:
            raise RuntimeError(f"the onnx package is needed to export the model ({INSTALL_HINT})")
        fp32 = tmp / files["fp32"]
        export(fp32)
        if precision == "fp32":
            return {files["fp32"]: fp32}
        int8 = tmp / files["int8"]
        quantize_int8(fp32, int8)
        return {files["int8"]: int8}

    return make
