"""Region vectors of a local collection: int8 rows in SQLite, an int8 matrix in memory.

A collection indexed with ``--regions`` holds about a dozen tile vectors per large
image. Stored as float32 they would multiply the collection's size and RAM by
that; here each is quantised to int8 with one float32 scale (``v ~ q * scale``,
``q = round(v / max|v| * 127)``), 4x smaller, and scored exactly by
``(q . query) * scale``: for unit vectors the rounding moves a cosine by about
1e-3, far below what separates a match from a miss.

The in-memory matrix is derived from the ``regions`` table (the truth) and
reloaded when the change log moves, like the whole-image index; rows are kept
ordered by document key so that the best tile of each document is one
``maximum.reduceat`` away.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import StoreError
from lookalike.regions import Box, Region
from lookalike.store.local.db import Database, decode_text
from lookalike.store.local.rows import chunks, placeholders

__all__ = [
    "RegionMatrix",
    "RegionRanking",
    "box_of",
    "delete_regions",
    "insert_regions",
    "region_counts",
    "regions_of",
]

_CHUNK = 1 << 16  # rows scored per step, so the float32 copy stays small
_ROW_OVERHEAD = 4 * 8 + 8 + 8  # four box floats, the scale and the key, as SQLite stores them


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their float32 scales (``vectors ~ q * scale[:, None]``)."""
    v = np.asarray(vectors, dtype=np.float32)
    peak = np.max(np.abs(v), axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(v / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def insert_regions(conn: Any, key: int, regions: Sequence[Region], dim: int, rec_id: str) -> None:
    if not regions:
        return
    vectors = np.asarray([r.vector for r in regions], dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim or not np.all(np.isfinite(vectors)):
        raise StoreError(
            f"record {rec_id!r}: its region vectors must be finite and {dim}-d like its vector"
        )
    q, scale = quantise(vectors)
    conn.executemany(
        "INSERT INTO regions (key, x0, y0, x1, y1, scale, vector) VALUES (?,?,?,?,?,?,?)",
        [
            (key, *(float(c) for c in r.box), float(s), row.tobytes())
            for r, s, row in zip(regions, scale, q, strict=True)
        ],
    )


def delete_regions(conn: Any, keys: Sequence[int]) -> None:
    conn.executemany("DELETE FROM regions WHERE key = ?", [(k,) for k in keys])


@dataclass
class RegionRanking:
    """Documents by their best tile: keys, scores (descending) and the best tile's box."""

    keys: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray  # (n, 4) float32


class RegionMatrix:
    """The int8 region matrix of one collection, reloaded when the change log moves."""

    def __init__(self, db: Database, dim: int) -> None:
        self._db = db
        self._dim = dim
        self._lock = threading.Lock()
        self._head = -1
        self.keys = np.zeros(0, dtype=np.int64)
        self.boxes = np.zeros((0, 4), dtype=np.float32)
        self.scales = np.zeros(0, dtype=np.float32)
        self.matrix = np.zeros((0, dim), dtype=np.int8)

    @property
    def nbytes(self) -> int:
        """Memory the loaded matrix holds (vectors, scales, boxes and keys)."""
        return int(self.matrix.nbytes + self.scales.nbytes + self.boxes.nbytes + self.keys.nbytes)

    def sync(self) -> None:
        with self._lock:
            if self._db.head() == self._head:
                return
            with self._db.read() as conn:
                head = int(conn.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0)
                rows = conn.execute(
                    "SELECT key, x0, y0, x1, y1, scale, vector FROM regions ORDER BY key, rowid"
                ).fetchall()
            blobs = b"".join(r[6] for r in rows)
            if len(blobs) != len(rows) * self._dim:
                raise StoreError(
                    f"{self._db.path}: a region vector is not {self._dim} int8 values; the file "
                    "is damaged: drop the collection (`lookalike drop`) and index again"
                )
            self.matrix = np.frombuffer(blobs, dtype=np.int8).reshape(len(rows), self._dim)
            self.keys = np.array([r[0] for r in rows], dtype=np.int64)
            self.boxes = np.array([r[1:5] for r in rows], dtype=np.float32).reshape(-1, 4)
            self.scales = np.array([r[5] for r in rows], dtype=np.float32)
            self._head = head

    def rank(self, q: np.ndarray, limit: int) -> RegionRanking:
        """The ``limit`` documents whose best tile has the highest cosine with the unit
        vector ``q``, best first (fewer when fewer documents have tiles)."""
        self.sync()
        with self._lock:
            matrix, scales, keys, boxes = self.matrix, self.scales, self.keys, self.boxes
        if len(keys) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return RegionRanking(np.zeros(0, dtype=np.int64), empty, np.zeros((0, 4), np.float32))
        scores = np.empty(len(keys), dtype=np.float32)
        for start in range(0, len(keys), _CHUNK):
            part = matrix[start : start + _CHUNK].astype(np.float32)
            scores[start : start + _CHUNK] = (part @ q) * scales[start : start + _CHUNK]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        best = np.maximum.reduceat(scores, starts)
        order = np.argsort(-best, kind="stable")[: max(0, limit)]
        ends = np.r_[starts[1:], len(keys)]
        rows = np.array(
            [starts[g] + int(np.argmax(scores[starts[g] : ends[g]])) for g in order],
            dtype=np.int64,
        )
        return RegionRanking(keys[rows], np.clip(best[order], -1.0, 1.0), boxes[rows])


def regions_of(db: Database, ids: Sequence[bytes]) -> dict[str, list[Region]]:
    """The stored tiles (de-quantised) of these encoded ids; ids without tiles left out."""
    out: dict[str, list[Region]] = {}
    with db.read() as conn:
        for part in chunks(list(ids)):
            sql = (
                "SELECT d.id, r.x0, r.y0, r.x1, r.y1, r.scale, r.vector FROM documents d "
                f"JOIN regions r ON r.key = d.key WHERE d.id IN ({placeholders(len(part))}) "
                "ORDER BY d.id, r.rowid"
            )
            for row in conn.execute(sql, list(part)):
                q = np.frombuffer(row[6], dtype=np.int8).astype(np.float32) * float(row[5])
                box = (float(row[1]), float(row[2]), float(row[3]), float(row[4]))
                out.setdefault(decode_text(row[0]), []).append(Region(box, q))
    return out


def region_counts(db: Database) -> tuple[int, int, int]:
    """(region rows, documents with regions, bytes their rows take in SQLite, estimated)."""
    with db.read() as conn:
        rows, docs, blob = conn.execute(
            "SELECT count(*), count(DISTINCT key), coalesce(sum(length(vector)), 0) FROM regions"
        ).fetchone()
    return int(rows), int(docs), int(blob) + int(rows) * _ROW_OVERHEAD


def box_of(row: np.ndarray) -> Box:
    x0, y0, x1, y1 = (float(v) for v in row)
    return (x0, y0, x1, y1)
