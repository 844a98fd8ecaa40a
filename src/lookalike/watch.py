"""Keep a collection current as files change: watch the indexed folders, re-index in batches.

Events (the ``watchdog`` library: inotify on Linux, FSEvents on macOS; polling where
those fail) only say *which folder* needs a pass; the pass itself is a normal
``Indexer.index`` of that folder, so it takes whatever lock the Indexer takes, finds
new, changed, moved and deleted files the usual way, and gives a moved file or folder
its vectors back by content hash. That makes every failure mode end the same way:

- a burst of thousands of files: events are only counted; one pass (after the folder
  has been quiet for ``debounce_s``, or ``max_wait_s`` at most) takes them all;
- a file still being written: the pass waits until the files the events named have
  kept their size and mtime for ``settle_s``;
- a folder that disappears (an unmounted disk) or comes back empty while its images
  are indexed: no pass runs (nothing is removed) until it is back, then one does;
- the process killed: the next start begins with a full pass (a normal scan);
- the inotify watch limit: a warning naming the sysctl to raise, then polling;
- events lost anyway (a kernel queue overflow): a full pass every ``rescan_s``.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.collection import Collection
from lookalike.errors import LookalikeError, NotFoundError
from lookalike.images import is_image_name
from lookalike.indexer import IndexReport

__all__ = ["INOTIFY_HELP", "PassReport", "Watcher", "watch_collection"]

log = logging.getLogger(__name__)

INOTIFY_HELP = (
    "raise the limit with `sudo sysctl fs.inotify.max_user_watches=524288` "
    "(add `fs.inotify.max_user_watches=524288` to /etc/sysctl.conf to keep it) "
    "and restart; polling the folders instead, which costs more"
)


@dataclass
class PassReport:
    """One index pass the watcher ran: which folder, why, and what the Indexer did."""

    root: str
    reason: str  # start, changes, back, rescan
    report: IndexReport | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"root": self.root, "reason": self.reason}
        if self.report is not None:
            out.update(self.report.to_dict())
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class _Root:
    path: str
    present: bool = False
    watch: Any = None
    dirty: str | None = None  # the reason a pass is due, or None
    pending: dict[str, tuple[int, float] | None] = field(default_factory=dict)
    first_event: float = 0.0
    last_event: float = 0.0
    last_pass: float = 0.0


IndexFn = Callable[[list[str]], IndexReport]
ObserverFactory = Callable[[bool], Any]


class Watcher:
    """Watch ``roots`` and run ``index([root])`` (an ``Indexer.index``) when they change.

    ``start()`` runs in a background thread (the first pass reconciles with a full
    scan); ``stop()`` ends it. ``on_pass`` is called after every pass. ``store_has``
    answers whether the store holds documents under a root (to tell an empty,
    unmounted folder from an emptied one).
    """

    def __init__(
        self,
        index: IndexFn,
        roots: Sequence[str | os.PathLike[str]],
        *,
        store_has: Callable[[str], bool] = lambda _root: False,
        debounce_s: float = 1.0,
        settle_s: float = 1.0,
        max_wait_s: float = 30.0,
        rescan_s: float = 600.0,
        tick_s: float = 0.25,
        polling: bool = False,
        poll_interval_s: float = 2.0,
        on_pass: Callable[[PassReport], None] | None = None,
        observer_factory: ObserverFactory | None = None,
    ) -> None:
        if not roots:
            raise NotFoundError("give at least one folder to watch", field="path")
        self._index = index
        self._store_has = store_has
        self.debounce_s, self.settle_s, self.max_wait_s = debounce_s, settle_s, max_wait_s
        self.rescan_s, self.tick_s, self.poll_interval_s = rescan_s, tick_s, poll_interval_s
        self._on_pass = on_pass or (lambda _p: None)
        self._factory = observer_factory or self._default_observer
        self.roots = [_Root(Path(os.path.abspath(os.fspath(r))).as_posix()) for r in roots]
        self.polling = polling
        self.passes = 0
        self.ticks = 0  # rounds of the pass thread (each checks every root)
        self._observer: Any = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the observer and the pass thread; the first pass of each folder runs at once."""
        self._observer = self._new_observer()
        for root in self.roots:
            root.dirty = "start"
        self._thread = threading.Thread(target=self._run, name="lookalike-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; a pass under way finishes first (its batches are committed anyway)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "mode": "polling" if self.polling else "native",
                "passes": self.passes,
                "ticks": self.ticks,
                "roots": [
                    {"path": r.path, "present": r.present, "pending": r.dirty is not None}
                    for r in self.roots
                ],
            }

    # -- observers ------------------------------------------------------------------------

    def _default_observer(self, polling: bool) -> Any:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if polling:
            return PollingObserver(timeout=self.poll_interval_s)
        return Observer()

    def _new_observer(self) -> Any:
        observer = self._factory(self.polling)
        observer.start()
        return observer

    def _schedule(self, root: _Root) -> None:
        """Watch ``root``; on the inotify limit, say how to raise it and switch to polling."""
        handler = _Handler(self, root)
        try:
            root.watch = self._observer.schedule(handler, root.path, recursive=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE) and not self.polling:
                log.warning("cannot watch %s natively: %s; %s", root.path, exc, INOTIFY_HELP)
                self._fall_back_to_polling()
                return
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                root.present, root.watch = False, None
                return
            raise
        root.present = True

    def _fall_back_to_polling(self) -> None:
        old, self.polling = self._observer, True
        try:
            old.stop()
        except (OSError, RuntimeError) as exc:  # a half-started emitter
            log.debug("stopping the native observer: %s", exc)
        self._observer = self._new_observer()
        for root in self.roots:
            root.watch = None
            if _available(root.path):
                self._schedule(root)

    def _unschedule(self, root: _Root) -> None:
        if root.watch is not None:
            try:
                self._observer.unschedule(root.watch)
            except (KeyError, OSError, RuntimeError) as exc:
                log.debug("unscheduling %s: %s", root.path, exc)
        root.watch = None

    # -- events ---------------------------------------------------------------------------

    def note(self, root: _Root, paths: Sequence[str]) -> None:
        """Record that ``paths`` under ``root`` changed (called from the observer's thread)."""
        now = time.monotonic()
        with self._cond:
            if root.dirty is None:
                root.dirty = "changes"
                root.first_event = now
            root.last_event = now
            for p in paths:
                if is_image_name(os.path.basename(p)):
                    root.pending[p] = None
            self._cond.notify_all()

    # -- the pass thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            for root in self.roots:
                if self._stop.is_set():
                    break
                self._check_presence(root)
                reason = self._due(root)
                if reason is not None:
                    self._pass(root, reason)
            with self._cond:
                self.ticks += 1
                self._cond.notify_all()
                self._cond.wait(self.tick_s)

    def _check_presence(self, root: _Root) -> None:
        available = _available(root.path) and not (_empty(root.path) and self._store_has(root.path))
        if available and (not root.present or root.watch is None):
            was_missing = not root.present
            self._unschedule(root)
            self._schedule(root)
            if root.present and was_missing:
                with self._cond:
                    root.dirty = root.dirty if root.dirty == "start" else "back"
        elif not available and root.present:
            log.warning(
                "%s is gone or empty (an unmounted disk?); its images stay indexed "
                "and it is checked again until it is back",
                root.path,
            )
            self._unschedule(root)
            root.present = False

    def _due(self, root: _Root) -> str | None:
        """Why a pass of ``root`` should run now, or None (not due, or files still settling)."""
        now = time.monotonic()
        with self._cond:
            if not root.present:
                return None
            if root.dirty is None:
                if self.rescan_s > 0 and now - root.last_pass >= self.rescan_s:
                    return "rescan"
                return None
            if root.dirty in ("start", "back"):
                return root.dirty
            if now - root.last_event < self.debounce_s and now - root.first_event < self.max_wait_s:
                return None
            pending = list(root.pending)
        if now - root.first_event < self.max_wait_s and not self._settled(root, pending):
            return None
        return root.dirty

    def _settled(self, root: _Root, paths: list[str]) -> bool:
        """True when every named file kept its size and mtime since the last look and was
        last written at least ``settle_s`` ago (so it is probably complete)."""
        settled = True
        wall = time.time()
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue  # gone: the pass removes it
            seen = (st.st_size, st.st_mtime)
            with self._cond:
                before = root.pending.get(p, seen)
                if p in root.pending:
                    root.pending[p] = seen
            if before != seen or wall - st.st_mtime < self.settle_s:
                settled = False
        return settled

    def _pass(self, root: _Root, reason: str) -> None:
        with self._cond:
            root.dirty, root.pending = None, {}
        result = PassReport(root.path, reason)
        try:
            result.report = self._index([root.path])
        except (LookalikeError, OSError) as exc:
            result.error = str(exc)
            log.warning("index pass of %s failed: %s", root.path, exc)
            with self._cond:  # try again after the next quiet period
                if root.dirty is None:
                    root.dirty, root.first_event = "changes", time.monotonic()
                root.last_event = time.monotonic()
        root.last_pass = time.monotonic()
        with self._cond:
            self.passes += 1
        self._on_pass(result)


class _Handler:
    """A watchdog event handler that only tells the watcher which paths changed."""

    def __init__(self, watcher: Watcher, root: _Root) -> None:
        self.watcher, self.root = watcher, root

    def dispatch(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return
        paths = [str(event.src_path)]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(str(dest))
        if event.is_directory or any(is_image_name(os.path.basename(p)) for p in paths):
            self.watcher.note(self.root, paths)


def _available(path: str) -> bool:
    return os.path.isdir(path)


def _empty(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return True


def watch_collection(
    collection: Collection, paths: Sequence[str | os.PathLike[str]], **options: Any
) -> Watcher:
    """A Watcher (not started) of ``paths`` whose passes are ``collection.indexer.index``,
    so they go through the one Indexer path and take whatever lock it takes."""

    def has_documents(root: str) -> bool:
        return next(iter(collection.store.manifest(root)), None) is not None

    def index(roots: list[str]) -> IndexReport:
        return collection.indexer.index(roots)

    return Watcher(index, paths, store_has=has_documents, **options)
