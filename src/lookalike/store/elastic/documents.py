"""The documents the Elasticsearch backend writes and reads back (layout in ``mapping``).

Pure functions: ids Elasticsearch can hold, unit vectors, the bulk source line
of a record (the vector as JSON for the index, a compact float32 copy for
``get`` and ``copy``), and records and file states decoded from ``_source``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lookalike.errors import ModelMismatchError, QueryError, StoreError
from lookalike.records import FileState, ModelInfo, Record
from lookalike.store.checks import mismatch_message
from lookalike.store.elastic.mapping import MAX_ID_BYTES

__all__ = [
    "check_id",
    "decode_record",
    "decode_state",
    "encode_document",
    "is_storable_id",
    "listed_ids",
    "safe_text",
    "unit_vector",
]


# -- text that Elasticsearch can hold ---------------------------------------------------------


def safe_text(s: str) -> str:
    """``s`` as valid Unicode: undecodable bytes of file names become U+FFFD."""
    try:
        raw = s.encode("utf-8", "surrogateescape")  # os.fsdecode's escapes back to bytes
    except UnicodeEncodeError:
        raw = s.encode("utf-8", "surrogatepass")  # any other lone surrogate
    return raw.decode("utf-8", "replace")


def _is_clean(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(doc_id: str) -> None:
    if not isinstance(doc_id, str) or not doc_id or not _is_clean(doc_id):
        raise StoreError(
            f"document id {doc_id!r} cannot be stored in Elasticsearch: use a non-empty UTF-8 id"
        )
    if len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
        raise StoreError(
            f"document id {doc_id[:40]!r}... is longer than Elasticsearch's 512-byte limit"
        )


def listed_ids(ids: Sequence[str]) -> list[str]:
    """``ids`` without repeats; QueryError unless it is a list of strings."""
    if isinstance(ids, str):
        raise QueryError("ids must be a list of ids, not one string", field="ids")
    for i in ids:
        if not isinstance(i, str):
            raise QueryError(f"document ids are strings, got {i!r}", field="ids")
    return list(dict.fromkeys(ids))


def is_storable_id(doc_id: str) -> bool:
    try:
        check_id(doc_id)
    except StoreError:
        return False
    return True


# -- vectors ----------------------------------------------------------------------------------


def unit_vector(
    vector: Any, dim: int, *, what: str, model: ModelInfo, collection: str
) -> np.ndarray:
    """``vector`` as a float32 unit vector of length ``dim``; ModelMismatchError if mis-shaped."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (dim,):
        raise ModelMismatchError(mismatch_message(what, tuple(arr.shape), model, collection))
    if not np.all(np.isfinite(arr)):
        raise StoreError(f"{what} contains NaN or infinite values; re-embed it")
    norm = float(np.linalg.norm(arr.astype(np.float64)))
    if norm == 0.0:
        raise StoreError(f"{what} is all zeros and has no direction to search by; re-embed it")
    return (arr.astype(np.float64) / norm).astype(np.float32)


def _json_floats(arr: np.ndarray) -> str:
    """A float32 array as a JSON list; 9 significant digits read back to the same float32
    (about 13.6 bytes a number instead of 22 for Python's float64 repr)."""
    return "[" + ",".join([f"{x:.9g}" for x in arr.tolist()]) + "]"


def _encode_vec(arr: np.ndarray) -> str:
    return base64.b64encode(arr.astype("<f4").tobytes()).decode("ascii")


def _decode_vec(text: Any, dim: int, doc_id: str) -> np.ndarray:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StoreError(f"document {doc_id!r} has a corrupt vector copy; re-index it") from exc
    if len(raw) != 4 * dim:
        raise StoreError(
            f"document {doc_id!r} has a {len(raw) // 4}-dimensional vector copy, "
            f"expected {dim}; re-index it"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


# -- documents --------------------------------------------------------------------------------


def encode_document(rec: Record, vector: np.ndarray) -> str:
    """The JSON source line of one record for a bulk ``index`` action (vector already unit)."""
    check_id(rec.id)
    if not math.isfinite(float(rec.mtime)):
        raise StoreError(f"record {rec.id!r} ({rec.path}) has an invalid mtime {rec.mtime!r}")
    src: dict[str, Any] = {
        "id": rec.id,
        "path": safe_text(rec.path),
        "folder": safe_text(posixpath.dirname(rec.path)),
        "root": safe_text(rec.root),
        "relpath": safe_text(rec.relpath),
        "format": safe_text(rec.format),
        "sha256": safe_text(rec.sha256),
        "size": int(rec.size),
        "mtime": float(rec.mtime),
        "modified": int(round(float(rec.mtime) * 1000)),
        "width": int(rec.width),
        "height": int(rec.height),
        "vec": _encode_vec(vector),
    }
    if not all(_is_clean(s) for s in (rec.path, rec.root, rec.relpath)):
        exact = json.dumps([rec.path, rec.root, rec.relpath], ensure_ascii=True)
        src["raw"] = base64.b64encode(exact.encode("ascii")).decode("ascii")
    body = json.dumps(src, ensure_ascii=False, separators=(",", ":"))
    return body[:-1] + ',"vector":' + _json_floats(vector) + "}"


def _exact_paths(src: Mapping[str, Any]) -> tuple[str, str, str]:
    raw = src.get("raw")
    if raw:
        try:
            path, root, relpath = json.loads(base64.b64decode(str(raw)).decode("ascii"))
            return str(path), str(root), str(relpath)
        except (ValueError, TypeError, binascii.Error):
            pass  # fall back to the display form below
    return str(src.get("path", "")), str(src.get("root", "")), str(src.get("relpath", ""))


def decode_record(
    doc_id: str, src: Mapping[str, Any], *, dim: int | None, with_vector: bool
) -> Record:
    path, root, relpath = _exact_paths(src)
    vector = None
    if with_vector:
        if dim is None or "vec" not in src:
            raise StoreError(f"document {doc_id!r} has no vector copy; re-index it")
        vector = _decode_vec(src["vec"], dim, doc_id)
    try:
        return Record(
            id=str(src.get("id", doc_id)),
            path=path,
            root=root,
            relpath=relpath,
            format=str(src.get("format", "")),
            size=int(src.get("size", 0)),
            mtime=float(src.get("mtime", 0.0)),
            sha256=str(src.get("sha256", "")),
            width=int(src.get("width", 0)),
            height=int(src.get("height", 0)),
            vector=vector,
        )
    except (TypeError, ValueError) as exc:
        raise StoreError(f"document {doc_id!r} has malformed fields ({exc}); re-index it") from exc


def decode_state(doc_id: str, src: Mapping[str, Any], root: str) -> FileState | None:
    """The file state of a document indexed with ``root``; None when only the U+FFFD display
    form of the root matched."""
    _path, doc_root, relpath = _exact_paths(src)
    if doc_root != root:
        return None
    return FileState(
        id=str(src.get("id", doc_id)),
        relpath=relpath,
        size=int(src.get("size", 0)),
        mtime=float(src.get("mtime", 0.0)),
        sha256=str(src.get("sha256", "")),
    )
