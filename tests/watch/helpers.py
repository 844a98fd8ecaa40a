"""Waiting on conditions (never on fixed sleeps) and writing image files for the watch tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.watch import PassReport

DEADLINE_S = 120.0


class Passes:
    """Collects the watcher's pass reports and wakes waiters after each pass."""

    def __init__(self) -> None:
        self.reports: list[PassReport] = []
        self.cond = threading.Condition()

    def __call__(self, report: PassReport) -> None:
        with self.cond:
            self.reports.append(report)
            self.cond.notify_all()

    def total(self, field: str) -> int:
        with self.cond:
            return sum(getattr(r.report, field) for r in self.reports if r.report is not None)

    def wait_until(
        self, check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
    ) -> None:
        """Re-check ``check`` after every pass (and at least every half second) until it holds."""
        end = time.monotonic() + deadline_s
        with self.cond:
            while not check():
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
                self.cond.wait(min(0.5, left))


def write_png(path: Path, seed: int, size: int = 24) -> Path:
    """A small PNG with its own content (and so its own hash)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path
