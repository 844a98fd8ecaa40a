"""k-nearest-neighbour search over a local collection: filters in SQLite, vectors in the
derived index.

A filter matching at most ``selective_limit`` documents is answered by scoring exactly
those documents. Otherwise the index is searched with over-fetch, the candidates are
checked against the filter (and the exclusions) in SQLite, and the search widens until
enough hits are found or every document was considered. Each widening is sized from the
share of candidates that passed so far (a filter passing 3 % needs about 30x more
candidates, not 4x and 4x again), and a search that would have to walk a large part of
the graph (a filter rare near the query) scores the filtered documents exactly instead
when they are few enough: that bounds the slowest filtered queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lookalike.errors import StoreDamagedError
from lookalike.records import Hit
from lookalike.store.local.db import Database
from lookalike.store.local.rows import DOC_COLUMNS, chunks, hit_from_row, placeholders
from lookalike.store.local.source import SqliteVectorSource
from lookalike.store.vectorindex.derived import DerivedIndex
from lookalike.store.vectorindex.exact_matrix import dot_rows

__all__ = ["LocalKnn"]

#: a widening past this many times ``selective_limit`` candidates checks whether the
#: filtered documents are few enough (at most ``_EXACT_FACTOR`` times) to score exactly
_SWITCH_FACTOR = 4
_EXACT_FACTOR = 20
#: the most one widening step multiplies the candidates by
_MAX_GROWTH = 32


class LocalKnn:
    """One search plan over a database and its derived index (stateless between calls)."""

    def __init__(self, db: Database, index: DerivedIndex, *, selective_limit: int) -> None:
        self._db = db
        self._index = index
        self.selective_limit = selective_limit

    def search(
        self,
        q: np.ndarray,
        k: int,
        offset: int,
        where: str,
        params: list[Any],
        min_score: float | None,
        exclude: Sequence[bytes],
    ) -> list[Hit]:
        """Hits ranked ``offset`` to ``offset + k`` for the unit vector ``q`` among the rows
        matching ``where`` (SQL over documents), not excluded, scoring >= ``min_score``."""
        index = self._index
        index.sync()
        need = k + offset
        excluded = self._keys_of(exclude)
        ranked: tuple[np.ndarray, np.ndarray] | None = None
        if where != "1":  # selective: score exactly the rows that match
            chosen = self._keys_matching(where, params, self.selective_limit)
            if chosen is not None:
                if excluded:
                    chosen = chosen[~np.isin(chosen, np.fromiter(excluded, dtype=np.int64))]
                ranked = self._exact_over(chosen, q, index, need)
        if ranked is None:
            ranked = self._widening(q, need, index, excluded, where, params, min_score)
        keys, scores = ranked
        if min_score is not None:
            keep = scores >= np.float32(min_score)
            keys, scores = keys[keep], scores[keep]
        return self._hits(keys[offset:need], scores[offset:need])

    def _keys_of(self, ids: Sequence[bytes]) -> set[int]:
        out: set[int] = set()
        if not ids:
            return out
        with self._db.read() as conn:
            for part in chunks(ids):
                sql = f"SELECT key FROM documents WHERE id IN ({placeholders(len(part))})"
                out.update(int(r[0]) for r in conn.execute(sql, list(part)))
        return out

    def _exact_over(
        self, keys: np.ndarray, q: np.ndarray, index: DerivedIndex, need: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``need`` best of exactly these documents, scored exactly (selective filters)."""
        found, vecs = index.vectors_for(keys.tolist())
        if len(found) < len(keys):  # not in memory: read them from the database
            missing = keys[~np.isin(keys, found)]
            sql_keys, sql_vecs = SqliteVectorSource(self._db, q.shape[0]).vectors(missing.tolist())
            found = np.concatenate([found, sql_keys])
            vecs = np.concatenate([vecs, sql_vecs])
        if len(found) == 0:
            return found, np.empty(0, dtype=np.float32)
        scores = dot_rows(vecs, q)
        if need < len(scores):
            top = np.argpartition(-scores, need - 1)[:need]
            order = top[np.argsort(-scores[top], kind="stable")]
        else:
            order = np.argsort(-scores, kind="stable")
        return found[order], scores[order]

    def _widening(
        self,
        q: np.ndarray,
        need: int,
        index: DerivedIndex,
        excluded: set[int],
        where: str,
        params: list[Any],
        min_score: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search everything with over-fetch, filter, and widen until ``need`` hits are found."""
        m = max(need + len(excluded), 10)
        allowed: dict[int, bool] = {}
        counted = False
        while True:
            cand = index.candidates(q, m)
            keys, scores = cand.keys, cand.scores
            mask = np.ones(len(keys), dtype=bool)
            if excluded:
                mask &= ~np.isin(keys, np.fromiter(excluded, dtype=np.int64))
            if where != "1":
                unknown = [int(k) for k in keys[mask].tolist() if int(k) not in allowed]
                if unknown:
                    ok = self._matching(unknown, where, params)
                    allowed.update((k, k in ok) for k in unknown)
                mask &= np.array([allowed.get(int(k), False) for k in keys.tolist()], dtype=bool)
            passed = int(mask.sum())
            below = min_score is not None and len(scores) > 0 and scores[-1] < min_score
            if passed >= need or cand.complete or below:
                return keys[mask], scores[mask]
            m = _next_size(m, len(keys), passed, need)
            if where != "1" and not counted and m > _SWITCH_FACTOR * self.selective_limit:
                counted = True  # asked once per search: is the filtered subset small enough?
                chosen = self._keys_matching(where, params, _EXACT_FACTOR * self.selective_limit)
                if chosen is not None:
                    if excluded:
                        chosen = chosen[~np.isin(chosen, np.fromiter(excluded, dtype=np.int64))]
                    return self._exact_over(chosen, q, index, need)

    def _keys_matching(self, where: str, params: list[Any], limit: int) -> np.ndarray | None:
        """The keys of the documents matching ``where``, or None when there are over ``limit``."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT key FROM documents WHERE {where} LIMIT ?", [*params, limit + 1]
            ).fetchall()
        if len(rows) > limit:
            return None
        return np.array(rows, dtype=np.int64).reshape(-1)

    def _matching(self, keys: list[int], where: str, params: list[Any]) -> set[int]:
        out: set[int] = set()
        with self._db.read() as conn:
            for part in chunks(keys):
                sql = (
                    f"SELECT key FROM documents WHERE key IN ({placeholders(len(part))}) "
                    f"AND {where}"
                )
                out.update(int(r[0]) for r in conn.execute(sql, [*part, *params]))
        return out

    def _hits(self, keys: np.ndarray, scores: np.ndarray) -> list[Hit]:
        if len(keys) == 0:
            return []
        rows: dict[int, Any] = {}
        with self._db.read() as conn:
            for part in chunks([int(k) for k in keys.tolist()]):
                in_list = placeholders(len(part))
                sql = f"SELECT {DOC_COLUMNS} FROM documents d WHERE d.key IN ({in_list})"
                for row in conn.execute(sql, list(part)):
                    rows[int(row[0])] = row
            missing = [int(k) for k in keys.tolist() if int(k) not in rows]
            if missing:
                self._check_deleted(conn, missing)
        return [  # a key is missing if deleted since the index was synced
            hit_from_row(rows[key], score)
            for key, score in zip(keys.tolist(), scores.tolist(), strict=True)
            if key in rows
        ]

    def _check_deleted(self, conn: Any, keys: list[int]) -> None:
        """Keys the index ranked but the documents table lacks must have been deleted (the
        change log says so); otherwise SQLite lost rows to a damaged page, and the search
        would silently miss those images."""
        deleted: set[int] = set()
        for part in chunks(keys):
            sql = f"SELECT key FROM changes WHERE op = 'D' AND key IN ({placeholders(len(part))})"
            deleted.update(int(r[0]) for r in conn.execute(sql, list(part)))
        lost = [k for k in keys if k not in deleted]
        if lost:
            name = self._db.collection
            raise StoreDamagedError(
                f"collection {name!r}: {len(lost)} ranked document(s) cannot be read from "
                f"{self._db.path} (a damaged database page); "
                f"run `lookalike check --repair -c {name}`"
            )


def _next_size(m: int, seen: int, passed: int, need: int) -> int:
    """How many candidates to ask for next: enough for ``need`` at the pass rate seen so far
    (with a margin), at least twice as many, at most ``_MAX_GROWTH`` times."""
    if passed == 0:
        return m * _MAX_GROWTH // 2
    wanted = math.ceil(max(seen, 1) * need / passed * 1.5)
    return min(m * _MAX_GROWTH, max(2 * m, wanted))
