"""``lookalike check`` for the embedded store: verify the truth and what is derived from it.

Three layers, cheapest first to explain, each able to fail on its own:

1. SQLite's ``PRAGMA integrity_check``: every page, b-tree and index of ``store.db``.
2. Every stored vector against the CRC-32 stored beside it (bit-rot inside a BLOB is
   invisible to SQLite), its length, and one vector per document and no orphans.
3. Every saved HNSW index: its file against the CRC in its stamp, and the code of every
   key in its graph against the database's vector (the graph holds no vectors: search
   rescores its candidates from the database).

``repair`` (under the writer lock) removes the documents whose vectors are bad (the
caller re-embeds them from their files: ``lookalike.checkup``), deletes orphan vectors,
rebuilds SQLite's indexes (REINDEX) when only they are damaged, rebuilds the database from
its readable rows when its tables are damaged (``store.local.salvage``), and replaces every
saved index by one built from the database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.store.base import DamagedDocument, StoreCheck
from lookalike.store.local.db import Database, decode_text
from lookalike.store.local.rows import damaged_rows, is_vector_blob
from lookalike.store.vectorindex.ann_file import AnnFiles, Base
from lookalike.store.vectorindex.derived import codes_match

if TYPE_CHECKING:
    from lookalike.store.local.store import LocalStore

__all__ = ["check_local"]

_BATCH = 2000
_MAX_LINES = 20


def check_local(store: LocalStore, db: Database, *, repair: bool) -> StoreCheck:
    result = StoreCheck(store.collection)
    lock = store.writer(what="check --repair") if repair else contextlib.nullcontext()
    salvaged: list[DamagedDocument] | None = None
    with lock:
        sqlite_ok = _integrity(db, result)
        if not sqlite_ok and repair:
            sqlite_ok = _reindex(db, result)
            if not sqlite_ok and store.model is not None:
                salvaged = _salvage(store, result)
                db = store.database
                sqlite_ok = salvaged is not None
        damaged, orphans = _vectors(store, db, result)
        before = len(result.problems)
        files = _saved_indexes(store, db, result)
        bad_files = len(result.problems) > before
        if repair:
            if damaged:
                store.delete([d.id for d in damaged])
                result.repaired.append(
                    f"removed {len(damaged)} document(s) with damaged vectors, to re-embed"
                )
            if orphans:
                with db.write() as conn:
                    conn.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k in orphans])
                result.repaired.append(f"deleted {len(orphans)} vector(s) without a document")
            if bad_files or salvaged is not None or not sqlite_ok:
                _rebuild_saved_index(store, files, result)
            if not sqlite_ok:
                result.repaired.append(
                    "the database tables themselves are damaged and cannot be repaired in "
                    f"place: drop the collection (`lookalike drop -c {store.collection} --yes`) "
                    "and index its folders again"
                )
    result.damaged = (salvaged or []) + damaged
    return result


def _salvage(store: LocalStore, result: StoreCheck) -> list[DamagedDocument] | None:
    """The documents salvage found without a usable vector; None if salvage failed."""
    try:
        saved = store.salvage()
    except (OSError, sqlite3.DatabaseError, LookalikeError) as exc:
        result.repaired.append(f"rebuilding the database from its readable rows failed: {exc}")
        return None
    result.repaired.append(
        f"rebuilt store.db from its readable rows ({saved.kept} documents kept); the damaged "
        f"file is kept as {saved.backup}"
    )
    if saved.lost_rows:
        result.reindex_roots = sorted(saved.roots)
        result.repaired.append(
            f"{saved.lost_rows} document row(s) could not be read at all; indexing the "
            "collection's folders again adds those images back"
        )
    return saved.damaged


def _integrity(db: Database, result: StoreCheck) -> bool:
    try:
        lines = [str(r[0]) for r in db.conn().execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        lines = [str(exc)]
    except LookalikeError as exc:
        lines = [str(exc)]
    result.checked["sqlite_pages"] = 1
    if lines == ["ok"]:
        return True
    result.problems += [f"SQLite integrity check: {line}" for line in lines[:_MAX_LINES]]
    return False


def _reindex(db: Database, result: StoreCheck) -> bool:
    """REINDEX rebuilds every index b-tree from its table: enough when only those broke."""
    try:
        with db.write() as conn:
            conn.execute("REINDEX")
        ok = [str(r[0]) for r in db.conn().execute("PRAGMA integrity_check").fetchall()] == ["ok"]
    except (sqlite3.DatabaseError, LookalikeError):
        return False
    if ok:
        result.repaired.append("rebuilt SQLite's indexes (REINDEX); the integrity check passes")
    return ok


def _vectors(
    store: LocalStore, db: Database, result: StoreCheck
) -> tuple[list[DamagedDocument], list[int]]:
    model = store.model
    dim = model.dim if model else 0
    damaged: list[DamagedDocument] = []
    seen = 0
    last = 0
    try:
        while True:
            with db.read() as conn:
                rows = conn.execute(
                    "SELECT d.key, d.id, d.path, d.root, d.relpath, v.vector, v.crc "
                    "FROM documents d LEFT JOIN vectors v ON v.key = d.key "
                    "WHERE d.key > ? ORDER BY d.key LIMIT ?",
                    (last, _BATCH),
                ).fetchall()
            if not rows:
                break
            last = int(rows[-1][0])
            seen += len(rows)
            present = [r for r in rows if is_vector_blob(r[5], dim)]
            failing = damaged_rows([r[5] for r in present], [r[6] for r in present])
            bad = {id(present[i]) for i in failing}
            for r in rows:
                reason = (
                    "no stored vector" if r[5] is None
                    else f"stored vector is {len(r[5])} bytes, not {dim * 4} (or {dim * 2})"
                    if not is_vector_blob(r[5], dim)
                    else "stored vector fails its checksum" if id(r) in bad
                    else None
                )  # fmt: skip
                if reason:
                    damaged.append(
                        DamagedDocument(
                            decode_text(r[1]),
                            decode_text(r[2]),
                            decode_text(r[3]),
                            decode_text(r[4]),
                            reason,
                        )  # fmt: skip
                    )
        with db.read() as conn:
            counted = int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
            orphans = [
                int(r[0])
                for r in conn.execute(
                    "SELECT key FROM vectors WHERE key NOT IN (SELECT key FROM documents)"
                )
            ]
    except LookalikeError as exc:
        result.problems.append(f"reading the documents and vectors failed: {exc}")
        return damaged, []
    result.checked["documents"] = seen
    if counted != seen:
        result.problems.append(f"{counted} documents counted but {seen} readable")
    for d in damaged[:_MAX_LINES]:
        result.problems.append(f"{d.path}: {d.reason}")
    if len(damaged) > _MAX_LINES:
        result.problems.append(f"... and {len(damaged) - _MAX_LINES} more damaged vectors")
    if orphans:
        result.problems.append(f"{len(orphans)} stored vector(s) belong to no document")
    return damaged, orphans


def _saved_indexes(store: LocalStore, db: Database, result: StoreCheck) -> AnnFiles:
    files = AnnFiles(store.folder, ef_for=store.index_params.ef_for)
    model = store.model
    stamps = files.stamps()
    result.checked["saved_indexes"] = len(stamps)
    if model is None:
        return files
    head = db.head()
    dtype = store.index_params.kind_for(model.dim)
    for _seq, stamp_path in stamps:
        try:
            base = files.load(stamp_path, db_uuid=db.uuid, dim=model.dim, dtype=dtype, max_seq=head)
        except OSError as exc:
            result.problems.append(f"saved index {stamp_path.name}: unreadable ({exc})")
            continue
        if base is None:
            result.problems.append(
                f"saved index {stamp_path.name}: damaged or not of this database (ignored)"
            )
            continue
        try:
            problem = _compare_codes(store, base, dtype)
        except LookalikeError as exc:
            problem = str(exc)
        finally:
            base.release()
        if problem:
            result.problems.append(f"saved index {stamp_path.name}: {problem}")
    return files


def _compare_codes(store: LocalStore, base: Base, dtype: str) -> str | None:
    """The code of every key in a saved graph against the database's vector (keys deleted
    since the save are skipped: the change log removes them at load)."""
    keys = np.sort(np.asarray(base.index.keys, dtype=np.int64))
    source = store.vector_source()
    for start in range(0, len(keys), _BATCH):
        found, vecs = source.vectors(keys[start : start + _BATCH].tolist())
        if not codes_match(base, found, vecs, dtype):
            return "its codes differ from the database's vectors"
    return None


def _rebuild_saved_index(store: LocalStore, files: AnnFiles, result: StoreCheck) -> None:
    store.reset_index()
    removed = 0
    for entry in list(os.scandir(store.folder)):
        if entry.name.startswith(("ann-", ".ann-")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    status = store.sync_index(persist=True)
    what = "a saved HNSW index" if status.kind == "hnsw" else "the in-memory index"
    result.repaired.append(
        f"removed {removed} saved index file(s); rebuilt {what} from the database"
    )
