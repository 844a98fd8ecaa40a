"""Plain data passed between the indexer, the stores and the searcher."""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from lookalike.errors import QueryError

__all__ = ["MAX_FILTER_SIZE", "FileState", "Filters", "Hit", "ModelInfo", "Record", "StoreStats"]

MAX_FILTER_SIZE = 2**53  # exact in a float, below every backend's integer limit


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the vectors in a store: which model made them, how wide, how preprocessed."""

    model_id: str
    dim: int
    preprocess: str

    def to_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "dim": self.dim, "preprocess": self.preprocess}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        return cls(model_id=str(d["model_id"]), dim=int(d["dim"]), preprocess=str(d["preprocess"]))


@dataclass
class Record:
    """One indexed image: where it is, what it is, and (optionally) its vector.

    ``path`` is the absolute POSIX path at index time; ``root`` the indexed folder
    it was found under and ``relpath`` the path relative to it. ``vector`` is an
    L2-normalised float32 array, or None when a store was asked for metadata only.
    """

    id: str
    path: str
    root: str
    relpath: str
    format: str
    size: int
    mtime: float
    sha256: str
    width: int
    height: int
    vector: np.ndarray | None = None
    #: region tiles (``lookalike.regions.Region``) to store with it; None leaves them as they are
    regions: list[Any] | None = None

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)

    def metadata(self) -> dict[str, Any]:
        """Everything but the id and the vector, as JSON-ready values."""
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("id", "vector", "regions")
        }
        out["folder"] = self.folder
        return out


@dataclass
class Hit:
    """One search result. ``score`` is the cosine similarity in [-1, 1] on every backend.
    ``region`` is the box (x0, y0, x1, y1 as fractions of the image) of the tile that
    matched best in a region search, None when the whole image did."""

    id: str
    path: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    region: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "path": self.path, "score": self.score, "metadata": self.metadata}
        if self.region is not None:
            out["region"] = [round(v, 4) for v in self.region]
        return out


@dataclass(frozen=True)
class FileState:
    """What the indexer needs to decide whether a file changed since it was indexed."""

    id: str
    relpath: str
    size: int
    mtime: float
    sha256: str


@dataclass(frozen=True)
class Filters:
    """Restrictions on which documents a search may return. All set fields must hold.

    ``folder`` is an absolute folder path: a document matches when it lies in that
    folder or below it. ``formats`` are lower-case Pillow format names ("jpeg",
    "png", ...). Sizes are in bytes, times are POSIX timestamps (inclusive bounds).
    """

    folder: str | None = None
    formats: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    modified_after: float | None = None
    modified_before: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_size", "max_size"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and 0 <= value <= MAX_FILTER_SIZE):
                raise QueryError(
                    f"{name} must be a whole number of bytes from 0 to {MAX_FILTER_SIZE}",
                    field=name,
                )
        for name in ("modified_after", "modified_before"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise QueryError(f"{name} must be a finite POSIX timestamp", field=name)
        if self.folder is not None and (not self.folder.startswith("/") or "\x00" in self.folder):
            raise QueryError("folder must be an absolute path", field="folder")

    def is_empty(self) -> bool:
        return self == Filters()

    @property
    def folder_prefix(self) -> str | None:
        """The folder with exactly one trailing slash, for prefix matching on paths."""
        if self.folder is None:
            return None
        return self.folder.rstrip("/") + "/"

    def matches(self, rec: Record) -> bool:
        prefix = self.folder_prefix
        if prefix is not None and not rec.path.startswith(prefix):
            return False
        if self.formats and rec.format not in self.formats:
            return False
        if self.min_size is not None and rec.size < self.min_size:
            return False
        if self.max_size is not None and rec.size > self.max_size:
            return False
        if self.modified_after is not None and rec.mtime < self.modified_after:
            return False
        return not (self.modified_before is not None and rec.mtime > self.modified_before)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) not in (None, ())
        }


@dataclass
class StoreStats:
    """Raw sizing facts a backend knows about itself; ``lookalike.sizing`` derives the rest."""

    backend: str
    collection: str
    documents: int
    dimensions: int
    image_bytes: int
    index_bytes: int
    model: ModelInfo | None = None
    details: dict[str, Any] = field(default_factory=dict)
