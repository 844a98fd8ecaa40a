"""The derived vector index's view of the SQLite truth (``vector_index.VectorSource``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lookalike.store.local.db import Database
from lookalike.store.local.rows import check_blobs, chunks, placeholders, vectors_from_blobs

__all__ = ["SqliteVectorSource"]


class SqliteVectorSource:
    """The VectorSource the derived index reads from (see vectorindex.types.VectorSource).

    Every vector handed out has passed its CRC-32 (StoreDamagedError otherwise), so neither
    the exact matrix, nor an HNSW build, nor a rescoring file is made from a damaged row."""

    def __init__(self, db: Database, dim: int) -> None:
        self._db = db
        self._dim = dim

    def snapshot(self) -> contextlib.AbstractContextManager[Any]:
        return self._db.read()

    def head(self) -> int:
        return self._db.head()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._db.errors("read"):
            return int(self._db.conn().execute(sql, params).fetchone()[0] or 0)

    def count(self) -> int:
        return self._one("SELECT count(*) FROM documents")

    def count_changes(self, after: int) -> int:
        return self._one("SELECT count(*) FROM changes WHERE seq > ?", (after,))

    def changes(self, after: int) -> list[tuple[int, int, str]]:
        with self._db.errors("read"):
            rows = self._db.conn().execute(
                "SELECT seq, key, op FROM changes WHERE seq > ? ORDER BY seq", (after,)
            )
            return [(int(s), int(k), str(o)) for s, k, o in rows]

    def vectors(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        found: list[int] = []
        blobs: list[bytes] = []
        crcs: list[int | None] = []
        with self._db.errors("read"):
            conn = self._db.conn()
            for part in chunks(keys):
                in_list = placeholders(len(part))
                sql = f"SELECT key, vector, crc FROM vectors WHERE key IN ({in_list})"
                for key, blob, crc in conn.execute(sql, list(part)):
                    found.append(int(key))
                    blobs.append(blob)
                    crcs.append(crc)
        self._check(found, blobs, crcs)
        return np.array(found, dtype=np.int64), vectors_from_blobs(blobs, self._dim)

    def _check(self, keys: list[int], blobs: list[bytes], crcs: list[int | None]) -> None:
        check_blobs(blobs, crcs, lambda i: f"row {keys[i]}", self._db.collection)

    def iter_vectors(
        self, batch_size: int, after: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        last = after
        while True:
            with self._db.errors("read"):
                rows = (
                    self._db.conn()
                    .execute(
                        "SELECT key, vector, crc FROM vectors WHERE key > ? ORDER BY key LIMIT ?",
                        (last, batch_size),
                    )
                    .fetchall()
                )
            if not rows:
                return
            last = int(rows[-1][0])
            blobs = [r[1] for r in rows]
            self._check([int(r[0]) for r in rows], blobs, [r[2] for r in rows])
            keys = np.array([r[0] for r in rows], dtype=np.int64)
            yield keys, vectors_from_blobs(blobs, self._dim)
