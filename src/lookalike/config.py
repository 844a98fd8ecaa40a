"""Settings: defaults < config file < ``.env`` < ``LOOKALIKE_*`` environment < explicit overrides.

A ``Settings`` object is built once by the CLI or the web app and passed down;
nothing reads the environment behind its back. The config file is TOML
(``$LOOKALIKE_HOME/config.toml`` or the file named by ``LOOKALIKE_CONFIG``),
with the same keys as the fields below.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from lookalike.errors import ConfigError

__all__ = ["DEFAULT_IMAGE_MODEL", "DEFAULT_TEXT_MODEL", "Settings", "default_home"]

DEFAULT_IMAGE_MODEL = "sentence-transformers/clip-ViT-B-32"
DEFAULT_TEXT_MODEL = "sentence-transformers/clip-ViT-B-32-multilingual-v1"

# Aliases from the seed's demo (.env with ES_HOST / ES_USER / ES_PWD).
_ALIASES = {
    "ES_HOST": "store",
    "ES_USER": "es_user",
    "ES_PWD": "es_password",
    "ES_API_KEY": "es_api_key",
    "ES_CLOUD_ID": "es_cloud_id",
}

_COLLECTION_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


#: how a local collection stores its vectors (fixed when the collection is created)
VECTOR_PRECISIONS = ("float32", "float16")


def default_home() -> Path:
    """Per-user data folder: $XDG_DATA_HOME/lookalike or ~/.local/share/lookalike."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lookalike"


@dataclass(frozen=True)
class Settings:
    # where collections live, and which one
    home: Path = field(default_factory=default_home)
    collection: str = "default"
    # "local" (embedded, the default) or an Elasticsearch URL such as https://host:9200
    store: str = "local"
    # how a new local collection stores each vector: float32 (exact) or float16 (half the disk)
    vector_precision: str = "float32"
    # models: a preset name (``lookalike models --available``), a Hugging Face name or a folder
    image_model: str = DEFAULT_IMAGE_MODEL
    text_model: str = DEFAULT_TEXT_MODEL
    runtime: str = "auto"
    model_cache: str = ""  # empty: the Hugging Face default cache
    # ingest
    batch_size: int = 32
    decode_workers: int = 0  # 0: choose from the CPU count
    max_pixels: int = 64_000_000  # decoded pixels allowed per image
    # the ONNX query exports after a first index: "background", "now" or "search"
    query_export: str = "background"
    # web
    host: str = "127.0.0.1"
    port: int = 8000
    api_token: str = ""
    max_upload_bytes: int = 20 * 1024 * 1024
    # Elasticsearch
    es_api_key: str = ""
    es_user: str = ""
    es_password: str = ""
    es_cloud_id: str = ""
    es_ca_certs: str = ""
    es_verify_certs: bool = True
    es_index_options: str = "auto"
    es_m: int = 16
    es_ef_construction: int = 100
    es_num_candidates: int = 100
    es_text_model: str = ""
    # who re-scores quantized candidates: auto (GA features only), cluster, local
    es_rescore: str = "auto"

    def __post_init__(self) -> None:
        # A preset name (``laion-b32``) in ``image_model`` names both towers.
        from lookalike.presets import expand_model

        image, text = expand_model(self.image_model, self.text_model, DEFAULT_TEXT_MODEL)
        object.__setattr__(self, "image_model", image)
        object.__setattr__(self, "text_model", text)
        if not _COLLECTION_RE.match(self.collection):
            raise ConfigError(
                f"invalid collection name {self.collection!r}: use 1-64 lower-case letters, "
                "digits, '-' or '_', starting with a letter or digit",
                field="collection",
            )
        for name in ("batch_size", "max_pixels", "max_upload_bytes", "es_num_candidates"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number", field=name)
        if self.vector_precision not in VECTOR_PRECISIONS:
            raise ConfigError(
                f"vector_precision {self.vector_precision!r} is not one of "
                + ", ".join(VECTOR_PRECISIONS),
                field="vector_precision",
            )
        if self.query_export not in ("background", "now", "search"):
            raise ConfigError(
                f"unknown query_export {self.query_export!r}: use background, now or search",
                field="query_export",
            )
        if self.decode_workers < 0:
            raise ConfigError("decode_workers must be 0 (auto) or more", field="decode_workers")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is not a valid TCP port", field="port")

    @property
    def collection_dir(self) -> Path:
        return self.home / "collections" / self.collection

    @property
    def is_local_store(self) -> bool:
        return self.store in ("", "local")

    def with_overrides(self, **overrides: Any) -> Settings:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **_coerce_all(clean, source="option"))

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = ".env",
        config_file: str | Path | None = None,
    ) -> Settings:
        """Build settings from every source, lowest precedence first.

        ``None`` values in ``overrides`` mean "not given" and are ignored.
        """
        env = dict(os.environ if environ is None else environ)
        file_env: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            file_env = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        merged_env = {**file_env, **env}  # the real environment wins over .env

        values: dict[str, Any] = {}
        home = Path(merged_env.get("LOOKALIKE_HOME") or default_home()).expanduser()
        if overrides and overrides.get("home") is not None:
            home = Path(overrides["home"]).expanduser()
        cfg_path = config_file or merged_env.get("LOOKALIKE_CONFIG") or home / "config.toml"
        values.update(_read_config_file(Path(cfg_path), explicit=bool(config_file)))
        values.update(_from_env(merged_env))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        values["home"] = home
        return cls(**_coerce_all(values, source="setting"))


_FIELDS = {f.name: f for f in fields(Settings)}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for alias, name in _ALIASES.items():
        if env.get(alias):
            out[name] = env[alias]
    if env.get("LOOKALIKE_MODEL"):  # the documented short name
        out["image_model"] = env["LOOKALIKE_MODEL"]
    for name in _FIELDS:
        key = "LOOKALIKE_" + name.upper()
        if key in env and env[key] != "":
            out[name] = env[key]
    return out


def _read_config_file(path: Path, *, explicit: bool) -> dict[str, Any]:
    if not path.is_file():
        if explicit:
            raise ConfigError(f"config file {path} does not exist", field="config")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", field="config") from exc
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}", field=unknown[0])
    return data


def _coerce_all(values: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown {source} {name!r}", field=name)
        out[name] = _coerce(name, raw)
    return out


def _coerce(name: str, raw: Any) -> Any:
    if name == "home":
        return Path(raw).expanduser()
    default = _FIELDS[name].default
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if isinstance(default, int):
            if isinstance(raw, bool):
                raise ValueError("expected a whole number")
            return int(str(raw).replace("_", "")) if not isinstance(raw, int) else raw
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid value for {name}: {exc}", field=name) from exc
