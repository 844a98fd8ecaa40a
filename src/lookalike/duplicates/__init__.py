"""Duplicate groups: exact copies, near-duplicates and similar shots (bursts).

``find_duplicates`` is the one entry point the CLI, the API and the page share;
``grouping`` finds candidate pairs without comparing every pair (the ANN index's
neighbours above a threshold, then union-find); ``pixels`` holds the cheap second
looks (a difference hash of the pixels, the EXIF capture time); ``moves`` moves
chosen copies aside (never deletes them) with a dry run first.
"""

from __future__ import annotations

from lookalike.duplicates.find import (
    DEFAULT_BURST_SECONDS,
    DEFAULT_THRESHOLDS,
    KINDS,
    DuplicateGroup,
    DuplicateMember,
    DuplicateReport,
    find_duplicates,
)
from lookalike.duplicates.moves import MovePlan, apply_moves, plan_moves

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_THRESHOLDS",
    "KINDS",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicateReport",
    "MovePlan",
    "apply_moves",
    "find_duplicates",
    "plan_moves",
]
