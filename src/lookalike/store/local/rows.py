"""SQL pieces of the local store: record (de)serialisation, validation and filters."""

from __future__ import annotations

import math
import posixpath
import sqlite3
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from lookalike.errors import ModelMismatchError, QueryError, StoreDamagedError, StoreError
from lookalike.records import Filters, Hit, ModelInfo, Record
from lookalike.store.checks import mismatch_message
from lookalike.store.local.db import decode_text, encode_text
from lookalike.store.local.migrations import SHA256_HEAD

__all__ = [
    "DOC_COLUMNS",
    "VEC_COLUMNS",
    "check_blobs",
    "chunks",
    "damaged_rows",
    "filter_sql",
    "hash_lookup_params",
    "hash_lookup_where",
    "hit_from_row",
    "is_vector_blob",
    "prepare_records",
    "vector_blobs",
    "record_from_row",
    "vectors_from_blobs",
]

#: the documents columns read back into a Record, in this order (``d`` is documents)
DOC_COLUMNS = (
    "d.key, d.id, d.path, d.root, d.relpath, d.format, d.size, d.mtime, d.sha256, d.width, d.height"
)
#: the vector and its checksum, read after DOC_COLUMNS (``v`` is vectors)
VEC_COLUMNS = "v.vector, v.crc"
#: SQLite allows 32766 parameters; stay well below
CHUNK = 900


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def hash_lookup_where(n: int) -> str:
    """Rows of ``documents d`` whose sha256 is one of n hashes (``hash_lookup_params``).

    The indexed head (``documents_sha256_head``) finds them and the whole hash is
    compared on each row. The unary ``+`` keeps SQLite from propagating a single
    ``sha256 = ?`` into the head's expression, which would no longer match the index.
    """
    marks = placeholders(n)
    return f"{SHA256_HEAD.replace('sha256', 'd.sha256')} IN ({marks}) AND +d.sha256 IN ({marks})"


def hash_lookup_params(hashes: Sequence[str]) -> list[str]:
    return [h[:16] for h in hashes] + list(hashes)


def damaged_rows(blobs: Sequence[bytes], crcs: Sequence[int | None]) -> list[int]:
    """Positions of the BLOBs that do not match the CRC-32 stored beside them."""
    crc32 = zlib.crc32
    return [
        i
        for i, (blob, crc) in enumerate(zip(blobs, crcs, strict=True))
        if crc is None or crc32(blob) != crc
    ]


def check_blobs(
    blobs: Sequence[bytes],
    crcs: Sequence[int | None],
    label: Callable[[int], str],
    collection: str,
) -> None:
    """Raise StoreDamagedError when a vector BLOB does not match the CRC-32 stored beside it
    (bit-rot or a stray write: SQLite's own checks do not look inside a BLOB)."""
    bad = damaged_rows(blobs, crcs)
    if bad:
        raise StoreDamagedError(
            f"collection {collection!r}: the stored vector of {label(bad[0])} fails its checksum "
            f"({len(bad)} of {len(blobs)} read failed; the database file was damaged on disk); "
            f"run `lookalike check --repair -c {collection}` to re-embed the damaged images "
            "from their files"
        )


def record_from_row(
    row: sqlite3.Row | tuple[Any, ...], dim: int | None = None, collection: str = ""
) -> Record:
    """A Record from DOC_COLUMNS (+ optional trailing VEC_COLUMNS, checked)."""
    vector = None
    if dim is not None and len(row) > 12 and row[11] is not None:
        label = f"document {decode_text(row[1])!r}"
        check_blobs([row[11]], [row[12]], lambda _i: label, collection)
        vector = vectors_from_blobs([row[11]], dim)[0].copy()
    return Record(
        id=decode_text(row[1]),
        path=decode_text(row[2]),
        root=decode_text(row[3]),
        relpath=decode_text(row[4]),
        format=str(row[5]),
        size=int(row[6]),
        mtime=float(row[7]),
        sha256=str(row[8]),
        width=int(row[9]),
        height=int(row[10]),
        vector=vector,
    )


def hit_from_row(row: sqlite3.Row | tuple[Any, ...], score: float) -> Hit:
    """A Hit from DOC_COLUMNS; its metadata is what ``Record.metadata()`` gives, built
    directly because this runs for every hit of every search."""
    path = decode_text(row[2])
    metadata = {
        "path": path,
        "root": decode_text(row[3]),
        "relpath": decode_text(row[4]),
        "format": str(row[5]),
        "size": int(row[6]),
        "mtime": float(row[7]),
        "sha256": str(row[8]),
        "width": int(row[9]),
        "height": int(row[10]),
        "folder": posixpath.dirname(path),
    }
    return Hit(decode_text(row[1]), path, min(1.0, max(-1.0, score)), metadata)


def vectors_from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """float32 rows from stored vectors: little-endian float32 (``dim * 4`` bytes) or, in a
    collection created with ``vector_precision = float16``, float16 (``dim * 2`` bytes),
    re-normalised after widening. A collection may hold both (a row keeps the precision it
    was written with), so the length of each blob says how to read it."""
    joined = b"".join(blobs)
    if len(joined) == len(blobs) * dim * 4:
        return np.frombuffer(joined, dtype="<f4").reshape(len(blobs), dim)
    if len(joined) == len(blobs) * dim * 2 and all(len(b) == dim * 2 for b in blobs):
        return _widen(np.frombuffer(joined, dtype="<f2").reshape(len(blobs), dim))
    out = np.empty((len(blobs), dim), dtype=np.float32)
    for i, blob in enumerate(blobs):
        if len(blob) == dim * 4:
            out[i] = np.frombuffer(blob, dtype="<f4")
        elif len(blob) == dim * 2:
            out[i] = _widen(np.frombuffer(blob, dtype="<f2").reshape(1, dim))[0]
        else:
            raise StoreError(
                f"the collection database holds a vector that is not {dim} float32 or float16 "
                "values; the file is damaged: run `lookalike check --repair` on the collection"
            )
    return out


def _widen(half: np.ndarray) -> np.ndarray:
    wide = half.astype(np.float32)
    norms = np.linalg.norm(wide, axis=1, keepdims=True)
    np.divide(wide, norms, out=wide, where=norms > 0)
    return wide


def is_vector_blob(blob: object, dim: int) -> bool:
    """A stored vector of the right length, in either precision."""
    return isinstance(blob, bytes) and len(blob) in (dim * 4, dim * 2)


def _text(value: Any, name: str, rec_id: str) -> str:
    if not isinstance(value, str):
        raise StoreError(f"record {rec_id!r}: {name} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(f"record {rec_id!r}: {name} {value!r} is not valid text") from exc
    return value


def _fs_text(value: Any, name: str, rec_id: str) -> bytes:
    if not isinstance(value, str):
        raise StoreError(f"record {rec_id!r}: {name} must be a string, got {type(value).__name__}")
    try:
        return encode_text(value)
    except UnicodeEncodeError as exc:  # surrogates that are not escaped bytes
        raise StoreError(f"record {rec_id!r}: {name} {value!r} cannot be stored") from exc


def _int(value: Any, name: str, rec_id: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise StoreError(f"record {rec_id!r}: {name} must be a whole number, got {value!r}")
    out = int(value)
    if not -(2**63) <= out < 2**63:
        raise StoreError(f"record {rec_id!r}: {name} {out} is out of range")
    return out


def _as_vector(vector: Any, model: ModelInfo, rec_id: str, collection: str) -> np.ndarray:
    if vector is None:
        raise StoreError(f"record {rec_id!r} has no vector; embed it before storing it")
    try:
        v = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"record {rec_id!r}: its vector is not numeric ({exc})") from exc
    if v.ndim != 1 or v.shape[0] != model.dim:
        raise ModelMismatchError(
            mismatch_message(f"the vector of record {rec_id!r}", tuple(v.shape), model, collection)
        )
    return v


def vector_blobs(matrix: np.ndarray, ids: Sequence[str], precision: str = "float32") -> list[bytes]:
    """Rows of ``matrix`` as little-endian float32 (or float16) bytes, L2-normalised
    (checked in one go)."""
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = ids[int(np.argmin(finite))]
        raise StoreError(f"record {bad!r}: its vector contains NaN or infinite values")
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    if (norms == 0).any():
        bad = ids[int(np.argmax(norms == 0))]
        raise StoreError(f"record {bad!r}: its vector is all zeros and cannot be compared")
    off = np.abs(norms - 1.0) > 1e-4
    if off.any():
        matrix = matrix.copy()
        matrix[off] = (matrix[off] / norms[off, None]).astype(np.float32)
    data = np.ascontiguousarray(matrix, dtype="<f2" if precision == "float16" else "<f4")
    return [row.tobytes() for row in data]


def _metadata(rec: Any) -> tuple[Any, ...]:
    raw_id = getattr(rec, "id", None)
    if not isinstance(raw_id, str) or not raw_id:
        raise StoreError(f"every record needs a non-empty string id, got {raw_id!r}")
    try:
        mtime = float(rec.mtime)
    except (TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"record {raw_id!r}: mtime must be a number") from exc
    if not math.isfinite(mtime):
        raise StoreError(f"record {raw_id!r}: mtime must be a finite number, got {mtime}")
    try:
        return (
            _fs_text(raw_id, "id", raw_id),
            _fs_text(rec.path, "path", raw_id),
            _fs_text(rec.root, "root", raw_id),
            _fs_text(rec.relpath, "relpath", raw_id),
            _text(rec.format, "format", raw_id),
            _int(rec.size, "size", raw_id),
            mtime,
            _text(rec.sha256, "sha256", raw_id),
            _int(rec.width, "width", raw_id),
            _int(rec.height, "height", raw_id),
        )
    except AttributeError as exc:
        raise StoreError(f"record {raw_id!r} lacks a field: {exc}") from exc


def prepare_records(
    records: Sequence[Any], model: ModelInfo, collection: str, precision: str = "float32"
) -> list[tuple[Any, ...]]:
    """Validated rows (id, path, root, relpath, format, size, mtime, sha256, width, height,
    vector bytes, vector CRC-32) ready to bind; raises StoreError / ModelMismatchError
    naming the record."""
    rows = [_metadata(rec) for rec in records]
    ids = [rec.id for rec in records]
    vectors = [
        _as_vector(getattr(rec, "vector", None), model, rec.id, collection) for rec in records
    ]
    blobs = vector_blobs(np.stack(vectors), ids, precision)
    return [(*row, blob, zlib.crc32(blob)) for row, blob in zip(rows, blobs, strict=True)]


def _number(value: Any, name: str, *, whole: bool) -> float | int:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):
        raise QueryError(f"filter {name} must be a finite number, got {value!r}", field=name)
    return int(value) if whole else float(value)


def filter_sql(filters: Filters | None) -> tuple[str, list[Any]]:
    """A WHERE clause (over documents, unaliased columns) and its parameters."""
    if filters is None or filters.is_empty():
        return "1", []
    clauses: list[str] = []
    params: list[Any] = []
    if filters.folder is not None:
        if not isinstance(filters.folder, str) or not filters.folder:
            raise QueryError("filter folder must be a non-empty path", field="folder")
        prefix = encode_text(filters.folder_prefix or "/")
        # A range, not LIKE: exact on folder boundaries, immune to % and _ in names.
        # Everything that starts with "<folder>/" sorts in ["<folder>/", "<folder>0").
        clauses.append("path >= ? AND path < ?")
        params += [prefix, prefix[:-1] + b"0"]
    if filters.formats:
        formats = list(filters.formats)
        if not all(isinstance(f, str) for f in formats):
            raise QueryError("filter formats must be format names", field="formats")
        clauses.append(f"format IN ({placeholders(len(formats))})")
        params += formats
    for name, op, whole in (
        ("min_size", ">=", True),
        ("max_size", "<=", True),
        ("modified_after", ">=", False),
        ("modified_before", "<=", False),
    ):
        value = getattr(filters, name)
        if value is not None:
            column = "size" if whole else "mtime"
            clauses.append(f"{column} {op} ?")
            params.append(_number(value, name, whole=whole))
    return " AND ".join(clauses) or "1", params
