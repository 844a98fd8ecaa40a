"""Indexer: scan → diff → hash → decode (worker processes) → embed (batches) → upsert → remove.

Incremental and resumable: every batch is committed as it is embedded, so a run
killed at any moment continues where it stopped, and ids (derived from the
absolute path) make a re-run replace rather than duplicate. Files are compared
by (size, mtime) first and by content hash only when those changed; a file whose
content is already indexed under another path (a rename or a copy) reuses that
vector instead of being decoded and embedded again. A file that failed (unreadable,
not decodable) is remembered with its size, mtime and hash, and skipped while it
stays the same (``retry_failed`` tries again), so a folder with a few broken files
is re-checked without loading the model. A run holds the store's writer lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.core_split import CoreSplit, set_torch_threads, torch_threads
from lookalike.decode_pool import DecodePool, DecodeResult
from lookalike.errors import NotFoundError
from lookalike.images import is_image_name
from lookalike.models.base import Embedder
from lookalike.records import FileState, Record
from lookalike.regions import Region, RegionSpec
from lookalike.scan import ScannedFile, ScanProblem, scan
from lookalike.store.base import DamagedDocument, FailedFile, Store

__all__ = ["IndexProgress", "IndexReport", "Indexer", "SkippedFile", "document_id"]

log = logging.getLogger(__name__)

_MTIME_TOLERANCE = 1e-3  # seconds; some backends keep milliseconds only
_HASH_CHUNK = 1 << 20


def document_id(path: str) -> str:
    """Stable id of the document at an absolute POSIX path: a file always gets the same id."""
    return hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=10).hexdigest()


@dataclass
class SkippedFile:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class IndexReport:
    """What one run did. ``indexed`` were embedded; ``reused`` got the vector of identical
    content already indexed (renames, copies); ``updated`` only changed metadata."""

    indexed: int = 0
    reused: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    #: time in the decode-and-embed phase (after the model loaded): the embedding rate's clock
    embed_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """The embedding rate: images embedded per second of the decode-and-embed phase
        (scanning, hashing and loading the model are not in it)."""
        return self.indexed / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "reused": self.reused,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [s.to_dict() for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


@dataclass
class IndexProgress:
    """Reported through the progress callback. ``phase`` is scan, check, load (the image
    model: done 0 before, 1 after), embed or remove; ``total`` is None while unknown
    (during the scan)."""

    phase: str
    done: int
    total: int | None
    root: str


ProgressFn = Callable[[IndexProgress], None]


@dataclass
class _Pending:
    file: ScannedFile
    previous: FileState | None
    sha256: str = ""


@dataclass
class _Failures:
    """Failed files of one root: those remembered from earlier runs, and this run's."""

    before: dict[str, FailedFile]
    now: list[FailedFile] = field(default_factory=list)
    still: set[str] = field(default_factory=set)  # remembered, unchanged, skipped again

    def add(self, item: _Pending, reason: str) -> None:
        f = item.file
        self.now.append(FailedFile(f.relpath, f.size, f.mtime, item.sha256, reason))

    def forget(self, whole_root: bool, relpath: str | None) -> list[str]:
        """Remembered relpaths that no longer fail (indexed since, changed, or gone)."""
        failing = self.still | {f.relpath for f in self.now}
        scope = self.before if whole_root else {relpath: None} if relpath in self.before else {}
        return [rel for rel in scope if rel not in failing]


class Indexer:
    def __init__(self, store: Store, embedder: Embedder, settings: Settings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        #: the core split of the last run's embedding phase (how it decided, for benchmarks)
        self.split: CoreSplit | None = None
        self._spec: RegionSpec | None = None
        self._seconds = [0.0, 0.0]  # embedding seconds of this run: whole images, region tiles
        #: a new collection, bound once its model has loaded in the background of the
        #: first decodes (``_bind_model``, ``_embed``)
        self._bind_pending = False

    def index(
        self,
        paths: Sequence[str | Path],
        *,
        progress: ProgressFn | None = None,
        retry_failed: bool = False,
        wait: bool = False,
        on_wait: Callable[[str], None] | None = None,
        regions: bool = False,
    ) -> IndexReport:
        """Bring the collection up to date with the images under ``paths`` (folders or files).

        Holds the collection's writer lock: another run on it raises StoreBusyError, or
        with ``wait`` is waited for (``on_wait`` hears about it). Files that failed
        before and have not changed are skipped unless ``retry_failed``. ``regions``
        turns region tiles on for this collection, recorded in it, so that every later
        run embeds them too (``lookalike.regions``); images indexed before get theirs on
        the next run."""
        started = time.perf_counter()
        roots = [_absolute(p) for p in paths]
        for root in roots:
            if not os.path.exists(root):
                raise NotFoundError(
                    f"{root} does not exist; give a folder or an image file", field="path"
                )
        with self.store.writer(wait=wait, on_wait=on_wait):
            self._bind_model(progress or (lambda _p: None), roots[0] if roots else "")
            if regions and self.store.region_spec is None:
                self.store.set_region_spec(RegionSpec())
            self._spec = self.store.region_spec
            self._seconds = [0.0, 0.0]
            report = IndexReport()
            for root in roots:
                self._index_root(root, report, progress or (lambda _p: None), retry_failed)
            self._bind_now(progress or (lambda _p: None), roots[0] if roots else "")
            if self._spec is not None and self._seconds[0] > 0:
                self.store.record_region_cost(*self._seconds)
            self.store.flush()
        report.seconds = time.perf_counter() - started
        return report

    def reembed(
        self, documents: Sequence[DamagedDocument], *, progress: ProgressFn | None = None
    ) -> IndexReport:
        """Embed these documents again from their files (``lookalike check --repair``: their
        stored vectors were damaged and removed). A file that is gone is reported skipped."""
        started = time.perf_counter()
        report = IndexReport()
        with self.store.writer(what="check --repair"):
            self._bind_model(progress or (lambda _p: None), "")
            by_root: dict[str, list[_Pending]] = {}
            for doc in documents:
                try:
                    st = os.stat(doc.path)
                except OSError as exc:
                    report.skipped.append(SkippedFile(doc.path, f"cannot re-embed: {exc.strerror}"))
                    continue
                file = ScannedFile(doc.path, doc.root, doc.relpath, st.st_size, st.st_mtime)
                by_root.setdefault(doc.root, []).append(_Pending(file, None))
            for root, pending in by_root.items():
                fn = progress or (lambda _p: None)
                to_embed = self._settle_by_hash(pending, report, fn, root, _Failures({}))
                self._embed(to_embed, report, fn, root, _Failures({}))
            self.store.flush()
        report.seconds = time.perf_counter() - started
        return report

    def _bind_model(self, progress: ProgressFn, root: str) -> None:
        """Bind the store to the embedder's model, failing before any work when the weights
        are missing. A collection already bound to this very model, whose weights are on
        disk, does not load it here: an unchanged folder is then re-checked in a second
        instead of after loading the model, which loads when a file needs embedding."""
        bound = self.store.model
        if (
            bound is not None
            and self.embedder.preprocess is not None
            and (bound.model_id, bound.preprocess)
            == (self.embedder.model_id, self.embedder.preprocess)
            and self.embedder.weights_on_disk()
        ):
            return
        if (
            bound is None
            and self.embedder.preprocess is not None
            and self.embedder.weights_on_disk()
        ):
            # A new collection: nothing to compare with, and the weights are there, so the
            # model loads while the first images decode (``_embed``) and the collection is
            # bound before the first write. A run that embeds nothing binds at its end.
            self._bind_pending = True
            return
        self._load_model(progress, root)
        self.store.bind_model(self.embedder.info)

    def _bind_now(self, progress: ProgressFn, root: str) -> None:
        """Load the model and bind the new collection to it, if ``_bind_model`` left that."""
        if self._bind_pending:
            self._load_model(progress, root)
            self.store.bind_model(self.embedder.info)
            self._bind_pending = False

    def _load_model(self, progress: ProgressFn, root: str) -> None:
        """Load the image model, saying so: it takes seconds, before any image is embedded."""
        progress(IndexProgress("load", 0, 1, root))
        self.embedder.load_images()
        progress(IndexProgress("load", 1, 1, root))

    # -- one root ------------------------------------------------------------------------

    def _index_root(
        self, target: str, report: IndexReport, progress: ProgressFn, retry_failed: bool
    ) -> None:
        single_file = os.path.isfile(target)
        root = os.path.dirname(target) if single_file else target
        failures = _Failures(self.store.failed_files(root))

        def on_problem(problem: ScanProblem) -> None:
            report.skipped.append(SkippedFile(problem.path, problem.reason))

        scanned: list[ScannedFile] = []
        for f in scan(target, on_problem=on_problem):
            scanned.append(f)
            if len(scanned) % 1000 == 0:
                progress(IndexProgress("scan", len(scanned), None, root))
        progress(IndexProgress("scan", len(scanned), len(scanned), root))

        known = {s.relpath: s for s in self.store.manifest(root)}
        # documents indexed before regions were turned on get their tiles now
        no_tiles = self.store.ids_missing_regions(root, self._spec) if self._spec else set()
        pending: list[_Pending] = []
        for f in scanned:
            prev = known.pop(f.relpath, None)
            if (
                prev is not None
                and prev.size == f.size
                and abs(prev.mtime - f.mtime) <= _MTIME_TOLERANCE
                and prev.id not in no_tiles
            ):
                report.unchanged += 1
            elif prev is None and not retry_failed and self._failed_before(f, failures, report):
                continue
            else:
                pending.append(_Pending(f, prev))

        to_embed = self._settle_by_hash(pending, report, progress, root, failures)
        self._embed(to_embed, report, progress, root, failures)
        relpath = os.path.basename(target) if single_file else None
        self.store.remember_failures(root, failures.now, failures.forget(not single_file, relpath))

        if not single_file:
            gone = [s for s in known.values() if _should_remove(os.path.join(root, s.relpath))]
            if gone:
                progress(IndexProgress("remove", 0, len(gone), root))
                self.store.delete([s.id for s in gone])
                report.removed += len(gone)
                progress(IndexProgress("remove", len(gone), len(gone), root))

    @staticmethod
    def _failed_before(f: ScannedFile, failures: _Failures, report: IndexReport) -> bool:
        """True (and reported skipped) when ``f`` failed before and has not changed since:
        same size and mtime, or same size and content hash (a touched file)."""
        old = failures.before.get(f.relpath)
        if old is None or old.size != f.size:
            return False
        if abs(old.mtime - f.mtime) > _MTIME_TOLERANCE:
            digest = _hash_file(f.path) if old.sha256 else None
            if digest != old.sha256:
                return False
            failures.now.append(FailedFile(f.relpath, f.size, f.mtime, old.sha256, old.reason))
        failures.still.add(f.relpath)
        report.skipped.append(
            SkippedFile(f.path, f"failed before: {old.reason} (unchanged; --retry-failed retries)")
        )
        return True

    def _settle_by_hash(
        self,
        pending: list[_Pending],
        report: IndexReport,
        progress: ProgressFn,
        root: str,
        failures: _Failures,
    ) -> list[_Pending]:
        """Hash changed/new files; keep vectors where the content is already indexed."""
        to_embed: list[_Pending] = []
        for start, chunk in _chunks(pending, 256):
            progress(IndexProgress("check", start, len(pending), root))
            with ThreadPoolExecutor(max_workers=2) as pool:
                hashes = list(pool.map(lambda p: _hash_file(p.file.path), chunk))
            hashed: list[_Pending] = []
            for item, digest in zip(chunk, hashes, strict=True):
                if isinstance(digest, SkippedFile):
                    report.skipped.append(digest)
                    failures.add(item, digest.reason)
                    if item.previous is not None:  # was indexed, now unreadable
                        self._drop_stale(item.previous, report)
                    continue
                item.sha256 = digest
                hashed.append(item)
            known = self.store.find_by_hash(list({p.sha256 for p in hashed}))
            tiles = self._tiles_of(list(known.values()))
            reused: list[Record] = []
            for item in hashed:
                source = known.get(item.sha256)
                if source is None or source.vector is None or source.id not in tiles:
                    to_embed.append(item)
                    continue
                reused.append(
                    _record(item, source.format, source.width, source.height, source.vector)
                )
                reused[-1].regions = tiles[source.id]
                if item.previous is not None and item.previous.sha256 == item.sha256:
                    report.updated += 1
                else:
                    report.reused += 1
            if reused:
                self.store.upsert(reused)
        progress(IndexProgress("check", len(pending), len(pending), root))
        return to_embed

    def _embed(
        self,
        items: list[_Pending],
        report: IndexReport,
        progress: ProgressFn,
        root: str,
        failures: _Failures,
    ) -> None:
        """Decode in worker processes while this thread embeds, the cores split as
        ``lookalike.core_split`` explains (and re-split as the batches show the mix)."""
        if not items:
            return
        loader = _Loader(self.embedder.load_images) if self._bind_pending else None
        if loader is None:
            self._load_model(progress, root)  # before the clocks start (core_split, the rate)
        else:  # a new collection: the first images decode while the model loads
            progress(IndexProgress("load", 0, 1, root))
        started = time.perf_counter()
        by_path = {p.file.path: p for p in items}
        batch: list[tuple[_Pending, DecodeResult]] = []
        done = 0
        decode_cpu = 0.0  # worker CPU seconds since the last batch
        if loader is None:  # else once the model has loaded (``_loaded``)
            progress(IndexProgress("embed", 0, len(items), root))
        split = CoreSplit(fixed_workers=self.settings.decode_workers)
        self.split = split
        bs = self.settings.batch_size
        with (
            torch_threads(),
            DecodePool(
                split.split.workers,
                max_pixels=self.settings.max_pixels,
                max_workers=max(split.cores, split.split.workers),
                buffer=max(16, 2 * bs),
                prep=self.embedder.image_prep,
                regions=self._spec,
            ) as pool,
        ):
            set_torch_threads(split.split.threads)
            for result in pool.decode(list(by_path)):
                item = by_path[result.path]
                decode_cpu += result.seconds
                if result.error is not None:
                    report.skipped.append(SkippedFile(result.path, result.error))
                    failures.add(item, result.error)
                    if item.previous is not None:
                        self._drop_stale(item.previous, report)
                    done += 1
                    continue
                batch.append((item, result))
                if len(batch) >= bs:
                    if loader is not None:
                        started = self._loaded(loader, split, progress, root, len(items))
                        loader = None
                    count, seconds = self._flush_batch(batch, report)
                    done += count
                    batch = []
                    change = split.observe(count, decode_cpu, seconds)
                    decode_cpu = 0.0
                    if change is not None:
                        log.debug("core split now %s", change)
                        pool.set_workers(change.workers)
                        set_torch_threads(change.threads)
                    progress(IndexProgress("embed", done, len(items), root))
            if loader is not None:
                started = self._loaded(loader, split, progress, root, len(items))
            done += self._flush_batch(batch, report)[0]
        report.embed_seconds += time.perf_counter() - started
        progress(IndexProgress("embed", done, len(items), root))

    def _loaded(
        self, loader: _Loader, split: CoreSplit, progress: ProgressFn, root: str, total: int
    ) -> float:
        """Wait for the background load (its error is raised here), bind the new collection
        and give torch the split's threads; the embedding clock starts now."""
        loader.wait()
        progress(IndexProgress("load", 1, 1, root))
        progress(IndexProgress("embed", 0, total, root))
        self.store.bind_model(self.embedder.info)
        self._bind_pending = False
        set_torch_threads(split.split.threads)  # torch may have loaded only now
        return time.perf_counter()

    def _flush_batch(
        self, batch: list[tuple[_Pending, DecodeResult]], report: IndexReport
    ) -> tuple[int, float]:
        """Embed and store one batch; returns how many and the seconds embedding took."""
        if not batch:
            return 0, 0.0
        images = [r.image for _, r in batch if r.image is not None]
        assert len(images) == len(batch)  # decoded results always carry their pixels
        started = time.perf_counter()
        vectors = self.embedder.embed_images(images)
        whole = time.perf_counter() - started
        tiles = self._embed_tiles([r for _, r in batch])
        seconds = time.perf_counter() - started
        self._seconds[0] += whole
        self._seconds[1] += seconds - whole
        records = []
        for (item, result), vector, regions in zip(batch, vectors, tiles, strict=True):
            info = result.info
            assert info is not None  # decoded results always carry their header info
            records.append(_record(item, info.format, info.width, info.height, vector))
            records[-1].regions = regions
        self.store.upsert(records)
        report.indexed += len(records)
        return len(records), seconds

    def _embed_tiles(self, results: list[DecodeResult]) -> list[list[Region] | None]:
        """The region vectors of each result (None for all when regions are off), embedded
        in batches of ``batch_size`` tiles."""
        if self._spec is None:
            return [None] * len(results)
        flat = [(i, box, tile) for i, r in enumerate(results) for box, tile in r.tiles]
        out: list[list[Region] | None] = [[] for _ in results]
        bs = max(1, self.settings.batch_size)
        for start in range(0, len(flat), bs):
            part = flat[start : start + bs]
            vectors = self.embedder.embed_images([tile for _, _, tile in part])
            for (i, box, _), vector in zip(part, vectors, strict=True):
                regions = out[i]
                assert regions is not None
                regions.append(Region(box, np.asarray(vector, dtype=np.float32)))
        return out

    def _tiles_of(self, sources: list[Record]) -> dict[str, list[Region] | None]:
        """Tiles a reused record carries over: its source's, None when regions are off, []
        for an image too small for tiles; a source that should have tiles but has none is
        left out (it is embedded again)."""
        if self._spec is None:
            return {s.id: None for s in sources}
        spec = self._spec
        stored = self.store.regions_of([s.id for s in sources])
        out: dict[str, list[Region] | None] = {}
        for s in sources:
            if s.id in stored:
                out[s.id] = stored[s.id]
            elif not spec.applies(s.width, s.height):
                out[s.id] = []
        return out

    def _drop_stale(self, previous: FileState, report: IndexReport) -> None:
        """A file that was indexed but is no longer a usable image leaves the index."""
        self.store.delete([previous.id])
        report.removed += 1


class _Loader:
    """Runs ``load`` in a thread (imports and weight loading: GIL-light next to the decode
    processes, so the second core decodes meanwhile); ``wait`` re-raises its error."""

    def __init__(self, load: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), name="model-load")
        self._thread.daemon = True
        self._thread.start()

    def _run(self, load: Callable[[], None]) -> None:
        try:
            load()
        except BaseException as exc:  # handed to the indexing thread by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _record(item: _Pending, fmt: str, width: int, height: int, vector: Any) -> Record:
    f = item.file
    return Record(
        id=document_id(f.path),
        path=f.path,
        root=f.root,
        relpath=f.relpath,
        format=fmt,
        size=f.size,
        mtime=f.mtime,
        sha256=item.sha256,
        width=width,
        height=height,
        vector=vector,
    )


def _hash_file(path: str) -> str | SkippedFile:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    except OSError as exc:
        return SkippedFile(path, f"cannot read the file: {exc.strerror or exc}")
    return h.hexdigest()


def _should_remove(path: str) -> bool:
    """An indexed file the scan did not see is removed when it is gone or no longer an image
    name; one that still exists (e.g. in a folder the scan could not read) is kept."""
    return not os.path.exists(path) or not is_image_name(os.path.basename(path))


def _absolute(path: str | Path) -> str:
    """An absolute POSIX path; ``~`` is expanded, as a shell would, so "~/Pictures" works."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).as_posix()


def _chunks(items: list[_Pending], size: int) -> Iterator[tuple[int, list[_Pending]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]
