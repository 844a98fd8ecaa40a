"""Which opened files are proven to be the indexed content, remembered across requests
and server restarts so that each file is hashed once, not on every view.

A file's identity is what ``fstat`` on the opened descriptor says: (device, inode,
size, mtime, ctime), together with the sha256 it must have. ctime cannot be set
from user space, so a file rewritten in place with its mtime put back, or another
file swapped in under the same path (a symlink, a rename), has a new identity and
is hashed again. Only matches are remembered: in memory (a bounded LRU) and as
empty marker files named by a hash of the identity under ``<dir>``, made with
``O_EXCL`` so that a crash never leaves a half-written one. Deleting ``<dir>`` is
always safe: it only costs a hash per file. A marker that cannot be written (a
read-only or full disk) costs the same and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import IO

__all__ = ["VerifiedFiles"]

#: remembered identities in memory (about 200 bytes each)
_MEMORY_ENTRIES = 65536
_CHUNK = 1 << 20

Identity = tuple[str, int, int, int, int, int]


class VerifiedFiles:
    """``matches(sha256, fh, st)``: whether the opened file ``fh`` hashes to ``sha256``."""

    def __init__(self, markers_dir: Path) -> None:
        self.markers_dir = markers_dir
        self._memory: OrderedDict[Identity, bool] = OrderedDict()
        self._guard = threading.Lock()

    def matches(self, sha256: str, fh: IO[bytes], st: os.stat_result) -> bool:
        """Hash ``fh`` (then rewind it) unless this identity was proven before."""
        key: Identity = (sha256, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._guard:
            known = self._memory.get(key)
            if known is not None:
                self._memory.move_to_end(key)
                return known
        marker = self._marker(key)
        known = marker.exists() or self._hash(fh) == sha256
        if known and not marker.exists():
            self._write_marker(marker)
        with self._guard:
            self._memory[key] = known
            while len(self._memory) > _MEMORY_ENTRIES:
                self._memory.popitem(last=False)
        return known

    def _marker(self, key: Identity) -> Path:
        name = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
        return self.markers_dir / name[:2] / name

    @staticmethod
    def _hash(fh: IO[bytes]) -> str:
        digest = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
        fh.seek(0)
        return digest.hexdigest()

    @staticmethod
    def _write_marker(marker: Path) -> None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
