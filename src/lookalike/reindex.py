"""Re-embedding a collection with another model, in place: ``lookalike reindex --model NAME``.

The new vectors are written into a shadow collection (``<home>/reindex/<name>/``)
while the old one keeps answering searches; when every document has its new
vector the two folders are swapped in one step (Linux ``renameat2`` with
``RENAME_EXCHANGE``; elsewhere two renames) and the old one is deleted.

Resumable: the shadow commits every batch, and a marker (``reindex.json``) names
the model it is being filled with. A run killed at any moment (kill -9 included)
continues where it stopped when run again with the same model; with another
model the shadow is discarded and started afresh. A shadow folder without its
marker is a leftover (the old collection after a swap, or a shadow killed while
being created) and is deleted.

Documents are re-embedded from their files, as recorded in the collection (not by
scanning the folders again). Files that are gone or no longer decode are left out
of the new collection and reported, as the next ``lookalike index`` would do.
Other processes that hold the collection open keep reading the old vectors until
they open it again (a running web server: restart it).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lookalike.config import Settings
from lookalike.core_split import usable_cores
from lookalike.decode_pool import DecodePool
from lookalike.errors import ConfigError, NotFoundError, StoreError
from lookalike.indexer import IndexProgress, SkippedFile
from lookalike.models.base import Embedder
from lookalike.records import ModelInfo, Record
from lookalike.store.local import DB_FILENAME, LocalStore

__all__ = ["MARKER", "REINDEX_FOLDER", "ReindexReport", "reindex_collection", "shadow_folder"]

REINDEX_FOLDER = "reindex"
MARKER = "reindex.json"
_READ_BATCH = 256
_MAX_PASSES = 3  # documents added by another process while we run are picked up this often

ProgressFn = Callable[[IndexProgress], None]


@dataclass
class ReindexReport:
    """``embedded`` got a new vector now; ``resumed`` had one from an interrupted run;
    ``reused`` shared a file's content with an embedded one; ``skipped`` were left out."""

    collection: str
    previous_model: str | None
    model: str
    total: int = 0
    embedded: int = 0
    resumed: int = 0
    reused: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    restarted: bool = False  # a shadow for another model was discarded
    swapped: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "previous_model": self.previous_model,
            "model": self.model,
            "total": self.total,
            "embedded": self.embedded,
            "resumed": self.resumed,
            "reused": self.reused,
            "skipped": [s.to_dict() for s in self.skipped],
            "restarted": self.restarted,
            "swapped": self.swapped,
            "seconds": round(self.seconds, 3),
        }


def shadow_folder(settings: Settings) -> Path:
    """Where the new vectors of ``settings.collection`` are built."""
    return settings.home / REINDEX_FOLDER / settings.collection


def reindex_collection(
    settings: Settings, embedder: Embedder, *, progress: ProgressFn | None = None
) -> ReindexReport:
    """Re-embed every document of the local collection with ``embedder``, then swap.

    Raises ConfigError for a non-local store, NotFoundError for a missing collection
    and the model's errors before any work when its weights are missing.
    """
    started = time.perf_counter()
    if not settings.is_local_store:
        raise ConfigError(
            "reindex works on local collections; for Elasticsearch, index into a new "
            "collection with the new model (`lookalike index --collection NEW --model NAME`)",
            field="store",
        )
    live_dir, shadow_dir = settings.collection_dir, shadow_folder(settings)
    if not (live_dir / DB_FILENAME).is_file():
        raise NotFoundError(
            f"collection {settings.collection!r} does not exist in {settings.home}; "
            "index it with `lookalike index FOLDER` first",
            field="collection",
        )
    embedder.load_images()  # missing weights fail here, before any work
    info = embedder.info
    report = ReindexReport(settings.collection, None, info.model_id)
    say = progress or (lambda _p: None)
    live = LocalStore(live_dir, settings.collection)
    try:
        # the collection's writer lock, as an index run takes it: a second reindex, or an
        # index run whose writes the swap would leave behind, waits or is refused
        with live.writer(what="reindex"):
            _clear_leftovers(live_dir, shadow_dir)
            current = live.model
            report.previous_model = current.model_id if current is not None else None
            if current == info:
                report.total = live.count()
                report.seconds = time.perf_counter() - started
                return report
            shadow, report.restarted = _open_shadow(
                shadow_dir, settings.collection, info, live.vector_precision
            )
            try:
                _fill(live, shadow, embedder, settings, report, say)
                shadow.flush()
            finally:
                shadow.close()
            _swap(live_dir, shadow_dir)
            report.swapped = True
    finally:
        live.close()
    report.seconds = time.perf_counter() - started
    return report


# -- the shadow -----------------------------------------------------------------------------------


def _clear_leftovers(live_dir: Path, shadow_dir: Path) -> None:
    """Finish what a run killed after its swap left: the marker in the live collection,
    the old collection (a shadow folder without a marker)."""
    (live_dir / MARKER).unlink(missing_ok=True)
    if shadow_dir.is_dir() and not (shadow_dir / MARKER).is_file():
        shutil.rmtree(shadow_dir)


def _open_shadow(
    folder: Path, name: str, info: ModelInfo, precision: str
) -> tuple[LocalStore, bool]:
    """The shadow store for ``info`` (resumed when it was being filled for that model),
    storing vectors in the live collection's ``precision``."""
    restarted = False
    marker = folder / MARKER
    if marker.is_file():
        try:
            recorded = ModelInfo.from_dict(json.loads(marker.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        if recorded != info:
            shutil.rmtree(folder)
            restarted = True
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        tmp = folder / (MARKER + ".tmp")
        tmp.write_text(json.dumps(info.to_dict()), encoding="utf-8")
        os.replace(tmp, marker)
    shadow = LocalStore(folder, name, vector_precision=precision)
    shadow.bind_model(info)
    return shadow, restarted


def _fill(
    live: LocalStore,
    shadow: LocalStore,
    embedder: Embedder,
    settings: Settings,
    report: ReindexReport,
    say: ProgressFn,
) -> None:
    """Give every live document its new vector in ``shadow``; drop what left ``live``."""
    prep = embedder.image_prep
    skipped: set[str] = set()
    workers = max(1, usable_cores() - 1)
    with DecodePool(workers, max_pixels=settings.max_pixels, prep=prep) as pool:
        for attempt in range(_MAX_PASSES):
            report.total = live.count()
            done = 0
            missing: list[Record] = []
            live_ids: set[str] = set()
            for batch in live.iter_records(_READ_BATCH):
                live_ids.update(r.id for r in batch)
                have = {r.id for r in shadow.get([r.id for r in batch], with_vectors=False)}
                todo = [r for r in batch if r.id not in have and r.id not in skipped]
                done += len(batch) - len(todo)
                missing.extend(todo)
            if attempt == 0:
                report.resumed = done  # vectors an interrupted run had already made
            say(IndexProgress("reindex", done, report.total, live.collection))
            if not missing:
                gone = [r.id for b in shadow.iter_records(_READ_BATCH) for r in b]
                shadow.delete([i for i in gone if i not in live_ids])
                return

            def tick(n: int, done: int = done) -> None:
                say(IndexProgress("reindex", done + n, report.total, live.collection))

            _embed(missing, pool, shadow, embedder, settings.batch_size, report, skipped, tick)
    raise StoreError(
        f"collection {live.collection!r} kept changing while it was re-embedded; "
        "run `lookalike reindex` again when no indexing is running"
    )


def _embed(
    records: list[Record],
    pool: DecodePool,
    shadow: LocalStore,
    embedder: Embedder,
    batch_size: int,
    report: ReindexReport,
    skipped: set[str],
    tick: Callable[[int], None],
) -> None:
    by_path = {r.path: r for r in records}
    batch: list[tuple[Record, Any]] = []
    count = 0

    def flush() -> None:
        nonlocal batch, count
        if not batch:
            return
        vectors = embedder.embed_images([image for _, image in batch])
        shadow.upsert([replace(r, vector=v) for (r, _), v in zip(batch, vectors, strict=True)])
        report.embedded += len(batch)
        count += len(batch)
        batch = []
        tick(count)

    for start in range(0, len(records), _READ_BATCH):
        chunk = records[start : start + _READ_BATCH]
        known = shadow.find_by_hash(list({r.sha256 for r in chunk}))
        fresh = []
        for record in chunk:
            source = known.get(record.sha256)
            if source is not None and source.vector is not None:
                shadow.upsert([replace(record, vector=source.vector)])
                report.reused += 1
                count += 1
            else:
                fresh.append(record)
        for result in pool.decode([r.path for r in fresh]):
            record = by_path[result.path]
            if result.error is not None or result.image is None:
                report.skipped.append(SkippedFile(result.path, result.error or "not decoded"))
                skipped.add(record.id)
                count += 1
                continue
            batch.append((record, result.image))
            if len(batch) >= batch_size:
                flush()
        flush()


# -- the swap -------------------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise StoreError(
        f"cannot swap {a} and {b} ({os.strerror(err)}); check the folders' permissions"
    )


def _swap(live_dir: Path, shadow_dir: Path) -> None:
    """Put the shadow in the collection's place and delete the old collection."""
    if not _exchange(live_dir, shadow_dir):
        old = shadow_dir.with_name(shadow_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(live_dir, old)  # not atomic here: the collection is missing for a moment
        os.replace(shadow_dir, live_dir)
        os.replace(old, shadow_dir)
    (shadow_dir / MARKER).unlink(missing_ok=True)  # the old collection now: a leftover
    (live_dir / MARKER).unlink(missing_ok=True)
    shutil.rmtree(shadow_dir, ignore_errors=True)
