#!/usr/bin/env python
"""Checks that only a live Elasticsearch can answer, run by .github/workflows/elasticsearch.yml.

    python scripts/es_live_checks.py copy-roundtrip --home H --first A --back B
    python scripts/es_live_checks.py text-model --store URL --collection C \
        --model-id ID --hub-model NAME

``copy-roundtrip``: after ``lookalike copy A URL/X`` and ``lookalike copy URL/X B``, the
embedded collections A and B hold the same ids, metadata and bit-identical vectors.

``text-model``: a text query embedded in the cluster (``knn_text`` with the model
deployed as ``ID``) ranks the collection like the same query embedded here with the
sentence-transformers model ``NAME``: the cluster runs the model eland imported.

Exits 1 with a one-line reason on a mismatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lookalike.config import Settings
from lookalike.records import Record
from lookalike.store import open_store


def _records(settings: Settings) -> dict[str, Record]:
    store = open_store(settings)
    try:
        return {r.id: r for batch in store.iter_records(batch_size=500) for r in batch}
    finally:
        store.close()


def copy_roundtrip(home: Path, first: str, back: str) -> str | None:
    a = _records(Settings(home=home, collection=first))
    b = _records(Settings(home=home, collection=back))
    if not a:
        return f"collection {first} is empty: nothing was indexed"
    if set(a) != set(b):
        return f"ids differ: {len(set(a) ^ set(b))} of {len(a)} not in both"
    for doc_id, rec in a.items():
        other = b[doc_id]
        if rec.metadata() != other.metadata():
            return f"{doc_id}: metadata differs"
        if rec.vector is None or other.vector is None:
            return f"{doc_id}: a vector is missing"
        if rec.vector.dtype != other.vector.dtype or not np.array_equal(rec.vector, other.vector):
            return f"{doc_id}: vectors differ (max {np.abs(rec.vector - other.vector).max()})"
    print(f"copy round trip: {len(a)} documents, ids, metadata and vectors equal")
    return None


def text_model(store_url: str, collection: str, model_id: str, hub_model: str) -> str | None:
    from sentence_transformers import SentenceTransformer

    from lookalike.store.elastic.store import ElasticStore

    local = SentenceTransformer(hub_model, device="cpu")
    store = ElasticStore.from_settings(
        Settings(store=store_url, collection=collection, es_text_model=model_id)
    )
    try:
        for text in ("a red bicycle", "ein Hund am Strand", "mountains at night"):
            vector = local.encode([text], normalize_embeddings=True)[0]
            here = store.knn(np.asarray(vector, dtype=np.float32), 10)
            there = store.knn_text(text, 10)
            if len(there) != len(here) or not there:
                return f"{text!r}: {len(there)} hits from the cluster, {len(here)} from here"
            overlap = len({h.id for h in here} & {h.id for h in there})
            if overlap < 8:
                return f"{text!r}: only {overlap} of 10 hits in common"
            print(f"{text!r}: {overlap}/10 hits in common; top score {there[0].score:.4f}")
    finally:
        store.close()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="check", required=True)
    rt = sub.add_parser("copy-roundtrip")
    rt.add_argument("--home", type=Path, required=True)
    rt.add_argument("--first", required=True)
    rt.add_argument("--back", required=True)
    tm = sub.add_parser("text-model")
    tm.add_argument("--store", required=True)
    tm.add_argument("--collection", required=True)
    tm.add_argument("--model-id", required=True)
    tm.add_argument("--hub-model", required=True)
    args = parser.parse_args()
    if args.check == "copy-roundtrip":
        problem = copy_roundtrip(args.home, args.first, args.back)
    else:
        problem = text_model(args.store, args.collection, args.model_id, args.hub_model)
    if problem:
        print(f"FAILED: {problem}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
