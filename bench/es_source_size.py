"""Estimate the stored-field bytes of the Elasticsearch backend's documents, fresh and steady.

    python -P bench/es_source_size.py [--n 2000] [--dim 512]

No cluster can run here, so this compresses what the backend writes the way Lucene
stores it (blocks of documents, zstd level 3 for ``best_compression`` on 8.x/9.x; zlib
level 6 beside it as a second opinion) and prints bytes per document and per dimension:

* ``_source`` as stored: the bulk source line without the JSON vector (the mapping's
  ``_source.excludes``, or ``index.mapping.exclude_source_vectors`` on 9.2+);
* ``_recovery_source``: the unfiltered line, JSON vector included, which Elasticsearch
  8.x-9.1 keeps beside a filtered ``_source`` until merges prune it (9.2+ layout: none).

The rest of an index (vectors, graph, keywords) is in docs/elasticsearch.md; add these
figures to it for the fresh and steady-state totals. ``lookalike stats`` shows the
cluster's own measurement (``_disk_usage``).
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Callable

import numpy as np

from lookalike.records import Record
from lookalike.store.elastic.documents import encode_document

BLOCK_BYTES = 60 * 1024  # about the size of Lucene's stored-field blocks


def records(n: int, dim: int) -> list[tuple[Record, np.ndarray]]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for i in range(n):
        rel = f"2024/{i // 200:03d}/IMG_{i:06d}.jpg"
        rec = Record(
            id=f"photos:{rel}",
            path=f"/home/user/photos/{rel}",
            root="/home/user/photos",
            relpath=rel,
            format="jpeg",
            size=int(rng.integers(200_000, 8_000_000)),
            mtime=1_700_000_000.0 + i,
            sha256=f"{rng.integers(0, 2**63):016x}" * 4,
            width=4032,
            height=3024,
            vector=vectors[i],
        )
        out.append((rec, vectors[i]))
    return out


def compressed(docs: list[bytes], compress: Callable[[bytes], bytes]) -> int:
    total, block = 0, b""
    for doc in docs:
        block += doc
        if len(block) >= BLOCK_BYTES:
            total += len(compress(block))
            block = b""
    return total + (len(compress(block)) if block else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    full, filtered = [], []
    for rec, vec in records(args.n, args.dim):
        line = encode_document(rec, vec)
        full.append(line.encode("utf-8"))
        doc = json.loads(line)
        doc.pop("vector")
        filtered.append(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
    compressors: dict[str, Callable[[bytes], bytes]] = {"zlib-6": lambda b: zlib.compress(b, 6)}
    try:
        import zstandard

        compressors = {"zstd-3": zstandard.ZstdCompressor(level=3).compress, **compressors}
    except ImportError:
        print("zstandard is not installed: zlib only (pip install zstandard)")
    raw_full = sum(map(len, full)) / args.n
    print(f"{args.n} documents, {args.dim}-d; bulk source line {raw_full:,.0f} B uncompressed")
    for name, fn in compressors.items():
        src = compressed(filtered, fn) / args.n
        rec_src = compressed(full, fn) / args.n
        print(
            f"{name}: _source {src:,.0f} B/doc ({src / args.dim:.2f} B/dim); "
            f"_recovery_source {rec_src:,.0f} B/doc ({rec_src / args.dim:.2f} B/dim)"
        )


if __name__ == "__main__":
    main()
