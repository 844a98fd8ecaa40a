"""The named, ordered schema migrations of a local collection's ``store.db``.

The schema version is the number of migrations applied (``PRAGMA user_version``);
``Database`` applies the missing ones in one transaction when a collection is opened
for writing, so an existing collection gains new tables and columns on first use.
"""

from __future__ import annotations

import sqlite3
import uuid
import zlib
from collections.abc import Callable

__all__ = ["APP_MARK", "MIGRATIONS", "READABLE_FROM", "SHA256_HEAD"]

APP_MARK = "lookalike-collection"


def _m001_initial(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # key: a stable integer for the vector index, never reused (AUTOINCREMENT);
    # id: the document id, unique. A re-upsert gets a new key (see LocalStore.upsert).
    conn.execute(
        """CREATE TABLE documents (
            key INTEGER PRIMARY KEY AUTOINCREMENT,
            id BLOB NOT NULL UNIQUE,
            path BLOB NOT NULL,
            root BLOB NOT NULL,
            relpath BLOB NOT NULL,
            format TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            sha256 TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX documents_root ON documents(root, id)")
    conn.execute("CREATE INDEX documents_path ON documents(path)")
    conn.execute("CREATE INDEX documents_sha256 ON documents(sha256)")
    # so that selective size / time / format filters need not scan every row
    conn.execute("CREATE INDEX documents_size ON documents(size)")
    conn.execute("CREATE INDEX documents_mtime ON documents(mtime)")
    conn.execute("CREATE INDEX documents_format ON documents(format)")
    # Vectors live in their own table so that scans of the metadata (filters,
    # counts) do not read 2 KB of vector per row.
    conn.execute("CREATE TABLE vectors (key INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
    # The change log: written in the same transaction as every upsert/delete.
    conn.execute(
        """CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            key INTEGER NOT NULL,
            id BLOB NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('U', 'D'))
        )"""
    )
    conn.execute("INSERT INTO meta VALUES ('app', ?)", (APP_MARK,))
    conn.execute("INSERT INTO meta VALUES ('uuid', ?)", (uuid.uuid4().hex,))


def _m002_vector_checksums(conn: sqlite3.Connection) -> None:
    """A CRC-32 per stored vector, so a flipped bit in a BLOB (which SQLite's own page
    checks never see) is caught wherever the vector is read."""
    conn.execute("ALTER TABLE vectors ADD COLUMN crc INTEGER")
    last = 0
    while True:
        rows = conn.execute(
            "SELECT key, vector FROM vectors WHERE key > ? ORDER BY key LIMIT 2000", (last,)
        ).fetchall()
        if not rows:
            return
        conn.executemany(
            "UPDATE vectors SET crc = ? WHERE key = ?",
            [(zlib.crc32(blob), key) for key, blob in rows],
        )
        last = int(rows[-1][0])


def _m003_failed_files(conn: sqlite3.Connection) -> None:
    """Files that failed to index, so an unchanged one is not decoded (and the model not
    loaded) again on every run."""
    conn.execute(
        """CREATE TABLE failures (
            root BLOB NOT NULL,
            relpath BLOB NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            sha256 TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (root, relpath)
        )"""
    )


def _m004_regions(conn: sqlite3.Connection) -> None:
    """Region tile vectors (``lookalike index --regions``, see store/local/regions.py): one
    row per tile of a document's current key, int8 with its scale."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS regions (
            key INTEGER NOT NULL,
            x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
            scale REAL NOT NULL,
            vector BLOB NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS regions_key ON regions(key)")


def _m005_sha256_head_index(conn: sqlite3.Connection) -> None:
    """Index the first 16 hex digits of each content hash instead of all 64.

    ``find_by_hash`` is the only lookup by hash; 64 bits of a SHA-256 tell documents
    apart as well as 256 for finding candidates (the full hash is compared on the row),
    and the index entry shrinks from ~70 to ~25 bytes per document (about 0.1 byte per
    dimension at 512). One transaction: a run killed during it leaves the old index and
    the migration is applied again on the next open.
    """
    conn.execute("DROP INDEX IF EXISTS documents_sha256")
    conn.execute(f"CREATE INDEX IF NOT EXISTS documents_sha256_head ON documents({SHA256_HEAD})")


#: the indexed expression, written exactly so in queries (SQLite matches it by its text)
SHA256_HEAD = "substr(sha256, 1, 16)"

#: The oldest schema this code reads where it cannot migrate (a read-only folder): migration
#: 5 only swaps an index, and hash lookups are correct without it (a scan, not a search).
READABLE_FROM = 4

#: Named, ordered migrations; the schema version is the number applied (PRAGMA user_version).
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _m001_initial),
    ("vector_checksums", _m002_vector_checksums),
    ("failed_files", _m003_failed_files),
    ("regions", _m004_regions),
    ("sha256_head_index", _m005_sha256_head_index),
]
