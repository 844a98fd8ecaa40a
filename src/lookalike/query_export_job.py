"""The query exports and the saved image tower, made by a background process: no ``index``
run waits for them.

Text and image queries run on checked ONNX exports of the towers, without torch
(``lookalike.models.onnx_query``). Making them costs tens of seconds and gigabytes
of memory once per model and version (the multilingual text model: 18-22 s). When
``lookalike index`` made them inline, a user's first index of a few hundred photos
spent more time exporting than embedding. Now ``index`` starts this module as a
detached, low-priority process once its images are stored, and exits.

One job runs per home: it holds an exclusive ``flock`` on ``onnx/.query-export.lock``
(with its pid written in it) for its whole life, so a second one started meanwhile
leaves at once, and a search that needs the text export (``running_job``) can say
so and wait for it (``wait_for_job``) instead of exporting the same model again.
The kernel releases the lock when the process dies, whatever kills it; the export
cache's own locks and renames keep every file whole (``lookalike.models.onnx_cache``).

It also saves the checked image tower for a warm start
(``lookalike.models.vision_saved``), once per model and version.

Its output goes to ``onnx/query-export.log``; a failure there only means the first
search exports (saying so), as before.

The setting ``query_export`` chooses: "background" (the default), "now" (``index``
exports before it exits, as it used to) or "search" (the first query that needs an
export makes it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.config import Settings

__all__ = [
    "Job",
    "job_lock_path",
    "job_log_path",
    "run_job",
    "running_job",
    "start_job",
    "wait_for_job",
]

log = logging.getLogger(__name__)

_LOCK = ".query-export.lock"
_LOG = "query-export.log"
_POLL_SECONDS = 0.1
#: the settings a job needs to build the same embedder (no secrets, no server options)
_FIELDS = ("home", "image_model", "text_model", "runtime", "model_cache", "batch_size")


@dataclass(frozen=True)
class Job:
    """A running (or just started) background export: its process id and log file."""

    pid: int
    log: Path

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "log": str(self.log)}


def _onnx_folder(settings: Settings) -> Path:
    from lookalike.models.factory import ONNX_FOLDER

    return settings.home / ONNX_FOLDER


def job_lock_path(settings: Settings) -> Path:
    return _onnx_folder(settings) / _LOCK


def job_log_path(settings: Settings) -> Path:
    return _onnx_folder(settings) / _LOG


def start_job(settings: Settings) -> Job:
    """Start the background export for ``settings``'s models and return at once; when one
    runs already, return that one.

    The process is detached (its own session, no terminal, stdin closed), so it
    outlives the ``index`` that started it and a Ctrl-C there does not reach it. It
    inherits the job lock taken here, so the job is seen running from the moment this
    returns, with no window before the new process gets going."""
    folder = _onnx_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    logfile = job_log_path(settings)
    path = job_lock_path(settings)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock(fd, exclusive=True):
            running = running_job(settings)
            return running or Job(0, logfile)
        spec = {name: str(getattr(settings, name)) for name in _FIELDS}
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lookalike.query_export_job", json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(fd,) if os.name == "posix" else (),  # the lock, for the child's life
            )
        path.write_text(str(proc.pid), encoding="ascii")
        return Job(proc.pid, logfile)
    finally:
        os.close(fd)  # never unlocked here: the lock now belongs to the child's copy


def running_job(settings: Settings) -> Job | None:
    """The background export running for this home now, or None."""
    path = job_lock_path(settings)
    if not path.is_file():
        return None
    with _held(path, exclusive=False) as free:
        if free:
            return None
    try:
        pid = int(path.read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        pid = 0
    return Job(pid, job_log_path(settings))


def wait_for_job(settings: Settings, timeout: float = 600.0) -> bool:
    """Wait until no background export runs for this home; False if it still runs after
    ``timeout`` seconds (the caller then goes on and exports, or waits, itself)."""
    deadline = time.monotonic() + timeout
    while running_job(settings) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def run_job(settings: Settings, *, locked: bool = False) -> str:
    """Make the pending query exports unless another job is making them; says what it did.

    Runs in the background process (``main``: ``locked``, the lock came with it), and
    in tests in-process."""
    path = job_lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(True) if locked else _held(path, exclusive=True) as mine:
        if not mine:
            return "another query export is running for this home; left it to finish"
        if not locked:
            path.write_text(str(os.getpid()), encoding="ascii")
        from lookalike.models import create_embedder

        embedder = create_embedder(settings)
        pending = embedder.query_exports_pending()
        said = []
        if pending:
            started = time.perf_counter()
            embedder.prepare_queries()
            took = time.perf_counter() - started
            said.append(f"exported {' and '.join(pending)} in {took:.1f} s")
            note = getattr(embedder, "image_export_note", "")
            said += [note] if note else []
        if embedder.warm_start_pending():
            said.append(embedder.prepare_warm_start())
        return "; ".join(s for s in said if s) or "query exports already made"


def _lock(fd: int, *, exclusive: bool) -> bool:
    """Try to lock ``fd`` without waiting; True where ``flock`` does not exist (no job is
    ever seen running there, and a search exports itself, as with "search")."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _held(path: Path, *, exclusive: bool) -> Iterator[bool]:
    """Try to take the lock at ``path`` without waiting: yields whether it was taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield _lock(fd, exclusive=exclusive)
    finally:
        os.close(fd)  # releases it


def main(argv: list[str] | None = None) -> None:
    """Entry point of the background process: a JSON object of settings fields. The job
    lock came with the process (an inherited descriptor, held for its whole life)."""
    args = argv if argv is not None else sys.argv[1:]
    spec = json.loads(args[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(19)  # the user's next command comes first
    spec.update(home=Path(spec["home"]), batch_size=int(spec["batch_size"]))
    settings = Settings(**spec)
    try:
        log.info("query export (pid %d): %s", os.getpid(), run_job(settings, locked=True))
    except Exception:  # logged for the user; the first search exports instead
        log.exception("query export failed; the first search will export instead")


if __name__ == "__main__":
    main()
