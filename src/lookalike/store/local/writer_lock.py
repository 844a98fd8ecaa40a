"""The writer lock of a local collection: one writer at a time, searchers never wait.

SQLite serialises transactions, but two ``index`` runs on one collection would each
scan, hash and embed every new file. A writer (index, drop, ``check --repair``, a copy
into the collection) holds an exclusive ``flock`` on ``writer.lock`` in the collection
folder for its whole run; the file holds the holder's pid and what it is doing, for the
message the next writer gets. The kernel releases the lock when the holder dies, even
by SIGKILL, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from lookalike.errors import StoreBusyError, StoreUnavailableError

__all__ = ["LOCK_FILENAME", "writer_lock"]

LOCK_FILENAME = "writer.lock"


def _holder(fd: int) -> tuple[str, str]:
    """(pid, what) written by the process holding the lock ('?' when unknown)."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        pid, _, what = text.partition(" ")
        if pid.isdigit():
            return pid, what or "writer"
    return "?", "writer"


@contextlib.contextmanager
def writer_lock(
    folder: Path,
    collection: str,
    *,
    what: str = "index run",
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the collection's writer lock for the block.

    Raises StoreBusyError naming the holder's pid when another process holds it, unless
    ``wait``: then ``on_wait`` gets that message and the call blocks until it is free.
    """
    try:
        fd = os.open(folder / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot take the writer lock of collection {collection!r} in {folder} "
            f"({exc.strerror or exc}); changing a collection needs write access to its folder"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, holder = _holder(fd)
            busy = f"another {holder} (pid {pid}) is working on collection {collection!r}"
            if not wait:
                raise StoreBusyError(
                    f"{busy}; let it finish, or run again with --wait to start after it"
                ) from None
            if on_wait is not None:
                on_wait(f"{busy}; waiting for it to finish ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
