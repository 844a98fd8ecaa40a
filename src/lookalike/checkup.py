"""``check_collection``: verify a collection and, asked to, repair it end to end.

The store checks itself (``Store.check``: for the embedded store SQLite's integrity
check, every vector's checksum and the saved indexes against the database). A repair
rebuilds what is derived and removes the documents whose vectors were damaged; this
module then embeds exactly those files again through the Indexer, the same path an
``index`` run takes, so nothing else in the collection is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lookalike.collection import Collection
from lookalike.indexer import IndexReport, ProgressFn
from lookalike.store.base import StoreCheck

__all__ = ["CheckupReport", "check_collection"]


@dataclass
class CheckupReport:
    """The store's findings, and what re-embedding the damaged documents did (repair)."""

    check: StoreCheck
    repair: bool = False
    reembedded: IndexReport | None = None
    reindexed: IndexReport | None = None

    @property
    def ok(self) -> bool:
        """Nothing wrong was found, or a repair fixed all of it (every damaged document
        re-embedded, the database itself sound)."""
        if self.check.ok:
            return True
        if not self.repair or any("cannot be repaired" in x for x in self.check.repaired):
            return False
        healed = 0 if self.reembedded is None else self.reembedded.indexed + self.reembedded.reused
        return healed == len(self.check.damaged)

    def to_dict(self) -> dict[str, Any]:
        out = self.check.to_dict()
        out["ok"] = self.ok
        out["repair"] = self.repair
        out["reembedded"] = None if self.reembedded is None else self.reembedded.to_dict()
        out["reindexed"] = None if self.reindexed is None else self.reindexed.to_dict()
        return out


def check_collection(
    collection: Collection, *, repair: bool = False, progress: ProgressFn | None = None
) -> CheckupReport:
    """Check ``collection``; with ``repair`` also fix it (holding its writer lock)."""
    store = collection.store
    if not repair:
        return CheckupReport(store.check())
    with store.writer(what="check --repair"):
        found = store.check(repair=True)
        report = CheckupReport(found, repair=True)
        if found.damaged:
            report.reembedded = collection.indexer.reembed(found.damaged, progress=progress)
        roots = [r for r in found.reindex_roots if os.path.isdir(r)]
        if roots:  # rows lost with their paths: those files are new to the index now
            report.reindexed = collection.indexer.index(roots, progress=progress)
    return report
