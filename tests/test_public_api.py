"""The public API: an explicit, importable __all__, and no torch at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lookalike


def test_all_names_resolve() -> None:
    assert lookalike.__all__ == sorted(lookalike.__all__)
    for name in lookalike.__all__:
        assert getattr(lookalike, name) is not None


@pytest.mark.slow
def test_import_and_help_do_not_load_torch() -> None:
    code = "import sys, lookalike, lookalike.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_matches_the_lazy_exports() -> None:
    assert sorted(lookalike.__all__) == sorted(lookalike._EXPORTS)
