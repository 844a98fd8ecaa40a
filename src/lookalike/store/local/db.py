"""The SQLite database under a local collection: connections, schema, migrations.

SQLite in WAL mode is the truth of a local collection. Durability choice: with
``journal_mode=WAL`` a commit appends the transaction to the ``-wal`` file with
``write()`` before it returns, so a process killed with SIGKILL right after a
commit loses nothing; ``synchronous=NORMAL`` only gives up durability of the
last transactions on power loss or an OS crash, never on a process crash
(``docs/store.md`` says what each failure costs).

A new database is built under a temporary name and linked into place, so a
``store.db`` that exists was complete once: an empty or unreadable one is damage
(StoreUnavailableError), never a new empty collection. A folder that cannot be
written (a read-only mount) is opened read-only (``immutable`` on a read-only mount
with no pending write-ahead log, else ``mode=ro``), and nothing is written there.

Strings that come from the file system (ids, paths) are stored as UTF-8 BLOBs
encoded with ``surrogateescape``, so a file name that is not valid UTF-8 round-
trips exactly instead of failing the whole batch; BLOBs compare with memcmp,
which for UTF-8 is code point order, the same as Python's ``str`` order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from lookalike.errors import CollectionNotFound, StoreError, StoreUnavailableError
from lookalike.store.local.migrations import MIGRATIONS, READABLE_FROM

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "Database",
    "decode_text",
    "encode_text",
    "folder_is_writable",
    "repair_hint",
]

log = logging.getLogger(__name__)

DB_FILENAME = "store.db"
#: SQLite's largest memory map (SQLITE_MAX_MMAP_SIZE, 2 GiB less 64 KiB): pages inside it
#: are read in place, pages beyond it are copied into the connection's page cache (16 MiB,
#: private memory) on every read; a 1M-image collection's 2.7 GB lies mostly inside
_MMAP_MAX = 0x7FFF0000


def encode_text(value: str) -> bytes:
    """A str from the file system as stored bytes (lone surrogates survive)."""
    return value.encode("utf-8", "surrogateescape")


def decode_text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    return bytes(value).decode("utf-8", "surrogateescape")


def repair_hint(collection: str) -> str:
    """The next step for a collection whose stored data failed a check."""
    return (
        f"run `lookalike check --repair -c {collection}` to rebuild what is derived and "
        "re-embed the damaged images from their files"
    )


def _mounted_readonly(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def folder_is_writable(folder: Path) -> bool:
    """False on a read-only mount or a folder this process may not write (not for root)."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    return os.access(folder, os.W_OK)


class Database:
    """One SQLite file, one connection per thread, explicit transactions.

    ``read()`` gives a consistent snapshot across several statements; ``write()``
    takes the write lock up front (BEGIN IMMEDIATE) so that concurrent writers
    wait on ``busy_timeout`` instead of failing on a lock upgrade.
    """

    def __init__(
        self,
        path: Path,
        *,
        collection: str = "",
        create: bool = True,
        readonly: bool | None = None,
        busy_timeout_s: float = 30.0,
        mmap_bytes: int = _MMAP_MAX,
    ):
        self.path = path
        self.collection = collection or path.parent.name
        self._busy_timeout_s = busy_timeout_s
        self._mmap_bytes = mmap_bytes
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        #: opened without write access: searches work, writes raise StoreUnavailableError
        self.readonly = (not folder_is_writable(path.parent)) if readonly is None else readonly
        self._immutable = self._wal_pending = False
        self._prepare_file(create)
        with self.errors("open"):
            conn = self.conn()
            if self.readonly:
                self._check_version(conn)
            else:
                self._migrate(conn)
            self.uuid = self.get_meta("uuid") or ""

    # -- the file ----------------------------------------------------------------------

    def _prepare_file(self, create: bool) -> None:
        """Refuse a missing (unless ``create``), empty or unreadable file; build a new one
        whole under a temporary name so that ``store.db`` never exists half-made."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            if not create or self.readonly:
                raise CollectionNotFound(
                    f"no collection database at {self.path}; index a folder into collection "
                    f"{self.collection!r} first (`lookalike index FOLDER -c {self.collection}`)",
                    field="collection",
                ) from None
            self._create_file()
            return
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot read the collection database {self.path} ({exc.strerror or exc}); "
                "check its permissions and the disk"
            ) from exc
        if size == 0:
            raise StoreUnavailableError(
                f"the collection database {self.path} is empty (0 bytes): collection "
                f"{self.collection!r} lost its data (a failed copy, a full disk or a file "
                "system crash). Restore store.db from a backup, or delete the collection "
                f"(`lookalike drop -c {self.collection} --yes`) and index again"
            )
        if self.readonly:
            wal = self.path.with_name(self.path.name + "-wal")
            self._wal_pending = wal.exists() and wal.stat().st_size > 0
            # On a read-only mount nobody writes through it: with no pending write-ahead
            # log the file is complete and will not change, so SQLite may skip locking
            # (``immutable``). A folder merely not writable by us may have a writer with
            # more rights: plain ``mode=ro`` then, which follows that writer's commits.
            self._immutable = not self._wal_pending and _mounted_readonly(self.path.parent)

    def _create_file(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
        try:
            with self.errors("create"):
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    conn.execute("PRAGMA page_size=16384")
                    conn.execute("PRAGMA journal_mode=WAL")
                    self._migrate(conn)
                finally:
                    conn.close()  # checkpoints and removes the temporary -wal
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, self.path)  # never replaces an existing database
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the collection database {self.path} ({exc.strerror or exc}); "
                "check that the folder is writable and the disk has free space"
            ) from exc
        finally:
            for suffix in ("", "-wal", "-shm"):
                leftover = tmp.with_name(tmp.name + suffix)
                with contextlib.suppress(OSError):
                    leftover.unlink()

    # -- connections -------------------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the collection database {self.path} is closed; open the store again")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self.errors("open"):
            if self.readonly:
                conn = self._connect_readonly()
                with self._lock:
                    self._conns.append(conn)
                self._local.conn = conn
                return conn
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

    def _connect_readonly(self) -> sqlite3.Connection:
        try:
            return self._connect_ro()
        except sqlite3.OperationalError:
            if self._immutable or self._wal_pending:
                raise
            # mode=ro needs the -shm file, which this user cannot create here; with no
            # pending log the file alone is complete
            self._immutable = True
            return self._connect_ro()

    def _connect_ro(self) -> sqlite3.Connection:
        mode = "ro&immutable=1" if self._immutable else "ro"
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode={mode}",
            uri=True,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            conn.execute(f"PRAGMA mmap_size={int(self._mmap_bytes)}")
            conn.execute("PRAGMA cache_size=-16384")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file
        except BaseException:
            conn.close()
            raise
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
        if self.readonly:
            raise StoreUnavailableError(
                f"collection {self.collection!r} is read-only here ({self.path.parent} cannot "
                "be written); searching works, changing it needs write access to the folder"
            )
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
        if "malformed" in low or "corrupt" in low:
            return StoreUnavailableError(
                f"the database of collection {self.collection!r} ({self.path}) is damaged "
                f"({text}); {repair_hint(self.collection)}, or drop it and index again"
            )
        if "not a database" in low or "file is encrypted" in low:
            return StoreUnavailableError(
                f"{self.path} is not a readable lookalike collection database ({text}); "
                "restore it from a backup, or delete the collection "
                f"(`lookalike drop -c {self.collection} --yes`) and index again"
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

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if not READABLE_FROM <= version <= len(MIGRATIONS):
            raise StoreUnavailableError(
                f"{self.path} has schema {version}, this lookalike reads {len(MIGRATIONS)}, and "
                "the folder is read-only; open the collection once where it can be written "
                "(e.g. run `lookalike stats`) to upgrade it, or use a matching lookalike"
            )

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
