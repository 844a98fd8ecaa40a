"""Whether a process still runs: how our caches tell a killed writer's leftover
temporary file from one another process is writing right now."""

from __future__ import annotations

import os

__all__ = ["process_alive"]


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists (ours or another user's), False once it is gone."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
