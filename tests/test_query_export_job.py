"""The background query export (``lookalike.query_export_job``): ``index`` leaves it to a
detached process, one job runs per home, and a text search that needs it waits for it.

Real processes and real locks throughout; the models are the tiny random fixtures
(pretrained weights cannot be had here). No test waits on a clock: each waits for
the condition it needs (a line on a pipe, a line in the job's log).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.errors import ConfigError
from lookalike.models import create_embedder
from lookalike.query_export_job import job_lock_path, job_log_path, run_job, running_job
from test_indexer import write_images


@contextmanager
def job_lock_held(settings: Settings) -> Iterator[None]:
    """Hold the job's lock as a running job does (its pid: this process)."""
    path = job_lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path.write_text(str(os.getpid()), encoding="ascii")
        yield
    finally:
        os.close(fd)  # releases the lock


def job_ended(settings: Settings) -> None:
    """Wait until the running job lets go of its lock (it ends)."""
    fd = os.open(job_lock_path(settings), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def cli_env(settings: Settings, mode: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    return {
        **clean,
        "LOOKALIKE_HOME": str(settings.home),
        "LOOKALIKE_MODEL": settings.image_model,
        "LOOKALIKE_TEXT_MODEL": settings.text_model,
        "LOOKALIKE_QUERY_EXPORT": mode,
        "HF_HUB_OFFLINE": "1",
    }


def test_an_unknown_mode_is_refused_naming_the_setting(tiny_settings: Settings) -> None:
    with pytest.raises(ConfigError) as caught:
        replace(tiny_settings, query_export="later")
    assert caught.value.field == "query_export" and "background, now or search" in str(caught.value)


def test_a_job_makes_the_pending_exports_once(tiny_settings: Settings) -> None:
    assert create_embedder(tiny_settings).query_exports_pending() == ["text", "image"]
    assert running_job(tiny_settings) is None
    said = run_job(tiny_settings)
    assert said.startswith("exported text and image in")
    assert create_embedder(tiny_settings).query_exports_pending() == []
    assert run_job(tiny_settings) == "query exports already made"
    assert running_job(tiny_settings) is None  # the lock went with the job


def test_a_second_job_leaves_the_running_one_to_finish(tiny_settings: Settings) -> None:
    with job_lock_held(tiny_settings):
        job = running_job(tiny_settings)
        assert job is not None and job.pid == os.getpid()
        assert job.log == job_log_path(tiny_settings)
        assert run_job(tiny_settings).startswith("another query export is running")
    assert running_job(tiny_settings) is None
    assert create_embedder(tiny_settings).query_exports_pending() == ["text", "image"]


@pytest.mark.slow
def test_index_leaves_the_exports_to_a_background_process(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    """A first ``index`` exits with its images stored and the exports not made yet by it:
    it names the detached process, which then makes them (its log says so)."""
    write_images(tmp_path / "pics", 3)
    env = cli_env(tiny_settings, "background")
    done = subprocess.run(
        [sys.executable, "-m", "lookalike", "index", "--json", str(tmp_path / "pics")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["indexed"] == 3
    job = report["query_export"]
    assert job["towers"] == ["text", "image"] and job["pid"] != 0
    log = Path(job["log"])
    assert log == job_log_path(tiny_settings)
    job_ended(tiny_settings)
    assert f"query export (pid {job['pid']}): exported text and image" in log.read_text()
    assert create_embedder(tiny_settings).query_exports_pending() == []


@pytest.mark.slow
def test_index_then_search_says_it_waits_for_the_background_export(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    """A text search while the background export runs says so and waits; once the job
    is done it answers on the job's exports (it does not export the text model itself)."""
    write_images(tmp_path / "pics", 3)
    env = cli_env(tiny_settings, "search")  # the index makes no export
    index = [sys.executable, "-m", "lookalike", "index", "--quiet", str(tmp_path / "pics")]
    assert subprocess.run(index, env=env, cwd=tmp_path, timeout=300).returncode == 0
    assert create_embedder(tiny_settings).query_exports_pending() == ["text", "image"]
    with job_lock_held(tiny_settings):  # a job is running: this process
        search = subprocess.Popen(
            [sys.executable, "-m", "lookalike", "search", "a cat", "-k", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert search.stderr is not None
        first = search.stderr.readline()
        assert "waiting for the ONNX export that `lookalike index` started" in first
        assert f"pid {os.getpid()}" in first
        create_embedder(tiny_settings).prepare_queries()  # what the job does
    out, rest = search.communicate(timeout=300)
    assert search.returncode == 0, rest
    assert "exporting the text model" not in rest
    assert len(out.strip().splitlines()) == 2


def test_search_mode_leaves_the_export_to_the_first_search(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    """With query_export = "search" the index makes nothing and the first text search
    exports the text model, saying so."""
    from click.testing import CliRunner

    from lookalike.cli import cli

    write_images(tmp_path / "pics", 3)
    env = cli_env(tiny_settings, "search")
    runner = CliRunner()
    done = runner.invoke(cli, ["index", "--json", str(tmp_path / "pics")], env=env)
    assert done.exit_code == 0, done.output
    assert "query_export" not in json.loads(done.stdout)
    assert running_job(tiny_settings) is None
    done = runner.invoke(cli, ["search", "a dog", "-k", "1"], env=env)
    assert done.exit_code == 0, done.output
    assert "preparing text search: exporting the text model" in done.stderr
    assert create_embedder(tiny_settings).query_exports_pending() == ["image"]


def test_marking_a_random_model_again_keeps_its_exports(tmp_path: Path) -> None:
    """The benchmarks mark their random models at every start: the folder's fingerprint,
    which keys every export made from it, must not change (it did: each bench run made
    the "warm" home cold again)."""
    from lookalike.models.onnx_cache import folder_fingerprint
    from lookalike.models.testing import RANDOM_MARKER, mark_random

    mark_random(tmp_path)
    before = folder_fingerprint(tmp_path)
    os.utime(tmp_path / RANDOM_MARKER, ns=(1, 1))  # a write now would show as a new mtime
    stamped = folder_fingerprint(tmp_path)
    mark_random(tmp_path)
    assert folder_fingerprint(tmp_path) == stamped != before
