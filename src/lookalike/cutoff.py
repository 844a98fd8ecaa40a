"""Where to cut a ranked list when the user gives no threshold: per query, not one number.

A fixed ``min_score`` suits one query and not the next: CLIP scores of text
queries sit around 0.2-0.35 while image-to-image scores sit near 0.6-0.95, and
the level moves with the query. ``largest_gap`` keeps the hits above the widest
drop between consecutive scores among the top ``window``, which is where a
group of true matches usually ends. ``lookalike eval`` measures it against fixed
thresholds on the user's own labelled queries.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEFAULT_WINDOW", "MIN_KEEP", "largest_gap"]

#: how many top scores the gap is looked for in
DEFAULT_WINDOW = 50
#: never cut to fewer than this many hits
MIN_KEEP = 1


def largest_gap(
    scores: Sequence[float], *, window: int = DEFAULT_WINDOW, min_keep: int = MIN_KEEP
) -> int:
    """How many of the descending ``scores`` to keep: those above the widest drop between
    consecutive scores among the first ``window`` (all of them when the scores are flat);
    ties go to the earlier gap."""
    n = min(len(scores), max(window, 1))
    if n <= min_keep:
        return min(len(scores), max(min_keep, 0)) if n else 0
    top = [float(s) for s in scores[:n]]
    spread = top[0] - top[-1]
    if spread <= 0.0:
        return n
    best, keep = -1.0, n
    for i in range(max(min_keep, 1), n):
        gap = top[i - 1] - top[i]
        if gap > best:
            best, keep = gap, i
    return keep
