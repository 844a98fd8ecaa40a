"""Connecting to Elasticsearch: the client built from the settings, and the server checked.

``store`` is one URL or several, comma-separated (``https://host:9200``; user and
password may be in the URL), or empty with ``es_cloud_id``. Authentication: an API
key (``es_api_key``, encoded or ``id:key``), else a user and password. TLS:
``es_ca_certs`` and ``es_verify_certs``. Credentials never appear in messages.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lookalike.config import Settings
from lookalike.errors import ConfigError, LookalikeError, StoreUnavailableError
from lookalike.store.elastic.client import Connection, as_dict, import_client

__all__ = [
    "MIN_SERVER",
    "REQUEST_TIMEOUT",
    "connect",
    "parse_version",
    "Target",
    "target_from_settings",
]

MIN_SERVER = (8, 14)
REQUEST_TIMEOUT = 30.0


def parse_version(text: str) -> tuple[int, int, int]:
    parts = []
    for piece in str(text).split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True)
class Target:
    """Where and how to connect, taken apart from the settings."""

    hosts: list[str]
    cloud_id: str
    location: str
    auth: dict[str, Any]
    secrets: tuple[str, ...]


def target_from_settings(settings: Settings) -> Target:
    store = settings.store.strip()
    cloud_id = settings.es_cloud_id.strip()
    hosts: list[str] = []
    url_user = url_password = ""
    if store.startswith(("http://", "https://")):
        for raw in store.split(","):
            url, user, password = _split_url(raw.strip())
            hosts.append(url)
            url_user, url_password = url_user or user, url_password or password
    elif not (cloud_id and store in ("", "elasticsearch")):
        raise ConfigError(
            f"store {store!r} is not an Elasticsearch URL: use e.g. http://localhost:9200 or "
            "https://host:9200 (with the scheme), or store = elasticsearch with es_cloud_id",
            field="store",
        )
    auth: dict[str, Any] = {}
    secrets = [settings.es_password, settings.es_api_key, url_password]
    if settings.es_api_key:
        key = settings.es_api_key.strip()
        auth["api_key"] = tuple(key.split(":", 1)) if ":" in key else key
    elif settings.es_user or url_user:
        user = settings.es_user or url_user
        password = settings.es_password if settings.es_user else url_password
        auth["basic_auth"] = (user, password)
    location = (
        ", ".join(hosts) if hosts else f"Elastic Cloud deployment {cloud_id.split(':', 1)[0]!r}"
    )
    return Target(
        hosts, cloud_id if not hosts else "", location, auth, tuple(s for s in secrets if s)
    )


def _split_url(raw: str) -> tuple[str, str, str]:
    """A host URL without credentials, plus the user and password it carried (percent-decoded)."""
    try:
        parts = urllib.parse.urlsplit(raw)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"store URL is not valid: {exc}", field="store") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "store URL must look like http://host:9200 or https://host:9200", field="store"
        )
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return clean, user, password


def connect(
    settings: Settings,
    *,
    client_options: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Connection, tuple[int, int, int]]:
    """A connection to the cluster named by ``settings`` and the server's version.

    Calls ``GET /`` once, so an unreachable cluster, bad credentials or an
    unsupported server fail here, before any work.
    """
    es = import_client()
    target = target_from_settings(settings)
    kwargs: dict[str, Any] = {
        "request_timeout": REQUEST_TIMEOUT,
        "max_retries": 0,  # Connection.call retries, with back-off
        "retry_on_timeout": False,
        **target.auth,
    }
    if target.cloud_id:
        kwargs["cloud_id"] = target.cloud_id
    else:
        kwargs["hosts"] = target.hosts
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    if not settings.es_verify_certs:
        kwargs["verify_certs"] = False
        kwargs["ssl_show_warn"] = False  # the user chose this; do not warn on every request
    kwargs.update(client_options or {})
    try:
        client = es.Elasticsearch(**kwargs)
    except (ValueError, TypeError, OSError) as exc:
        msg = str(exc)
        for secret in target.secrets:
            msg = msg.replace(secret, "***")
        raise ConfigError(
            f"cannot configure the Elasticsearch client for {target.location}: {msg}", field="store"
        ) from None
    conn = Connection(client, target.location, target.secrets, sleep=sleep)
    try:
        info = conn.call("connecting", client.info, retries=1)
    except LookalikeError as exc:
        if exc.server_status == 403:
            # GET / needs the cluster privilege 'monitor'. Without it, assume the oldest
            # server this client major can talk to (features are enabled conservatively).
            return conn, _guess_version(es)
        conn.close()
        raise
    body = as_dict(info)
    version = parse_version(str((body.get("version") or {}).get("number", "0")))
    if version[:2] < MIN_SERVER:
        conn.close()
        raise StoreUnavailableError(
            f"Elasticsearch at {target.location} runs {'.'.join(map(str, version))}; "
            "lookalike needs "
            "8.14 or newer (dense_vector int8_hnsw, kNN filters, similarity). Upgrade the cluster.",
            field="store",
        )
    return conn, version


def _guess_version(es: Any) -> tuple[int, int, int]:
    major = int(getattr(es, "__version__", (8,))[0])
    return (major, 0, 0) if major >= 9 else (MIN_SERVER[0], MIN_SERVER[1], 0)
