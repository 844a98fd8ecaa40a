"""Shared fixtures. Tiny random models and generated image files live in tests/support/."""

import pytest

pytest_plugins = ["support.tiny_models", "support.image_files", "support.preset_models"]


@pytest.fixture(autouse=True)
def _query_exports_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """``lookalike index`` exports the query models before it exits in tests, as it did
    before the background export existed: a detached process per test would outlive it.
    tests/test_query_export_job.py tests the background export itself."""
    monkeypatch.setenv("LOOKALIKE_QUERY_EXPORT", "now")
