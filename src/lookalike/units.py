"""File sizes as people write them: ``200KB``, ``5MiB``, ``1048576``.

Shared by the CLI's ``--min-size`` and the page's size fields, so both read the same.
"""

from __future__ import annotations

import re

from lookalike.errors import QueryError

__all__ = ["parse_size"]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(text: str, field: str) -> int:
    """'200KB' -> 200000, '5MiB' -> 5242880, '123' -> 123."""
    m = _SIZE_RE.match(text)
    unit = (m.group(2) or "").lower() if m else ""
    if not m or unit not in _UNITS:
        raise QueryError(
            f"cannot read size {text!r}; write e.g. 500KB, 2MB or 1048576", field=field
        )
    return int(float(m.group(1)) * _UNITS[unit])
