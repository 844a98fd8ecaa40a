"""Synthetic unit vectors for bench/search.py, made in chunks so that 10M of them never
have to sit in memory at once (20 GB as float32): chunk ``c`` (50,000 rows) is drawn
from its own seed, so any range of rows can be made again on its own.

* ``manifold``: clusters on a 32-dimensional latent space mapped into ``dim``
  dimensions, plus 20 % isotropic noise; queries are new points from the same
  distribution (the similarity profile and low intrinsic dimension of image embeddings).
* ``isotropic``: tight clusters of about 100 points with isotropic noise, queries a data
  point plus more noise than the clusters' spread: the true top 10 is decided by noise,
  a worst case for any graph index and for sign-bit codes, kept as a stress test.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["CHUNK", "Dataset"]

CHUNK = 50_000


class Dataset:
    def __init__(self, kind: str, n: int, dim: int, clusters: int = 0, seed: int = 1) -> None:
        self.kind, self.n, self.dim, self.seed = kind, n, dim, seed
        per = 1000 if kind == "manifold" else 100
        self.clusters = clusters or max(1, n // per)
        fixed = np.random.default_rng(99)  # the same space and clusters for data and queries
        if kind == "manifold":
            latent = 32
            self._proj = fixed.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
            self._centres = fixed.standard_normal((self.clusters, latent)).astype(np.float32)
        else:
            centres = fixed.standard_normal((self.clusters, dim)).astype(np.float32)
            self._centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def _draw(self, rng: np.random.Generator, m: int, spread: float) -> np.ndarray:
        z = self._centres[rng.integers(0, len(self._centres), m)]
        if self.kind == "manifold":
            z = z + 0.6 * rng.standard_normal(z.shape).astype(np.float32)
            x = z @ self._proj
            scale = 0.2 * np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(self.dim)
            x += rng.standard_normal((m, self.dim)).astype(np.float32) * scale
        else:
            noise = rng.standard_normal((m, self.dim)).astype(np.float32)
            x = z + noise * (spread / np.sqrt(self.dim))
        out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        return out

    def chunk(self, c: int) -> np.ndarray:
        m = min(CHUNK, self.n - c * CHUNK)
        return self._draw(np.random.default_rng([self.seed, c]), m, 0.35)

    def chunks(self, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) from row ``start`` (a multiple of CHUNK or any row) to the end."""
        c = start // CHUNK
        while c * CHUNK < self.n:
            rows = self.chunk(c)
            skip = max(0, start - c * CHUNK)
            yield c * CHUNK + skip, rows[skip:]
            c += 1

    def queries(self, count: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed + 1, 0])
        if self.kind == "manifold":
            return self._draw(rng, count, 0.0)
        picks = rng.integers(0, self.n, count)
        base = np.empty((count, self.dim), dtype=np.float32)
        for c in np.unique(picks // CHUNK).tolist():  # each chunk made once
            rows = self.chunk(c)
            mine = np.flatnonzero(picks // CHUNK == c)
            base[mine] = rows[picks[mine] % CHUNK]
        noise = rng.standard_normal((count, self.dim)).astype(np.float32)
        q = base + noise * (0.5 / np.sqrt(self.dim))
        out: np.ndarray = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        return out

    def true_neighbours(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The exact top ``k`` rows for each query, streaming over the chunks."""
        best = np.empty((len(queries), 0), dtype=np.int64)
        best_s = np.empty((len(queries), 0), dtype=np.float32)
        for start, rows in self.chunks():
            sims = queries @ rows.T
            top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
            best = np.concatenate([best, top + start], axis=1)
            best_s = np.concatenate([best_s, np.take_along_axis(sims, top, axis=1)], axis=1)
            keep = np.argsort(-best_s, axis=1)[:, :k]
            best = np.take_along_axis(best, keep, 1)
            best_s = np.take_along_axis(best_s, keep, 1)
        return best
