"""The SQLite database under a local collection: connections, schema, migrations.

SQLite in WAL mode is the truth of a local collection. Durability choice: with
``journal_mode=WAL`` a commit appends the transaction to the ``-wal`` file with
``write()`` before it returns, so a process killed with SIGKILL right after a
commit loses nothing; ``synchronous=NORMAL`` only gives up durability of the
last transactions on power loss or an OS crash, never on a process crash.

Strings that come from the file system (ids, paths) are stored as UTF-8 BLOBs
encoded with ``surrogateescape``, so a file name that is not valid UTF-8 round-
trips exactly instead of failing the whole batch; BLOBs compare with memcmp,
which for UTF-8 is code point order, the same as Python's ``str`` order.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from lookalike.errors import StoreError, StoreUnavailableError

__all__ = ["DB_FILENAME", "MIGRATIONS", "Database", "decode_text", "encode_text"]

log = logging.getLogger(__name__)

DB_FILENAME = "store.db"
APP_MARK = "lookalike-collection"


def encode_text(value: str) -> bytes:
    """A str from the file system as stored bytes (lone surrogates survive)."""
    return value.encode("utf-8", "surrogateescape")


def decode_text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    return bytes(value).decode("utf-8", "surrogateescape")


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


def _m_regions(conn: sqlite3.Connection) -> None:
    """Region tile vectors (``lookalike index --regions``); see store/local/regions.py."""
    from lookalike.store.local.regions import migrate_regions

    migrate_regions(conn)


#: Named, ordered migrations; the schema version is the number applied (PRAGMA user_version).
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _m001_initial),
    ("regions", _m_regions),
]


class Database:
    """One SQLite file, one connection per thread, explicit transactions.

    ``read()`` gives a consistent snapshot across several statements; ``write()``
    takes the write lock up front (BEGIN IMMEDIATE) so that concurrent writers
    wait on ``busy_timeout`` instead of failing on a lock upgrade.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0, mmap_bytes: int = 1 << 30):
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._mmap_bytes = mmap_bytes
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self.errors("open"):
            self._migrate(self.conn())
            self.uuid = self.get_meta("uuid") or ""

    # -- connections -------------------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the collection database {self.path} is closed; open the store again")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self.errors("open"):
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # explicit BEGIN/COMMIT only
                # only its own thread uses it, but close() may come from another
                check_same_thread=False,
            )
            try:
                # Only takes effect while the file is still empty (a new collection): a
                # row holding a 512-d float32 vector is ~2 KB, and 4 KB pages fit only
                # one such row; 16 KB pages fit seven (4.6 bytes per dimension, not 8).
                conn.execute("PRAGMA page_size=16384")
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreUnavailableError(
                        f"{self.path}: SQLite could not switch to WAL mode (got {mode!r}); "
                        "put the collection on a local file system that supports it"
                    )
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA journal_size_limit=67108864")  # trim the WAL after checkpoints
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
                conn.execute(f"PRAGMA mmap_size={int(self._mmap_bytes)}")
                conn.execute("PRAGMA cache_size=-16384")
            except BaseException:
                conn.close()
                raise
        with self._lock:
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same snapshot."""
        conn = self.conn()
        with self.errors("read"):
            if conn.in_transaction:  # nested use inside write()/read(): same snapshot
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends, rolled back on any error."""
        conn = self.conn()
        with self.errors("write"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors into StoreError subclasses that name the file and a next step."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: sqlite3.DatabaseError, action: str) -> StoreError:
        text = str(exc)
        low = text.lower()
        if "not a database" in low or "malformed" in low or "file is encrypted" in low:
            return StoreUnavailableError(
                f"{self.path} is not a readable lookalike collection database ({text}); "
                "move the file away to keep it, or delete the collection folder "
                f"{self.path.parent} and index again"
            )
        if "locked" in low or "busy" in low:
            return StoreUnavailableError(
                f"{self.path} stayed locked by another process for more than "
                f"{self._busy_timeout_s:g} s while trying to {action}; try again when the "
                "other lookalike process has finished"
            )
        if "unable to open" in low or "readonly" in low or "read-only" in low or "disk i/o" in low:
            return StoreUnavailableError(
                f"cannot {action} {self.path} ({text}); check that the folder exists, is "
                "writable and is on a local disk with free space"
            )
        if "full" in low:
            return StoreUnavailableError(
                f"cannot {action} {self.path}: the disk is full; free some space and try again"
            )
        return StoreError(f"SQLite error while trying to {action} {self.path}: {text}")

    # -- schema ------------------------------------------------------------------------

    def _migrate(self, conn: sqlite3.Connection) -> None:
        latest = len(MIGRATIONS)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == latest:
            return
        if version > latest:
            raise StoreUnavailableError(
                f"{self.path} was written by a newer lookalike (schema {version}, this one "
                f"knows up to {latest}); upgrade lookalike to open it"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])  # re-read under lock
            if version == 0:
                foreign = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                ).fetchone()[0]
                if foreign:
                    raise StoreUnavailableError(
                        f"{self.path} is an SQLite database but not a lookalike collection; "
                        "move it away or choose another collection name"
                    )
            for number in range(version, latest):
                name, step = MIGRATIONS[number]
                log.info("%s: applying migration %d (%s)", self.path, number + 1, name)
                step(conn)
                conn.execute(f"PRAGMA user_version={number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        with self.errors("read"):
            return int(self.conn().execute("PRAGMA user_version").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        with self.errors("read"):
            row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def head(self) -> int:
        """The change-log head: the seq of the latest committed change (0 when none)."""
        with self.errors("read"):
            row = self.conn().execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0] or 0)
