"""Decode images in worker processes, overlapped with whatever the caller does meanwhile.

Workers run ``images.clip_ready`` and send back 224x224 RGB pixels. A bounded
window of files is in flight, so memory stays flat however many files there
are. A worker that dies (a decoder crashing on a hostile file) does not end the
run: the files that were in flight are retried one at a time in a fresh pool,
and only the one that kills its worker again is reported as skipped.
"""

from __future__ import annotations

import multiprocessing
import signal
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ImageError
from lookalike.images import ImageInfo, clip_ready

__all__ = ["DecodePool", "DecodeResult"]


@dataclass
class DecodeResult:
    path: str
    image: Image.Image | None = None
    info: ImageInfo | None = None
    error: str | None = None


_Raw = tuple[str, bytes | None, tuple[int, int] | None, ImageInfo | None, str | None]


def _decode_one(path: str, max_pixels: int) -> _Raw:
    """Runs in a worker: never raises for a bad file, returns the reason instead."""
    try:
        decoded = clip_ready(path, max_pixels=max_pixels)
    except ImageError as exc:
        return path, None, None, None, exc.reason
    except MemoryError:
        return path, None, None, None, "not enough memory to decode this image"
    except Exception as exc:  # a decoder bug on a hostile file must not end the run
        return path, None, None, None, f"cannot decode the image ({type(exc).__name__}: {exc})"
    img = decoded.image
    return path, img.tobytes(), img.size, decoded.info, None


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    # Pillow warns about odd chunks in damaged files; the file is judged by its result instead.
    warnings.filterwarnings("ignore", module="PIL")


class DecodePool:
    def __init__(self, workers: int, *, max_pixels: int) -> None:
        self.workers = max(1, workers)
        self.max_pixels = max_pixels
        self.window = max(8, self.workers * 8)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def decode(self, paths: Sequence[str]) -> Iterator[DecodeResult]:
        """Yield one result per path, in order, while later paths decode in the background."""
        queue = deque(paths)
        inflight: deque[tuple[str, Future[_Raw]]] = deque()
        while queue or inflight:
            while queue and len(inflight) < self.window:
                path = queue.popleft()
                inflight.append((path, self._submit(path)))
            path, fut = inflight.popleft()
            try:
                raw = fut.result()
            except BrokenProcessPool:
                suspects = [path] + [p for p, _ in inflight]
                inflight.clear()
                self._restart()
                yield from (self._decode_alone(p) for p in suspects)
                continue
            yield _result(raw)

    def _decode_alone(self, path: str) -> DecodeResult:
        try:
            return _result(self._submit(path).result())
        except BrokenProcessPool:
            self._restart()
            return DecodeResult(path, error="the image decoder crashed on this file")

    def _submit(self, path: str) -> Future[_Raw]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
            )
        return self._pool.submit(_decode_one, path, self.max_pixels)

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None


def _result(raw: _Raw) -> DecodeResult:
    path, pixels, size, info, error = raw
    if error is not None or pixels is None or size is None:
        return DecodeResult(path, error=error or "cannot decode the image")
    arr = np.frombuffer(pixels, dtype=np.uint8).reshape(size[1], size[0], 3)
    return DecodeResult(path, image=Image.fromarray(arr, "RGB"), info=info)
