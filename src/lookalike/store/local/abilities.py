"""What a local collection can do beyond the Store contract: the abilities the Store
protocol declares (writer lock, self-check, memory of failed files) and the salvage of a
damaged database, as a mixin of ``LocalStore`` so that the store module keeps to the
contract itself."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from lookalike.errors import StoreUnavailableError
from lookalike.records import ModelInfo
from lookalike.store.base import FailedFile, StoreCheck
from lookalike.store.local.db import DB_FILENAME, Database, decode_text, encode_text
from lookalike.store.local.salvage import Salvaged, salvage_database
from lookalike.store.local.writer_lock import writer_lock

if TYPE_CHECKING:
    from lookalike.store.local.store import LocalStore

__all__ = ["LocalAbilities"]


class LocalAbilities:
    """Mixed into LocalStore, whose attributes and methods these are."""

    collection: str
    folder: Path
    _db: Database
    _model: ModelInfo | None
    _writer_depth: int
    _writer_lock: threading.RLock

    def _require_model(self) -> ModelInfo:
        raise NotImplementedError

    def reset_index(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def writer(
        self,
        *,
        what: str = "index run",
        wait: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """The collection's writer lock (``writer_lock``); re-entrant within this store."""
        if self._db.readonly:
            raise StoreUnavailableError(
                f"collection {self.collection!r} is read-only here ({self.folder} cannot be "
                "written); searching works, changing it needs write access to the folder"
            )
        with self._writer_lock:
            if self._writer_depth:
                self._writer_depth += 1
                try:
                    yield
                finally:
                    self._writer_depth -= 1
                return
            with writer_lock(self.folder, self.collection, what=what, wait=wait, on_wait=on_wait):
                self._writer_depth = 1
                try:
                    yield
                finally:
                    self._writer_depth = 0

    def failed_files(self, root: str) -> dict[str, FailedFile]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT relpath, size, mtime, sha256, reason FROM failures WHERE root = ?",
                (encode_text(root),),
            ).fetchall()
        return {
            decode_text(rel): FailedFile(decode_text(rel), int(size), float(mtime), sha, reason)
            for rel, size, mtime, sha, reason in rows
        }

    def remember_failures(
        self, root: str, failed: Sequence[FailedFile], forget: Sequence[str] = ()
    ) -> None:
        if (not failed and not forget) or self._db.readonly:
            return
        root_b = encode_text(root)
        with self._db.write() as conn:
            conn.executemany(
                "DELETE FROM failures WHERE root = ? AND relpath = ?",
                [(root_b, encode_text(rel)) for rel in forget],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (root_b, encode_text(f.relpath), f.size, f.mtime, f.sha256, f.reason)
                    for f in failed
                ],
            )

    def check(self, *, repair: bool = False) -> StoreCheck:
        """SQLite's integrity check, every vector's checksum, saved index files against the
        database; ``repair`` (under the writer lock) removes damaged documents and rebuilds
        the saved index. See ``store.local.check``."""
        from lookalike.store.local.check import check_local

        return check_local(cast("LocalStore", self), self._db, repair=repair)

    @property
    def database(self) -> Database:
        return self._db

    def salvage(self) -> Salvaged:
        """Rebuild ``store.db`` from its readable rows (``store.local.salvage``), under the
        writer lock, and go on with the new file."""
        with self.writer(what="check --repair"):
            dim = self._require_model().dim
            self.reset_index()
            self._db.close()
            try:
                return salvage_database(self.folder, self.collection, dim=dim)
            finally:
                self._db = Database(
                    self.folder / DB_FILENAME, collection=self.collection, create=False
                )
                self._model = None
