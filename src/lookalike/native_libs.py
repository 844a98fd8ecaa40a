"""Native libraries that must be loaded in a set order: onnxruntime before usearch.

usearch's compiled module (2.26) links libstdc++ statically and exports its locale
ids as unique symbols; once it is loaded, importing onnxruntime (1.32) dies with
SIGSEGV inside ``std::codecvt``. The other order works. So every module of ours that
needs usearch takes its ``Index`` from here, which loads onnxruntime first when it is
installed (about 0.2 s). ``lookalike.models.onnx_text`` turns its ONNX path off, with
the reason, in a process where someone else loaded usearch first.
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):
    import onnxruntime  # noqa: F401  (must come first: see the module docstring)

from usearch.index import Index  # noqa: E402

__all__ = ["Index"]
