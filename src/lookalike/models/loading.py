"""Where a model's weights come from: a local folder, the Hugging Face cache, or (last) the Hub.

Everything here runs before any indexing or searching, so that missing weights
fail early with a ``ModelNotAvailableError`` that names the model, the folders
looked in and how to provide the weights. The environment (``HF_HUB_OFFLINE``,
``HF_HUB_CACHE``, ``HF_HOME`` ...) is read at call time, not at import time, so
tests and long-running processes see the values in force when they ask.

Model ids (what stores record, see ``model_id_for``):

* a Hub model is recorded by its Hub name, e.g. ``sentence-transformers/clip-ViT-B-32``,
  whether it was found in the cache, downloaded, or given as a path inside a
  Hugging Face cache snapshot (``.../models--org--name/snapshots/<sha>``): the
  same weights get the same id on every machine;
* any other folder is recorded as ``local:<folder name>@<12 hex digits>``, a
  fingerprint of its file names, sizes, small files (configs, tokenizer) and
  samples of its large weight files. Copying the folder elsewhere keeps the id;
  retraining the weights in place changes it, so a store refuses to mix vectors
  from before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from lookalike.errors import ConfigError, ModelNotAvailableError

__all__ = [
    "CLIP_TEXT",
    "ResolvedModel",
    "canonical_name",
    "hub_cache_dirs",
    "is_hub_name",
    "is_offline",
    "model_id_for",
    "resolve_model",
]

#: the special ``text_model`` value meaning "the CLIP model's own (English) text tower"
CLIP_TEXT = "clip"

DEFAULT_ORG = "sentence-transformers"
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
_SHORT_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}$")
_SNAPSHOT_RE = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/[0-9a-f]{6,64}$")
_TRUE = {"1", "on", "yes", "true"}
# Files the sentence-transformers loader does not need (other runtimes' exports).
_IGNORE_ON_DOWNLOAD = [
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "tf_model*",
    "flax_model*",
    "rust_model*",
    "coreml/*",
]
_MODEL_MARKERS = ("modules.json", "config.json")
_MAX_MODEL_FILES = 5_000  # more than this is not a model folder; don't walk a whole disk
_PROBE_SECONDS = 5.0
_SMALL_FILE = 1 << 20  # files under 1 MiB are hashed whole
_SAMPLE = 1 << 16  # large files: three 64 KiB samples (head, middle, tail) plus the size

Source = Literal["folder", "cache", "hub"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved to weights on disk.

    ``name`` is the canonical name (a Hub name such as ``org/model``, or the
    folder path as given); ``path`` the folder holding the weights; ``source``
    says where it was found ("folder": a local folder, "cache": the Hugging Face
    cache, "hub": downloaded just now).
    """

    name: str
    path: Path | None
    source: Source


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids network access, read now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def hub_cache_dirs(cache_folder: str | None = None) -> list[Path]:
    """The Hugging Face hub caches to look in, in order; downloads go to the first.

    ``cache_folder`` (the ``model_cache`` setting) comes first; it may name a hub
    cache or a Hugging Face home holding ``hub/`` (a copied ``~/.cache/huggingface``).
    Then the standard cache, read from the environment now: HF_HUB_CACHE, else
    HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub,
    else ~/.cache/huggingface/hub; then SENTENCE_TRANSFORMERS_HOME when set.
    """
    dirs: list[Path] = []
    if cache_folder:
        base = Path(cache_folder).expanduser()
        if (base / "hub").is_dir():
            dirs.append(base / "hub")
        dirs.append(base)
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        dirs.append(Path(env["HF_HUB_CACHE"]).expanduser())
    elif env.get("HUGGINGFACE_HUB_CACHE"):
        dirs.append(Path(env["HUGGINGFACE_HUB_CACHE"]).expanduser())
    else:
        if env.get("HF_HOME"):
            home = Path(env["HF_HOME"]).expanduser()
        else:
            xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            home = Path(xdg).expanduser() / "huggingface"
        dirs.append(home / "hub")
    if env.get("SENTENCE_TRANSFORMERS_HOME"):
        dirs.append(Path(env["SENTENCE_TRANSFORMERS_HOME"]).expanduser())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name in (".", "..")
        or name.count("/") > 1
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")  # C:\ ...
    )


def canonical_name(name: str) -> str:
    """The name a model is known by: existing folders and paths as given, short Hub names expanded.

    ``clip-ViT-B-32`` becomes ``sentence-transformers/clip-ViT-B-32``; a name that
    is an existing folder (relative or absolute) stays a path.
    """
    name = name.strip()
    if not name or _looks_like_path(name) or Path(name).expanduser().is_dir():
        return name
    if "/" not in name and _SHORT_NAME_RE.match(name):
        return f"{DEFAULT_ORG}/{name}"
    return name


def is_hub_name(name: str) -> bool:
    """True for a well-formed Hugging Face model name (``org/name``) that is not a local folder."""
    return bool(_REPO_ID_RE.match(name)) and not Path(name).expanduser().exists()


def _hub_name_from_snapshot(folder: Path) -> str | None:
    """``org/name`` when ``folder`` is a snapshot inside a Hugging Face cache."""
    m = _SNAPSHOT_RE.search(folder.resolve().as_posix())
    if m is None:
        return None
    return f"{m.group('org')}/{m.group('name')}"


def _how_to_provide(name: str, role: str | None) -> str:
    env = {"image": "LOOKALIKE_MODEL", "text": "LOOKALIKE_TEXT_MODEL"}.get(role or "")
    env_hint = (
        f"set {env}=/path/to/folder"
        if env
        else "set LOOKALIKE_MODEL (or LOOKALIKE_TEXT_MODEL)=/path/to/folder"
    )
    if _REPO_ID_RE.match(name):
        return (
            f"download it on a connected machine with `hf download {name}` (or "
            f"`huggingface-cli download {name}`) and copy ~/.cache/huggingface to this machine "
            f"(or point the model_cache setting at the copy), or {env_hint} holding a "
            "sentence-transformers model"
        )
    return f"{env_hint} holding a sentence-transformers model, or use a Hugging Face model name"


def _find_in_cache(repo_id: str, caches: list[Path]) -> Path | None:
    """The snapshot folder of ``repo_id`` in one of ``caches``, without any network access."""
    from huggingface_hub import try_to_load_from_cache

    for cache in caches:
        if not cache.is_dir():
            continue
        for marker in _MODEL_MARKERS:
            try:
                found = try_to_load_from_cache(repo_id, marker, cache_dir=cache)
            except (ValueError, OSError):
                found = None
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found).parent
        # A copied cache can lack refs/main; take the newest snapshot that looks complete.
        snapshots = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots"
        try:
            candidates = [
                s
                for s in snapshots.iterdir()
                if s.is_dir() and any((s / m).is_file() for m in _MODEL_MARKERS)
            ]
        except OSError:
            continue
        if candidates:
            return max(candidates, key=lambda s: s.stat().st_mtime)
    return None


def _probe_hub(timeout: float = _PROBE_SECONDS) -> str | None:
    """None when the Hub (or its proxy) accepts a TCP connection in time, else why not.

    Runs in a daemon thread so that a slow DNS lookup cannot outlast the deadline.
    """
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    scheme = endpoint.scheme or "https"
    env = {k.lower(): v for k, v in os.environ.items() if k.lower().endswith("_proxy") and v}
    proxy = env.get(f"{scheme}_proxy") or env.get("all_proxy") or ""
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    target = urlparse(proxy) if proxy else endpoint
    host = target.hostname or "huggingface.co"
    port = target.port or (80 if target.scheme == "http" else 443)
    result: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(f"cannot reach {host}:{port} ({exc.__class__.__name__}: {exc})")

    worker = threading.Thread(target=attempt, name="lookalike-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        return f"no answer from {host}:{port} within {timeout:.0f} s"
    return result[0]


def _download(repo_id: str, cache: Path) -> Path:
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        repo_id,
        cache_dir=cache,
        ignore_patterns=_IGNORE_ON_DOWNLOAD,
        etag_timeout=_PROBE_SECONDS,
    )
    return Path(folder)


def resolve_model(
    name: str,
    *,
    cache_folder: str | None,
    role: str | None = None,
    allow_download: bool = True,
) -> ResolvedModel:
    """Find the weights of ``name`` (a folder, or a Hub name), downloading only as a last resort.

    Order: an existing local folder; the Hugging Face cache (no network); a
    download, unless HF_HUB_OFFLINE is set, after a quick reachability probe so
    that a machine without network fails in seconds, not minutes. ``role``
    ("image" or "text") only tailors the advice in the error message;
    ``allow_download=False`` looks on disk only (for reports such as ``lookalike models``).
    Raises ModelNotAvailableError when nothing works.
    """
    canon = canonical_name(name)
    if not canon:
        raise ConfigError(
            f"the {role or 'model'} model name is empty: set a Hugging Face name such as "
            "'sentence-transformers/clip-ViT-B-32' or a local sentence-transformers folder",
            field=f"{role}_model" if role else None,
        )
    as_path = Path(canon).expanduser()
    if as_path.is_dir():
        if not any((as_path / marker).is_file() for marker in _MODEL_MARKERS):
            raise ModelNotAvailableError(
                f"folder {canon} does not hold a model (no {' or '.join(_MODEL_MARKERS)}): "
                f"{_how_to_provide(canon, role)}",
                field=f"{role}_model" if role else None,
            )
        return ResolvedModel(canon, as_path.resolve(), "folder")
    if _looks_like_path(canon) or as_path.exists():
        what = "is a file, not a folder" if as_path.exists() else "does not exist"
        raise ModelNotAvailableError(
            f"model folder {canon} {what}: {_how_to_provide(canon, role)}",
            field=f"{role}_model" if role else None,
        )
    if not _REPO_ID_RE.match(canon):
        raise ModelNotAvailableError(
            f"model {canon!r} is neither an existing folder nor a Hugging Face model name "
            f"(org/name): {_how_to_provide(canon, role)}",
            field=f"{role}_model" if role else None,
        )

    caches = hub_cache_dirs(cache_folder)
    found = _find_in_cache(canon, caches)
    if found is not None:
        return ResolvedModel(canon, found, "cache")

    looked = ", ".join(str(c) for c in caches)
    if not allow_download:
        why = "no download was attempted"
    elif is_offline():
        why = "downloading is disabled (HF_HUB_OFFLINE is set)"
    else:
        problem = _probe_hub()
        if problem is None:
            try:
                return ResolvedModel(canon, _download(canon, caches[0]), "hub")
            except Exception as exc:  # the Hub client raises many kinds; all mean "not available"
                problem = f"the download failed ({exc.__class__.__name__}: {exc})"
        why = f"it cannot be downloaded: {problem}"
    raise ModelNotAvailableError(
        f"model {canon} is not in the Hugging Face cache (looked in {looked}) and {why}. "
        f"To provide it: {_how_to_provide(canon, role)}",
        field=f"{role}_model" if role else None,
    )


def _fingerprint(folder: Path) -> str:
    """A short content fingerprint of a model folder, cheap even for large weight files."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
        if len(files) > _MAX_MODEL_FILES:
            raise ModelNotAvailableError(
                f"folder {folder} holds more than {_MAX_MODEL_FILES} files, so it is not a model "
                "folder: point the model setting at the folder that holds modules.json"
            )
    for path in files:
        rel = path.relative_to(folder).as_posix()
        if rel.lower().startswith("readme"):
            continue
        try:
            size = path.stat().st_size
            digest.update(f"{rel}\0{size}\0".encode())
            with path.open("rb") as fh:
                if size <= _SMALL_FILE:
                    digest.update(fh.read())
                else:
                    for offset in (0, size // 2, size - _SAMPLE):
                        fh.seek(offset)
                        digest.update(fh.read(_SAMPLE))
        except OSError as exc:
            raise ModelNotAvailableError(
                f"cannot read {path} in model folder {folder}: {exc}; "
                "check the folder's permissions"
            ) from exc
    return digest.hexdigest()[:12]


def model_id_for(resolved: ResolvedModel) -> str:
    """The stable id a store records for vectors made by this model (see the module docstring)."""
    if resolved.source != "folder" or resolved.path is None:
        return resolved.name
    hub_name = _hub_name_from_snapshot(resolved.path)
    if hub_name is not None:
        return hub_name
    return f"local:{resolved.path.name}@{_fingerprint(resolved.path)}"
