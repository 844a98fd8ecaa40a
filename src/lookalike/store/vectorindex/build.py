"""A full build of the HNSW graph from every vector of the truth, in checkpointed steps.

At 10M vectors a build takes half an hour on two cores, so losing it to a kill (or a
reboot) must not mean starting again: every ``checkpoint_every`` vectors the graph so
far is saved like any index (``ann_file``) with ``partial_upto``, the last key it holds
(vectors are added in key order). A later build first copies the newest valid checkpoint,
removes the keys the change log deleted since, and continues after ``partial_upto``:
keys only grow, so every vector added meanwhile comes after it. A checkpoint is never
used as a complete index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lookalike.store.vectorindex.ann_file import AnnFiles, Base
from lookalike.store.vectorindex.types import IndexParams, VectorSource, encode

if TYPE_CHECKING:  # usearch loads only when an HNSW index is built or opened
    from usearch.index import Index

__all__ = ["GraphBuilder", "add_codes"]

log = logging.getLogger(__name__)

_BATCH = 10_000
_SMALL_GRAPH = 20_000


def add_codes(index: Index, keys: np.ndarray, vecs: np.ndarray, dtype: str) -> None:
    """Add the codes of these float32 vectors to the graph under their keys."""
    # Concurrent insertion into a small graph now and then leaves a node unreachable
    # (measured: 1 build in 30 of 300 vectors); one thread until the graph is larger.
    threads = 1 if len(index) + len(keys) < _SMALL_GRAPH else 0
    index.add(keys.astype(np.uint64), encode(vecs, dtype), threads=threads)


class GraphBuilder:
    """Builds a collection's graph from its source, resuming from and saving checkpoints."""

    def __init__(
        self,
        files: AnnFiles,
        source: VectorSource,
        params: IndexParams,
        *,
        dim: int,
        db_uuid: str,
        saves: bool,
        verify: Callable[[Base], bool],
        new_index: Callable[[int], Index],
    ) -> None:
        self.files, self.source, self.params = files, source, params
        self.dim, self.db_uuid, self.saves = dim, db_uuid, saves
        self.verify, self.new_index = verify, new_index

    def build(self, head: int, live: int) -> tuple[Index, bool]:
        """(the graph of every vector, whether it continued a checkpoint), inside the
        caller's snapshot at change-log position ``head`` holding ``live`` vectors."""
        resumed, upto = self._resume(head)
        if resumed is None:
            log.info("building the vector index of %s from the database", self.files.folder)
        index = resumed if resumed is not None else self.new_index(live)
        since = 0
        for keys, vecs in self.source.iter_vectors(_BATCH, after=upto):
            add_codes(index, keys, vecs, self.params.dtype)
            since += len(keys)
            if since >= self.params.checkpoint_every and self.saves and len(index) < live:
                self._checkpoint(index, head, int(keys[-1]))
                since = 0
        return index, resumed is not None

    def _resume(self, head: int) -> tuple[Index | None, int]:
        """(a private copy of the newest valid checkpoint with the keys deleted since
        removed, the last key it holds), or (None, 0)."""
        ck = self.files.load_newest(
            db_uuid=self.db_uuid, dim=self.dim, dtype=self.params.dtype, max_seq=head,
            verify=self.verify, partial=True,
        )  # fmt: skip
        if ck is None or ck.stamp is None:
            return None, 0
        upto = ck.stamp.partial_upto
        log.info("continuing the build of the vector index of %s after key %d (%d vectors "
                 "done)", self.files.folder, upto, len(ck))  # fmt: skip
        index = ck.index.copy()
        ck.release()
        gone = [k for _s, k, op in self.source.changes(ck.seq) if op == "D" and k <= upto]
        gone = [k for k in gone if index.contains(k)]
        if gone:
            index.remove(np.array(gone, dtype=np.uint64))
        return index, upto

    def _checkpoint(self, index: Index, head: int, upto: int) -> None:
        try:
            saved = self.files.save(
                Base(index=index, seq=head), db_uuid=self.db_uuid, dim=self.dim, partial_upto=upto
            )
        except (OSError, RuntimeError) as exc:
            log.warning("cannot save a build checkpoint in %s (%s); building on",
                        self.files.folder, exc)  # fmt: skip
            return
        if saved is not None:
            saved.release()
