"""Copy a collection between any two stores (embedded <-> Elasticsearch) without re-embedding.

The copy streams ``source.iter_records`` in batches into ``dest.upsert``. It is
resumable without any checkpoint file: before writing a batch it asks the
destination which of those ids it already holds with identical metadata (same
path, size, mtime, content hash, ...) and writes only the others. Documents are
written whole, so whatever a killed run left behind is either complete and
skipped, or missing and written; a re-run converges. At the end the destination
is flushed and the counts are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from lookalike.errors import QueryError, StoreError
from lookalike.records import Record
from lookalike.store.base import Store

__all__ = ["CopyReport", "copy_collection"]

MAX_BATCH = 10_000


@dataclass
class CopyReport:
    """``copied``: documents written; ``skipped``: already in the destination, identical.
    ``verified``: the destination holds at least as many documents as the source and the
    source did not change while it was read."""

    copied: int
    skipped: int
    source_count: int
    dest_count: int
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def copy_collection(
    source: Store,
    dest: Store,
    *,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy every record of ``source`` (vectors included) into ``dest``.

    ``dest`` is bound to the source's model first (ModelMismatchError if it holds
    another model's vectors). ``progress`` gets the number of source records done so
    far after each batch. Raises StoreError if, at the end, the destination holds
    fewer documents than the source; running the copy again resumes it.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise QueryError(f"batch_size must be between 1 and {MAX_BATCH}", field="batch_size")
    if _identity(source) == _identity(dest):
        raise QueryError(
            f"source and destination are the same collection ({source.collection!r}); "
            "copy into another collection or store",
            field="dest",
        )
    model = source.model
    if model is None:  # never bound: nothing was ever written to it
        return CopyReport(0, 0, 0, dest.count(), True)
    dest.bind_model(model)

    copied = skipped = 0
    for batch in source.iter_records(batch_size):
        todo = _missing_or_changed(dest, batch)
        if todo:
            dest.upsert(todo)
        copied += len(todo)
        skipped += len(batch) - len(todo)
        if progress is not None:
            progress(copied + skipped)
    dest.flush()

    source_count, dest_count = source.count(), dest.count()
    if dest_count < source_count:
        raise StoreError(
            f"the copy of {source.collection!r} is incomplete: the destination "
            f"{dest.collection!r} holds {dest_count} documents, the source {source_count}. "
            "Run the same copy again: it resumes and writes only what is missing."
        )
    stable = copied + skipped == source_count
    return CopyReport(copied, skipped, source_count, dest_count, verified=stable)


def _missing_or_changed(dest: Store, batch: list[Record]) -> list[Record]:
    """The records of ``batch`` that ``dest`` lacks or holds with other metadata."""
    for rec in batch:
        if rec.vector is None:
            raise StoreError(
                f"record {rec.id!r} ({rec.path}) came without its vector; the source store "
                "cannot be copied without re-embedding"
            )
    present = {r.id: r for r in dest.get([r.id for r in batch], with_vectors=False)}
    return [r for r in batch if r.id not in present or present[r.id].metadata() != r.metadata()]


def _identity(store: Store) -> tuple[str, str, str]:
    """What tells two store objects apart: backend, collection and location."""
    return type(store).__name__, store.collection, store.location
