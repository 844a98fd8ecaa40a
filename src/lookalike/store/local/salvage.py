"""Rebuild a damaged ``store.db`` from the rows that can still be read.

When SQLite's tables themselves are damaged (not just an index, which REINDEX fixes),
the database cannot be repaired in place. Salvage reads every document and vector row
one key at a time (a read that hits a damaged page fails alone), writes the readable
ones, with vectors that pass their CRC-32, into a new database built whole under a
temporary name, keeps the damaged file beside it as ``store.db.damaged-<time>``, and
moves the new one into place. Documents whose row was lost are not known any more by
path: an ``index`` run over the collection's folders (the roots salvaged, returned)
embeds them again; documents whose vector was lost or damaged are returned for
re-embedding. Runs under the writer lock; searches in other processes should be
restarted afterwards (they keep the old file open).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.store.base import DamagedDocument
from lookalike.store.local.db import DB_FILENAME, Database, decode_text
from lookalike.store.local.rows import is_vector_blob

__all__ = ["Salvaged", "salvage_database"]

_DOC_SQL = (
    "SELECT key, id, path, root, relpath, format, size, mtime, sha256, width, height "
    "FROM documents WHERE key = ?"
)


@dataclass
class Salvaged:
    kept: int = 0
    lost_rows: int = 0  # keys whose document row could not be read
    damaged: list[DamagedDocument] = field(default_factory=list)  # row read, vector not
    roots: set[str] = field(default_factory=set)
    backup: Path | None = None


def _one(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
    try:
        row = conn.execute(sql, args).fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else tuple(row)


def _max_key(conn: sqlite3.Connection) -> int:
    best = 0
    for sql in (
        "SELECT seq FROM sqlite_sequence WHERE name = 'documents'",
        "SELECT max(key) FROM changes",
        "SELECT max(key) FROM vectors",
    ):
        row = _one(conn, sql, ())
        if row and row[0] is not None:
            best = max(best, int(row[0]))
    return best


def salvage_database(folder: Path, collection: str, *, dim: int) -> Salvaged:
    """Replace ``folder/store.db`` by a database of its readable rows (see the module doc).
    The caller has closed its own connections and holds the writer lock."""
    db_path = folder / DB_FILENAME
    out = Salvaged()
    tmp = folder / f".{DB_FILENAME}.salvage-{os.getpid()}"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    old = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    new_db = Database(tmp, collection=collection, create=True)
    try:
        new = new_db.conn()
        with new_db.write() as w:
            model = _one(old, "SELECT value FROM meta WHERE key = 'model'", ())
            if model is not None:  # (a new file gets a new uuid: no saved index matches it)
                w.execute("INSERT INTO meta VALUES ('model', ?)", model)
            precision = _one(old, "SELECT value FROM meta WHERE key = 'vector_precision'", ())
            if precision is not None:  # rows keep their bytes; new ones follow the collection
                w.execute("INSERT INTO meta VALUES ('vector_precision', ?)", precision)
            top = _max_key(old)
            for key in range(1, top + 1):
                doc = _one(old, _DOC_SQL, (key,))
                if doc is None:
                    deleted = _one(old, "SELECT 1 FROM changes WHERE key = ? AND op = 'D'", (key,))
                    out.lost_rows += deleted is None
                    continue
                vec = _one(old, "SELECT vector, crc FROM vectors WHERE key = ?", (key,))
                root = decode_text(doc[3])
                out.roots.add(root)
                blob, crc = vec if vec is not None else (None, None)
                if not is_vector_blob(blob, dim) or zlib.crc32(blob) != crc:
                    out.damaged.append(
                        DamagedDocument(
                            decode_text(doc[1]),
                            decode_text(doc[2]),
                            root,
                            decode_text(doc[4]),
                            "its stored vector was lost with a damaged page",
                        )  # fmt: skip
                    )
                    continue
                w.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)", doc)
                w.execute("INSERT INTO vectors VALUES (?, ?, ?)", (key, blob, crc))
                w.execute("INSERT INTO changes (key, id, op) VALUES (?, x'', 'U')", (key,))
                out.kept += 1
            w.execute("DELETE FROM sqlite_sequence WHERE name = 'documents'")
            w.execute("INSERT INTO sqlite_sequence VALUES ('documents', ?)", (top,))
            with contextlib.suppress(sqlite3.DatabaseError):
                rows = old.execute("SELECT * FROM failures").fetchall()
                w.executemany("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?)", rows)
        new.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        new_db.close()
        old.close()
    out.backup = folder / f"{DB_FILENAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(db_path, out.backup)
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, db_path)
    return out
