"""How the indexer splits the CPU cores between decode workers and inference threads.

Decoding (worker processes) and embedding (torch's intra-op threads in this
process) run at the same time. On a laptop's few cores, more busy threads than
cores is ruinous for torch: its threads wait for each other at every layer, so
one of them pre-empted by a decoder stalls them all (measured 5-10x slower). So
the split is deliberate:

* ``workers`` decode processes and ``threads`` inference threads, where
  ``threads = cores - round(decode_cores)`` (at least 1): inference keeps every
  core that decoding does not need most of the time;
* ``workers = ceil(decode_cores - 0.15)`` (at least 1, at most ``cores``): enough
  decoders to keep inference fed, a little short of need rather than one too many;
* ``decode_cores = cores * d / (d + e)``: the share of the CPU work that is decoding,
  from ``d``, the CPU seconds a worker spends per image (measured in the workers),
  and ``e``, the core-seconds inference spends per image (batch wall time x
  threads).

On 2 cores that gives: small icons (d ~ 1 ms, e ~ 15 ms) -> 1 worker, 2 threads;
1080p JPEGs (d ~ 8 ms) -> 1 worker, 1 thread; 12 MP JPEGs (d ~ 33 ms) -> 2
workers, 1 thread (the decoders and the single inference thread then share the
cores with no torch barrier to stall).

The cores a process may use are not the cores it gets: on a shared machine (a
laptop's browser, other jobs) one busy core makes two torch threads ~10x slower
than one (measured here: a text query took 450 ms with 2 threads, 46 ms with 1,
while another process held a core). So the plan is checked against what each split
actually delivers: the pipeline's images per second (batch to batch, wall clock)
is kept per split tried, and a split measured 5% slower than the best one measured
is not chosen again until its figure is stale (24 batches), when it is tried anew.

It starts from an even split and follows the plan of the first batch's costs at
once; after that it leaves out the first batch after any change (refilling the
pipeline) and moves only when two evaluations in a row agree, so a mixed folder does
not make it flap. An explicit ``decode_workers`` setting fixes
the workers; the threads still adapt.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "CoreSplit",
    "Split",
    "plan",
    "planned_threads",
    "set_torch_threads",
    "torch_threads",
    "usable_cores",
]

_SMOOTHING = 0.3  # weight of the newest batch in the running averages
_STALE = 24  # batches after which a split's measured speed is tried anew
_CLEARLY = 0.95  # a split this much slower than the best measured one is not chosen


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Split:
    workers: int
    threads: int


def plan(cores: int, decode_s: float, embed_core_s: float) -> Split:
    """The split for ``cores`` when an image costs ``decode_s`` CPU seconds to decode and
    ``embed_core_s`` core-seconds to embed (see the module doc)."""
    cores = max(1, cores)
    total = decode_s + embed_core_s
    share = decode_s / total if total > 0 else 0.5
    decode_cores = cores * share
    workers = max(1, min(cores, math.ceil(decode_cores - 0.15)))
    threads = max(1, cores - round(decode_cores))
    return Split(workers, threads)


class CoreSplit:
    """The current split, adapted to what each batch measures (see the module doc)."""

    def __init__(
        self,
        cores: int | None = None,
        *,
        fixed_workers: int = 0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cores = cores or usable_cores()
        self.fixed_workers = fixed_workers
        if fixed_workers:
            self.split = Split(fixed_workers, max(1, self.cores - fixed_workers))
        else:
            half = max(1, self.cores // 2)
            self.split = Split(max(1, self.cores - half), half)
        self.decode_s: float | None = None
        self.embed_core_s: float | None = None
        #: split -> (images/s of the whole pipeline, batch number when last measured)
        self.rates: dict[Split, tuple[float, int]] = {}
        self.batches = 0
        self.history: list[Split] = [self.split]
        self._clock = clock
        self._last = clock()
        self._settle = 1  # batches still to leave out after the start or a change
        self._proposal: Split | None = None

    def observe(self, images: int, decode_cpu_s: float, embed_wall_s: float) -> Split | None:
        """Record one embedded batch; returns the new split when it should change, else None.

        ``decode_cpu_s``: worker CPU seconds spent on the files since the last batch;
        ``embed_wall_s``: the seconds this batch's embedding took.
        """
        now = self._clock()
        interval, self._last = now - self._last, now
        self.batches += 1
        if images <= 0:
            return None
        first = self.decode_s is None
        if self._settle > 0:
            self._settle -= 1
            if not first:  # a batch just after a change: its figures are mixed
                return None
        d = decode_cpu_s / images
        e = embed_wall_s * self.split.threads / images
        self.decode_s = d if self.decode_s is None else _blend(self.decode_s, d)
        self.embed_core_s = e if self.embed_core_s is None else _blend(self.embed_core_s, e)
        if first:  # its wall time includes filling the pipeline: estimate the steady rate
            busiest = max(embed_wall_s, decode_cpu_s / self.split.workers)
            if busiest > 0:
                self.rates[self.split] = (images / busiest, self.batches)
        elif interval > 0:
            old = self.rates.get(self.split)
            speed = images / interval
            self.rates[self.split] = (_blend(old[0], speed) if old else speed, self.batches)
        wanted = self._target()
        if wanted == self.split:
            self._proposal = None
            return None
        # The starting split is a guess: leave it as soon as the first batch's costs say so
        # (a run of 60 photos has two batches). Later moves wait for a second batch to agree.
        if not first and wanted != self._proposal:
            self._proposal = wanted
            return None
        self._proposal = None
        self.split = wanted
        self.history.append(wanted)
        self._settle = 1
        return wanted

    def _target(self) -> Split:
        """The plan's split, unless measurements show another one clearly faster."""
        assert self.decode_s is not None and self.embed_core_s is not None
        wanted = plan(self.cores, self.decode_s, self.embed_core_s)
        if self.fixed_workers:
            wanted = Split(self.fixed_workers, wanted.threads)
        fresh = {s: r for s, (r, seen) in self.rates.items() if self.batches - seen <= _STALE}
        if wanted in fresh:
            best = max(fresh, key=lambda s: fresh[s])
            if fresh[wanted] < _CLEARLY * fresh[best]:
                return best
        return wanted


def _blend(old: float, new: float) -> float:
    return old * (1 - _SMOOTHING) + new * _SMOOTHING


@contextmanager
def torch_threads() -> Iterator[None]:
    """Restore torch's intra-op thread count on the way out (when torch is in use at all)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        torch = sys.modules.get("torch")
        if torch is not None and before is not None:
            torch.set_num_threads(before)


_planned_threads: list[int] = []  # the last count set, for runtimes other than torch


def planned_threads() -> int | None:
    """The inference threads the split last chose (None before any): what an ONNX Runtime
    tower follows when torch is not loaded at all (``models.vision_int8_warm``)."""
    return _planned_threads[-1] if _planned_threads else None


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads for this thread's next calls (no-op without torch),
    and remember the count for other runtimes."""
    _planned_threads[:] = [threads]
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
