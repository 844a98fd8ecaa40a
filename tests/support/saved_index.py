"""Write a saved HNSW index by hand: a valid graph built from chosen vectors, stamped
with its true size and CRC, so only the code-against-database checks can catch it."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

from lookalike.native_libs import Index


def replace_saved_graph(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    """Replace the collection's one saved graph (int8, cosine: the 24-d test vectors) by
    one of ``vectors`` under ``keys``, and fix its stamp so that it passes the file CRC."""
    (index_file,) = folder.glob("ann-*.usearch")
    (stamp_file,) = folder.glob("ann-*.json")
    stamp = json.loads(stamp_file.read_text())
    index = Index(ndim=vectors.shape[1], metric="cos", dtype=stamp["dtype"])
    index.add(np.asarray(keys, dtype=np.uint64), vectors.astype(np.float32), threads=1)
    tmp = folder / "graph.tmp"
    index.save(os.fspath(tmp))
    data = tmp.read_bytes()
    os.replace(tmp, index_file)
    stamp.update(size=len(data), crc32=zlib.crc32(data), count=len(index))
    stamp_file.write_text(json.dumps(stamp))
