"""The Store contract every vector backend implements.

A store holds one named collection. It records the identity of the model whose
vectors it holds (``ModelInfo``) on first use and refuses vectors from any other
model with ``ModelMismatchError``. Scores are cosine similarities in [-1, 1].
The contract is exercised by ``tests/store/test_contract.py`` on every backend.

Optional abilities are declared here with defaults, never probed with
``hasattr``: a backend that can do more (embed text queries in the cluster)
overrides them. Subclass ``Store`` to inherit the defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lookalike.errors import ConfigError
from lookalike.records import FileState, Filters, Hit, ModelInfo, Record, StoreStats
from lookalike.regions import Region, RegionSpec

__all__ = ["DamagedDocument", "FailedFile", "Store", "StoreCheck"]


@dataclass(frozen=True)
class FailedFile:
    """A file under an indexed root that could not be indexed, and what it was like then:
    while its size and mtime (or content hash) stay the same, it is not tried again."""

    relpath: str
    size: int
    mtime: float
    sha256: str  # "" when the file could not even be read
    reason: str


@dataclass(frozen=True)
class DamagedDocument:
    """A document whose stored vector cannot be trusted; re-embedding its file heals it."""

    id: str
    path: str
    root: str
    relpath: str
    reason: str


@dataclass
class StoreCheck:
    """What ``Store.check`` found and (with ``repair``) did.

    ``problems``: one line each; ``damaged``: documents whose vectors were bad (removed
    from the store by a repair, for the caller to re-embed); ``repaired``: one line per
    action taken. ``supported`` is False for a backend that cannot check itself.
    """

    collection: str
    supported: bool = True
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    damaged: list[DamagedDocument] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    #: folders to index again after a repair: documents whose rows were lost entirely
    #: (their paths with them) are found there as new files
    reindex_roots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "supported": self.supported,
            "ok": self.ok,
            "checked": dict(self.checked),
            "problems": list(self.problems),
            "damaged": [vars(d) for d in self.damaged],
            "repaired": list(self.repaired),
            "reindex_roots": list(self.reindex_roots),
        }


@runtime_checkable
class Store(Protocol):
    collection: str

    @property
    def model(self) -> ModelInfo | None:
        """The model this collection's vectors come from, or None while it is empty and unbound."""
        ...

    def bind_model(self, model: ModelInfo) -> None:
        """Record ``model`` as this collection's model, or check it matches the recorded one.

        Raises ModelMismatchError (saying how to re-index) when it does not match.
        """
        ...

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace records by id, atomically per call. Every record carries a vector
        of the bound model's dimension (ModelMismatchError otherwise)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these ids; unknown ids are ignored."""
        ...

    def get(self, ids: Sequence[str], *, with_vectors: bool = True) -> list[Record]:
        """Records of the known ids among ``ids``, in the order asked; unknown ids are left out."""
        ...

    def knn(
        self,
        vector: np.ndarray,
        k: int,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """The hits ranked ``offset`` to ``offset + k`` by descending cosine similarity,
        among documents matching ``filters`` and not in ``exclude_ids``, with score >= min_score."""
        ...

    def count(self, filters: Filters | None = None) -> int: ...

    def manifest(self, root: str) -> Iterator[FileState]:
        """File states of every document indexed under the absolute folder ``root``."""
        ...

    def find_by_hash(self, hashes: Sequence[str]) -> dict[str, Record]:
        """One record (with vector) per known content hash, so renamed files keep their vectors."""
        ...

    def iter_records(
        self, batch_size: int = 500, *, after: str | None = None
    ) -> Iterator[list[Record]]:
        """Every record with its vector, in batches, ordered by id; only ids > ``after`` if given
        (so an interrupted copy can resume)."""
        ...

    def flush(self) -> None:
        """Make everything written so far visible to searches (a refresh on servers)."""
        ...

    def stats(self) -> StoreStats: ...

    def drop(self) -> None:
        """Delete the whole collection (data, index, caches). The store is closed afterwards."""
        ...

    def close(self) -> None: ...

    # -- optional abilities, with defaults -------------------------------------------------

    @property
    def location(self) -> str:
        """Where the collection lives (a folder, a cluster and index), for messages."""
        return self.collection

    @property
    def embeds_text(self) -> bool:
        """Whether ``knn_text`` embeds text queries in the store itself."""
        return False

    def knn_text(
        self,
        text: str,
        k: int,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """Like ``knn``, with the query vector embedded by the store from ``text``."""
        raise ConfigError(
            f"the store of collection {self.collection!r} cannot embed text queries itself; "
            "embed them locally (unset es_text_model)",
            field="es_text_model",
        )

    def writer(
        self,
        *,
        what: str = "index run",
        wait: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """Hold this collection's exclusive writer lock for a block (an index run, a drop).

        A second writer gets StoreBusyError naming the holder, or with ``wait`` blocks
        after telling ``on_wait``. Searches never take it. Default: no lock (a server
        backend orders concurrent writes itself)."""
        return contextlib.nullcontext()

    def failed_files(self, root: str) -> dict[str, FailedFile]:
        """Files under ``root`` that failed before, by relpath. Default: none remembered
        (each run tries every file again)."""
        return {}

    def remember_failures(
        self, root: str, failed: Sequence[FailedFile], forget: Sequence[str] = ()
    ) -> None:
        """Record (or update) failed files under ``root``, and forget the relpaths in
        ``forget`` (indexed since, or gone). Default: remembers nothing."""
        return None

    def check(self, *, repair: bool = False) -> StoreCheck:
        """Verify the stored data (and with ``repair`` rebuild what is derived and remove
        damaged documents, listed in the result for re-embedding). Default: unsupported."""
        return StoreCheck(self.collection, supported=False)

    # -- region search (``index --regions``), with defaults for backends without it --------

    @property
    def region_spec(self) -> RegionSpec | None:
        """The region tiling recorded for this collection, None when it has none."""
        return None

    def set_region_spec(self, spec: RegionSpec) -> None:
        """Record that this collection embeds regions with ``spec`` from now on."""
        raise ConfigError(
            f"collection {self.collection!r} is on a backend that cannot hold region vectors; "
            "index with --regions into a local collection (backend = local)",
            field="regions",
        )

    def regions_of(self, ids: Sequence[str]) -> dict[str, list[Region]]:
        """The stored regions of these ids (ids without regions are left out)."""
        return {}

    def ids_missing_regions(self, root: str, spec: RegionSpec) -> set[str]:
        """Ids under ``root`` large enough for ``spec`` that have no regions yet."""
        return set()

    def record_region_cost(self, whole_seconds: float, region_seconds: float) -> None:
        """Add one indexing run's embedding seconds (whole images, tiles) to the totals
        that ``stats`` turns into the ingest time ratio."""
        return None

    def knn_regions(
        self,
        vector: np.ndarray,
        k: int,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """Like ``knn``, each document scored by the best of its whole vector and its tiles;
        a hit won by a tile carries that tile's box (``Hit.region``)."""
        raise ConfigError(
            f"collection {self.collection!r} is on a backend without region search; "
            "search without --regions",
            field="regions",
        )
