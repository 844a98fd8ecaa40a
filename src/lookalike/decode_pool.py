"""Decode images in worker processes, overlapped with whatever the caller does meanwhile.

Workers run ``images.clip_ready`` and send back 224x224 RGB pixels (with a
``RegionSpec``, also the region tiles cut from the same decode), with the CPU
time the decode took (the indexer's core split reads it). A feeder thread keeps
at most ``workers`` decodes running at once, which the caller may change while a
run goes on (``set_workers``), and at most ``buffer`` files decoded or in flight
ahead of the caller, so memory stays flat however many files there are and the
workers keep going while the caller is busy embedding.

A worker that dies (a decoder crashing on a hostile file) does not end the run:
results that were already back are kept, the files that were still in flight are
retried one at a time in a fresh pool, and only the one that kills its worker
again is reported as skipped.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ImageError
from lookalike.image_prep import CLIP_PREP, ImagePrep
from lookalike.images import ImageInfo, clip_and_reduced, model_ready
from lookalike.regions import Box, RegionSpec, cut_tiles, tile_boxes

__all__ = ["DecodePool", "DecodeResult"]

_SUBMIT_RETRIES = 3
_POLL_SECONDS = 1.0  # how often a wait checks that its pool is still alive
_CLOSE_GRACE = 5.0  # seconds running decodes get to finish when the pool closes
_UNSTICK_AFTER = 2.0  # seconds a dropped pool's manager gets to end by itself


@dataclass
class DecodeResult:
    path: str
    image: Image.Image | None = None
    info: ImageInfo | None = None
    error: str | None = None
    #: CPU seconds the worker spent on this file (0 when unknown)
    seconds: float = 0.0
    #: with a RegionSpec: the 224x224 tiles of the image and their boxes (empty when small)
    tiles: list[tuple[Box, Image.Image]] = field(default_factory=list)


#: path, 224x224 pixels, their size, header info, error, CPU seconds, tiles' pixels, tiles' boxes
_Raw = tuple[
    str, bytes | None, tuple[int, int] | None, ImageInfo | None, str | None, float, bytes, list[Box]
]


def _decode_one(
    path: str, max_pixels: int, prep: ImagePrep = CLIP_PREP, regions: RegionSpec | None = None
) -> _Raw:
    """Runs in a worker: never raises for a bad file, returns the reason instead. With
    ``regions``, the same decode also yields the tiles (cut here, in parallel)."""
    started = time.thread_time()
    tiles = b""
    boxes: list[Box] = []
    try:
        if regions is None:
            decoded = model_ready(path, max_pixels=max_pixels, prep=prep)
        else:
            decoded, reduced = clip_and_reduced(
                path, max_pixels=max_pixels, short_side=regions.work_side, prep=prep
            )
            boxes = tile_boxes(decoded.info.width, decoded.info.height, regions)
            tiles = b"".join(t.tobytes() for t in cut_tiles(reduced, boxes))
    except ImageError as exc:
        return path, None, None, None, exc.reason, time.thread_time() - started, b"", []
    except MemoryError:
        return path, None, None, None, "not enough memory to decode this image", 0.0, b"", []
    except Exception as exc:  # a decoder bug on a hostile file must not end the run
        reason = f"cannot decode the image ({type(exc).__name__}: {exc})"
        return path, None, None, None, reason, time.thread_time() - started, b"", []
    img = decoded.image
    seconds = time.thread_time() - started
    return path, img.tobytes(), img.size, decoded.info, None, seconds, tiles, boxes


#: how much lower the decode workers' CPU priority is than their parent's (see _worker_init)
WORKER_NICENESS = 10


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    # Inference threads wait for each other at every layer, so a decoder that pre-empts one
    # of them stalls all of them; at a lower priority the decoders take the cores' idle
    # moments instead (the kernel still gives them ~10% of a contended core, so they are
    # never starved). Measured on 2 cores, 600 icons: 0.80-0.82 of the model-only ceiling
    # against 0.77-0.79 at the same priority.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker once its parent is gone: a parent killed with SIGKILL (``lookalike
    watch`` stopped the hard way) cannot shut it down, and it would wait on its queue forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


@dataclass(eq=False)  # compared and found by identity
class _Run:
    """State shared by one ``decode`` call and its feeder thread (guarded by the pool's lock)."""

    queue: deque[str]
    inflight: deque[tuple[str, Future[_Raw]]]
    stop: bool = False
    paused: bool = False  # the consumer is recovering from a crashed worker
    submitting: bool = False
    fed: bool = False  # every path has been submitted
    failures: int = 0  # submits in a row that found the pool broken


class DecodePool:
    """``workers`` decodes at once (changeable with ``set_workers``, up to ``max_workers``)."""

    def __init__(
        self,
        workers: int,
        *,
        max_pixels: int,
        max_workers: int | None = None,
        buffer: int | None = None,
        prep: ImagePrep = CLIP_PREP,
        regions: RegionSpec | None = None,
    ) -> None:
        self.prep = prep  # what the model wants: size, crop or squash
        self.regions = regions
        self.max_workers = max(1, workers, max_workers or 0)
        self._active = max(1, min(workers, self.max_workers))
        self.max_pixels = max_pixels
        self.buffer = max(2, buffer or max(16, self.max_workers * 8))
        self._pool: ProcessPoolExecutor | None = None
        self._cond = threading.Condition()
        self._running = 0
        self._generation = 0  # bumped on every restart; callbacks of dead pools are ignored
        self._retired: list[_Retired] = []  # pools dropped after a crash, reaped at close
        self._runs: list[tuple[_Run, threading.Thread]] = []  # open decode() calls
        self._closed = False

    @property
    def workers(self) -> int:
        """How many decodes may run at once now."""
        return self._active

    def set_workers(self, workers: int) -> None:
        """Change how many decodes run at once (1..max_workers); takes effect at the next file."""
        with self._cond:
            self._active = max(1, min(workers, self.max_workers))
            self._cond.notify_all()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop feeding, then the workers: running decodes get a few seconds, then are killed.

        Safe while a ``decode`` generator is still open (the caller stopped on an error):
        its feeder stops first, so no new pool can start behind ``close``'s back.
        """
        with self._cond:
            self._closed = True
            for run, _ in self._runs:
                run.stop = True
            self._cond.notify_all()
            feeders = [feeder for _, feeder in self._runs]
        for feeder in feeders:
            feeder.join()
        with self._cond:
            if self._pool is not None:
                self._retired.append(_retire(self._pool))
                self._pool = None
            retired, self._retired = self._retired, []
        for one in retired:
            _reap(one, grace=_CLOSE_GRACE)

    def decode(self, paths: Sequence[str]) -> Iterator[DecodeResult]:
        """Yield one result per path, in order, while later paths decode in the background."""
        run = _Run(deque(paths), deque())
        feeder = threading.Thread(target=self._feed, args=(run,), name="decode-feeder", daemon=True)
        with self._cond:
            if self._closed:
                raise RuntimeError("this DecodePool is closed")
            self._runs.append((run, feeder))
        feeder.start()
        try:
            while True:
                with self._cond:
                    while not run.inflight and not run.fed:
                        if run.paused and not run.submitting:
                            # the pool broke with nothing in flight: restart it here
                            self._restart()
                            run.paused = False
                            self._cond.notify_all()
                        self._cond.wait()
                    if not run.inflight:
                        return
                    path, fut = run.inflight.popleft()
                    self._cond.notify_all()
                try:
                    raw = self._wait(fut)
                except BrokenProcessPool:
                    yield from self._recover(run, path)
                    continue
                yield _result(raw)
        finally:
            with self._cond:
                run.stop = True
                self._cond.notify_all()
            feeder.join()
            for _, fut in run.inflight:
                fut.cancel()
            with self._cond:
                self._runs.remove((run, feeder))

    # -- feeding -------------------------------------------------------------------------

    def _feed(self, run: _Run) -> None:
        while True:
            with self._cond:
                while not run.stop and (
                    run.paused
                    or (run.queue and self._running >= self._active)
                    or (run.queue and len(run.inflight) >= self.buffer)
                ):
                    self._cond.wait()
                if run.stop or not run.queue:
                    run.fed = True
                    self._cond.notify_all()
                    return
                path = run.queue.popleft()
                self._running += 1
                run.submitting = True
                generation = self._generation
            try:
                fut = self._submit(path)
            except (BrokenProcessPool, RuntimeError, OSError) as exc:
                with self._cond:
                    self._running -= 1
                    run.submitting = False
                    run.failures += 1
                    if run.failures <= _SUBMIT_RETRIES:  # the consumer restarts the pool
                        run.queue.appendleft(path)
                        run.paused = True
                        self._cond.notify_all()
                        continue
                fut = Future[_Raw]()  # the workers cannot start at all: report it per file, go on
                reason = f"the decoder processes cannot start ({type(exc).__name__}: {exc})"
                fut.set_result((path, None, None, None, reason, 0.0, b"", []))
            else:
                run.failures = 0
                fut.add_done_callback(functools.partial(self._finished, generation))
            with self._cond:
                run.inflight.append((path, fut))
                run.submitting = False
                self._cond.notify_all()

    def _finished(self, generation: int, _fut: Future[_Raw]) -> None:
        with self._cond:
            if generation == self._generation:
                self._running -= 1
                self._cond.notify_all()

    # -- crash recovery ------------------------------------------------------------------

    def _recover(self, run: _Run, first: str) -> Iterator[DecodeResult]:
        """A worker died: keep finished results, retry the unfinished ones one by one."""
        with self._cond:
            run.paused = True
            while run.submitting:
                self._cond.wait()
            pending = [(first, None), *run.inflight]
            run.inflight.clear()
            self._restart()
        for path, fut in pending:
            if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                yield _result(fut.result())
            else:
                yield self._decode_alone(path)
        with self._cond:
            run.paused = False
            self._cond.notify_all()

    def _decode_alone(self, path: str) -> DecodeResult:
        try:
            return _result(self._wait(self._submit(path)))
        except BrokenProcessPool:
            with self._cond:
                self._restart()
            return DecodeResult(path, error="the image decoder crashed on this file")

    def _wait(self, fut: Future[_Raw]) -> _Raw:
        """The future's result; BrokenProcessPool when its pool can no longer deliver it.

        Only the executor's manager thread completes futures, and CPython's can stop
        doing so for good without breaking the pool: when a worker is killed halfway
        through sending a result, the manager blocks forever reading the rest of that
        message (it no longer watches the workers), and a submit racing with a crash
        can leave a future that nothing will complete. So a wait gives up when the
        manager is gone, or when a worker has been dead for two polls while this
        future is still pending.
        """
        dead_polls = 0
        while True:
            try:
                return fut.result(timeout=_POLL_SECONDS)
            except FuturesTimeout:
                if fut.done():
                    continue
                pool = self._pool
                manager = getattr(pool, "_executor_manager_thread", None)
                if manager is None or not manager.is_alive():
                    raise BrokenProcessPool("the decode pool stopped") from None
                processes = getattr(pool, "_processes", None) or {}
                if any(not p.is_alive() for p in list(processes.values())):
                    dead_polls += 1
                    if dead_polls >= 2:
                        raise BrokenProcessPool("a decode worker died unnoticed") from None
                else:
                    dead_polls = 0

    def _submit(self, path: str) -> Future[_Raw]:
        if self._closed:
            raise RuntimeError("this DecodePool is closed")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.max_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
            )
        return self._pool.submit(_decode_one, path, self.max_pixels, self.prep, self.regions)

    def _restart(self) -> None:
        """Drop the broken pool (callers hold the lock); the next submit starts a fresh one."""
        if self._pool is not None:
            retired = _retire(self._pool)
            _kill(retired.processes)  # a broken pool's survivors can only wedge on its queues
            _unstick(retired)
            self._retired.append(retired)
        self._pool = None
        self._generation += 1
        self._running = 0


@dataclass
class _Retired:
    """What it takes to make sure a dropped pool ends (see ``_retire``)."""

    manager: threading.Thread | None
    processes: dict[int, Any]
    result_writer: Any  # the write end of the pool's result pipe (a Connection), or None


def _retire(pool: ProcessPoolExecutor) -> _Retired:
    """Shut ``pool`` down without waiting; keep what is needed to make sure it ends.

    ``shutdown`` forgets the manager thread, the worker table and the result queue,
    but the manager keeps using them and can still add a worker after a crash (a
    submit racing with the breakage), so they are taken first. These are private
    attributes of CPython's ProcessPoolExecutor; where they are missing there is
    nothing to reap.
    """
    manager = getattr(pool, "_executor_manager_thread", None)
    processes = getattr(pool, "_processes", None)
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    pool.shutdown(wait=False, cancel_futures=True)
    return _Retired(manager, processes if isinstance(processes, dict) else {}, writer)


def _kill(processes: dict[int, Any]) -> None:
    for proc in list(processes.values()):
        if proc.is_alive():
            proc.kill()


def _unstick(retired: _Retired) -> None:
    """Free a manager thread blocked reading a result that a killed worker half sent.

    Call once the pool's workers are dead: the rest of that message will never come.
    A background thread waits a moment (a healthy manager ends by itself), then feeds
    the pipe zeros until the manager has read enough, fails to unpickle them, declares
    the pool broken and ends. Left blocked, that non-daemon thread would also hang
    the interpreter's exit. The pipe's Connection is held throughout, so its file
    descriptor stays open and cannot be reused for another file meanwhile.
    """
    manager, writer = retired.manager, retired.result_writer
    if manager is None or writer is None:
        return

    def feed() -> None:
        manager.join(timeout=_UNSTICK_AFTER)
        zeros = bytes(4096)
        while manager.is_alive():
            try:
                fd = writer.fileno()
                os.set_blocking(fd, False)  # the writers were the dead workers
                os.write(fd, zeros)
            except BlockingIOError:
                pass  # full: the manager is not reading (yet)
            except OSError:
                return
            manager.join(timeout=0.05)

    threading.Thread(target=feed, name="decode-unstick", daemon=True).start()


def _reap(retired: _Retired, *, grace: float) -> None:
    """Wait up to ``grace`` seconds for a retired pool to end, then kill what is left.

    A worker killed while holding the call queue's lock leaves its siblings blocked on
    that lock for good, and one killed while sending a result leaves the manager
    blocked reading it, so the manager could otherwise wait forever.
    """
    manager = retired.manager
    if manager is not None:
        manager.join(timeout=grace)
    if (manager is not None and manager.is_alive()) or any(
        p.is_alive() for p in list(retired.processes.values())
    ):
        _kill(retired.processes)
        _unstick(retired)
        if manager is not None:
            manager.join(timeout=grace)


def _result(raw: _Raw) -> DecodeResult:
    path, pixels, size, info, error, seconds, tile_pixels, boxes = raw
    if error is not None or pixels is None or size is None:
        return DecodeResult(path, error=error or "cannot decode the image", seconds=seconds)
    arr = np.frombuffer(pixels, dtype=np.uint8).reshape(size[1], size[0], 3)
    tiles: list[tuple[Box, Image.Image]] = []
    if boxes:
        stack = np.frombuffer(tile_pixels, dtype=np.uint8).reshape(len(boxes), 224, 224, 3)
        tiles = [(box, Image.fromarray(t, "RGB")) for box, t in zip(boxes, stack, strict=True)]
    image = Image.fromarray(arr, "RGB")
    return DecodeResult(path, image=image, info=info, seconds=seconds, tiles=tiles)
