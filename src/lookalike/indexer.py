"""Indexer: scan → diff → hash → decode (worker processes) → embed (batches) → upsert → remove.

Incremental and resumable: every batch is committed as it is embedded, so a run
killed at any moment continues where it stopped, and ids (derived from the
absolute path) make a re-run replace rather than duplicate. Files are compared
by (size, mtime) first and by content hash only when those changed; a file whose
content is already indexed under another path (a rename or a copy) reuses that
vector instead of being decoded and embedded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
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
from lookalike.store.base import Store

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

    @property
    def images_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "reused": self.reused,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [s.to_dict() for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


@dataclass
class IndexProgress:
    """Reported through the progress callback. ``phase`` is scan, check, embed or remove;
    ``total`` is None while unknown (during the scan)."""

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


class Indexer:
    def __init__(self, store: Store, embedder: Embedder, settings: Settings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        #: the core split of the last run's embedding phase (how it decided, for benchmarks)
        self.split: CoreSplit | None = None
        self._spec: RegionSpec | None = None
        self._seconds = [0.0, 0.0]  # embedding seconds of this run: whole images, region tiles

    def index(
        self,
        paths: Sequence[str | Path],
        *,
        progress: ProgressFn | None = None,
        regions: bool = False,
    ) -> IndexReport:
        """Bring the collection up to date with the images under ``paths`` (folders or files).

        ``regions`` turns region tiles on for this collection, recorded in it, so that every
        later run embeds them too (``lookalike.regions``); images indexed before get theirs
        on the next run."""
        started = time.perf_counter()
        roots = [_absolute(p) for p in paths]
        for root in roots:
            if not os.path.exists(root):
                raise NotFoundError(
                    f"{root} does not exist; give a folder or an image file", field="path"
                )
        self._bind_model()
        if regions and self.store.region_spec is None:
            self.store.set_region_spec(RegionSpec())
        self._spec = self.store.region_spec
        self._seconds = [0.0, 0.0]

        report = IndexReport()
        for root in roots:
            self._index_root(root, report, progress or (lambda _p: None))
        if self._spec is not None and self._seconds[0] > 0:
            self.store.record_region_cost(*self._seconds)
        self.store.flush()
        report.seconds = time.perf_counter() - started
        return report

    def _bind_model(self) -> None:
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
        self._load_model()
        self.store.bind_model(self.embedder.info)

    def _load_model(self) -> None:
        self.embedder.load_images()

    # -- one root ------------------------------------------------------------------------

    def _index_root(self, target: str, report: IndexReport, progress: ProgressFn) -> None:
        single_file = os.path.isfile(target)
        root = os.path.dirname(target) if single_file else target

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
            else:
                pending.append(_Pending(f, prev))

        to_embed = self._settle_by_hash(pending, report, progress, root)
        self._embed(to_embed, report, progress, root)

        if not single_file:
            gone = [s for s in known.values() if _should_remove(os.path.join(root, s.relpath))]
            if gone:
                progress(IndexProgress("remove", 0, len(gone), root))
                self.store.delete([s.id for s in gone])
                report.removed += len(gone)
                progress(IndexProgress("remove", len(gone), len(gone), root))

    def _settle_by_hash(
        self, pending: list[_Pending], report: IndexReport, progress: ProgressFn, root: str
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
        self, items: list[_Pending], report: IndexReport, progress: ProgressFn, root: str
    ) -> None:
        """Decode in worker processes while this thread embeds, the cores split as
        ``lookalike.core_split`` explains (and re-split as the batches show the mix)."""
        if not items:
            return
        self._load_model()  # before the clock of the first batch starts (core_split)
        by_path = {p.file.path: p for p in items}
        batch: list[tuple[_Pending, DecodeResult]] = []
        done = 0
        decode_cpu = 0.0  # worker CPU seconds since the last batch
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
                regions=self._spec,
            ) as pool,
        ):
            set_torch_threads(split.split.threads)
            for result in pool.decode(list(by_path)):
                item = by_path[result.path]
                decode_cpu += result.seconds
                if result.error is not None:
                    report.skipped.append(SkippedFile(result.path, result.error))
                    if item.previous is not None:
                        self._drop_stale(item.previous, report)
                    done += 1
                    continue
                batch.append((item, result))
                if len(batch) >= bs:
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
            done += self._flush_batch(batch, report)[0]
        progress(IndexProgress("embed", done, len(items), root))

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
    return Path(os.path.abspath(os.fspath(path))).as_posix()


def _chunks(items: list[_Pending], size: int) -> Iterator[tuple[int, list[_Pending]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]
