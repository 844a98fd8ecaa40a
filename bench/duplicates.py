#!/usr/bin/env python
"""Duplicate grouping at scale: synthetic vectors with planted groups.

    python bench/duplicates.py [--n 100000] [--dim 512] [--threshold 0.95] [--check 20000]

Vectors are clustered (1,000 centres, so unrelated neighbours are close too, as in
real collections); about 5 % of them are in a planted group of 2 to 10 noisy copies (cosine
about 0.97 to 0.995 to the seed). ``ann_pairs`` + union-find (what ``lookalike
duplicates`` runs) finds the groups; the script prints the time, the peak RSS of
the process, and pairwise precision and recall of the planted groups. ``--check N``
also runs the exact all-pairs grouping on the first N vectors, as the baseline in
the same run: its time, and whether both groupings agree.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lookalike.duplicates.grouping import ann_pairs, components, exact_pairs  # noqa: E402


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, planted group label or -1), L2-normalised float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 50_000):  # in slices: no float64 copy of the whole matrix
        part = vectors[start : start + 50_000]
        part[:] = centres[rng.integers(0, 1000, len(part))]
        part += rng.standard_normal(size=part.shape, dtype=np.float32)
    labels = np.full(n, -1, dtype=np.int64)
    order = rng.permutation(n)
    used, group = 0, 0
    while used < n // 100 * 5:  # about 5 % of documents are in a planted group
        size = int(rng.integers(2, 11))
        members = order[used : used + size]
        used += size
        seed_vec = vectors[members[0]]
        scale = float(rng.uniform(0.1, 0.25)) * np.linalg.norm(seed_vec) / np.sqrt(dim)
        vectors[members[1:]] = seed_vec + rng.normal(scale=scale, size=(size - 1, dim))
        labels[members] = group
        group += 1
    for start in range(0, n, 50_000):
        part = vectors[start : start + 50_000]
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    return vectors, labels


def pair_count(sizes: np.ndarray) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def precision_recall(found: list[list[int]], labels: np.ndarray) -> tuple[float, float]:
    """Pairwise: of the pairs put together, how many were planted together, and back."""
    planted = pair_count(np.bincount(labels[labels >= 0]))
    predicted = pair_count(np.array([len(g) for g in found], dtype=np.int64))
    both = 0
    for g in found:
        lab = labels[g]
        lab = lab[lab >= 0]
        if len(lab):
            both += pair_count(np.bincount(lab))
    return both / max(1, predicted), both / max(1, planted)


def reachable(vectors: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Share of planted pairs whose own cosine reaches the threshold: the recall an exact
    all-pairs search would get on pairs alone (groups joined through chains get more)."""
    ok = total = 0
    for g in np.unique(labels[labels >= 0]):
        members = vectors[labels == g]
        sims = members @ members.T
        iu = np.triu_indices(len(members), 1)
        ok += int((sims[iu] >= threshold).sum())
        total += len(iu[0])
    return ok / max(1, total)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="vectors (try 1000000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--k", type=int, default=16, help="neighbours asked per vector")
    ap.add_argument("--ef", type=int, help="HNSW search expansion (default: 128)")
    ap.add_argument("--check", type=int, default=20_000, help="exact baseline on this many (0: no)")
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    started = time.perf_counter()
    vectors, labels = synthetic(args.n, args.dim)
    groups_planted = len(np.unique(labels[labels >= 0]))
    print(f"{args.n:,} x {args.dim} vectors, {groups_planted:,} planted groups "
          f"({int((labels >= 0).sum()):,} members) made in {time.perf_counter() - started:.1f} s; "
          f"rss {peak_rss_mb():.0f} MB")  # fmt: skip
    if args.check:
        m = min(args.check, args.n)
        sub = vectors[:m]
        t0 = time.perf_counter()
        exact = components(m, exact_pairs(sub, args.threshold))
        t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        ann = components(m, ann_pairs(sub, args.threshold, k=args.k))
        t_ann = time.perf_counter() - t0
        print(f"baseline at {m:,}: exact all pairs {t_exact:.1f} s, ANN {t_ann:.1f} s "
              f"(ratio {t_exact / t_ann:.2f}); same groups: {exact == ann} "
              f"({len(exact)} groups)")  # fmt: skip
    t0 = time.perf_counter()
    pairs = ann_pairs(vectors, args.threshold, k=args.k, ef=args.ef)
    t_pairs = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = components(args.n, pairs)
    t_groups = time.perf_counter() - t0
    precision, recall = precision_recall(found, labels)
    print(f"ANN at {args.n:,}: neighbours {t_pairs:.1f} s, union-find {t_groups:.1f} s, "
          f"{len(found):,} groups; pairwise precision {precision:.4f} recall {recall:.4f} "
          f"(planted pairs above the threshold: {reachable(vectors, labels, args.threshold):.4f}); "
          f"peak rss {peak_rss_mb():.0f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
