"""``lookalike watch`` as a real process: killed with SIGKILL in the middle of indexing a
burst, then changed while nothing watches, then started again: the first pass of the new
process reconciles the collection with the disk (a normal scan), file for file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.store import open_store
from watch.helpers import DEADLINE_S, write_png

SRC = Path(__file__).resolve().parents[2] / "src"


class Watching:
    """One ``lookalike watch --json`` process and the pass lines it prints."""

    def __init__(self, root: Path, settings: Settings) -> None:
        env = {
            **os.environ,
            "LOOKALIKE_HOME": str(settings.home),
            "LOOKALIKE_MODEL": settings.image_model,
            "LOOKALIKE_TEXT_MODEL": settings.text_model,
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        }
        cmd = [sys.executable, "-m", "lookalike", "watch", str(root), "--json", "--debounce", "0.3"]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group, so close() can end every process
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next_pass(self) -> dict:
        try:
            return self.lines.get(timeout=DEADLINE_S)
        except queue.Empty:
            raise AssertionError("no pass reported within the deadline") from None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the process and any decode worker left
        self.proc.wait()
        self.reader.join(DEADLINE_S)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def poll(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (the store, read from this process) until it holds or the deadline."""
    end = time.monotonic() + DEADLINE_S
    pause = threading.Event()
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.1)


def indexed(settings: Settings) -> dict[str, str]:
    store = open_store(settings)
    try:
        return {r.path: r.sha256 for batch in store.iter_records(500) for r in batch}
    finally:
        store.close()


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def on_disk(root: Path) -> dict[str, str]:
    return {
        p.as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*.png")
        if p.is_file()
    }


@pytest.mark.slow
def test_kill_9_during_watch_then_restart_reconciles(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "pics"
    for i in range(5):
        write_png(root / f"old{i}.png", i)
    first = Watching(root, tiny_settings)
    try:
        assert first.next_pass()["reason"] == "start"
        assert set(indexed(tiny_settings)) == set(on_disk(root))
        for i in range(300):
            write_png(root / "burst" / f"{i:03d}.png", 100 + i)
        poll(lambda: len(indexed(tiny_settings)) > 5, "the burst's pass to commit a batch")
        first.proc.send_signal(signal.SIGKILL)  # the watch process only, mid-pass
        first.proc.wait()
        # its decode workers notice their parent is gone and end by themselves
        poll(lambda: _group_gone(first.proc.pid), "the killed process's decode workers to end")
    finally:
        first.close()
    assert first.proc.returncode == -signal.SIGKILL
    assert len(indexed(tiny_settings)) < 305  # it really was interrupted

    # while nothing watches: delete, modify and add
    (root / "old0.png").unlink()
    write_png(root / "old1.png", 999)
    for i in range(3):
        write_png(root / "later" / f"n{i}.png", 500 + i)

    second = Watching(root, tiny_settings)
    try:
        report = second.next_pass()
        assert report["reason"] == "start" and "error" not in report
    finally:
        second.close()
    assert indexed(tiny_settings) == on_disk(root)
