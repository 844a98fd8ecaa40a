"""Talking to Elasticsearch: retries with back-off, bulk writes, error translation.

The official ``elasticsearch`` client is an optional extra, imported by
``import_client`` only. Every call to the cluster goes through ``Connection.call``
(or ``bulk``), which retries 429 and 5xx answers and lost connections with
exponential back-off, then turns what is left into lookalike's ``StoreError``
family with a message that names the URL (never a password or API key) and
what to do.

One retry budget per request: ``retries`` (5) more attempts at most, whatever
failed. A bulk batch spends the same budget on a refused request and on refused
documents, so it is sent at most 6 times (retries nested inside retries could send
it 36 times).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lookalike.errors import ConfigError, LookalikeError, StoreError, StoreUnavailableError

__all__ = [
    "INSTALL_HINT",
    "RETRY_STATUS",
    "as_dict",
    "BulkFailure",
    "BulkOp",
    "BulkStoreError",
    "Connection",
    "error_type",
    "import_client",
]

T = TypeVar("T")

INSTALL_HINT = "pip install 'lookalike[elasticsearch]'"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_BULK_FILTER = (
    "errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.reason"
)

#: one bulk operation: ("index", id, source JSON) or ("delete", id, None)
BulkOp = tuple[str, str, str | None]


def import_client() -> Any:
    try:
        import elasticsearch
    except ImportError as exc:
        raise ConfigError(
            f"the Elasticsearch store needs the elasticsearch client: {INSTALL_HINT}", field="store"
        ) from exc
    return elasticsearch


@dataclass
class BulkFailure:
    id: str
    status: int
    reason: str


class BulkStoreError(StoreError):
    """Some documents of a bulk request were not written; ``failures`` says which and why."""

    def __init__(self, message: str, failures: list[BulkFailure]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass
class Connection:
    """A client plus what is needed to retry its calls and explain its failures."""

    client: Any
    location: str  # the URL or cloud id, without credentials
    secrets: Sequence[str] = ()
    retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    bulk_max_docs: int = 500
    bulk_max_bytes: int = 8 * 1024 * 1024
    jitter: Callable[[], float] = random.random
    _es: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._es = import_client()

    # -- one call -------------------------------------------------------------------------------

    def call(
        self,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        retries: int | None = None,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> T | None:
        """``fn(*args, **kwargs)`` with retries on 429/5xx and connection loss; errors translated.

        With ``missing_ok``, a 404 saying the index (or alias) does not exist returns None.
        """
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # the client's errors are translated below
                if missing_ok and self._is_missing_index(exc):
                    return None
                if attempt + 1 < attempts and self._retryable(exc):
                    self.sleep(self.backoff(attempt))
                    continue
                raise self.translate(exc, action) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _is_missing_index(self, exc: Exception) -> bool:
        if not isinstance(exc, self._es.ApiError) or exc.meta.status != 404:
            return False
        body = exc.body if isinstance(exc.body, Mapping) else {}
        err = body.get("error")
        # GET /_alias/NAME answers {"error": "alias [NAME] missing", "status": 404}
        return isinstance(err, str) or (
            isinstance(err, Mapping) and err.get("type") == "index_not_found_exception"
        )

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with equal jitter: between half and all of base x 2^attempt,
        so clients throttled together do not come back together."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return float(ceiling / 2 + ceiling / 2 * self.jitter())

    def _retryable(self, exc: Exception) -> bool:
        es = self._es
        if isinstance(exc, es.exceptions.ConnectionTimeout):
            return True
        if isinstance(exc, es.exceptions.SSLError):
            return False
        if isinstance(exc, es.exceptions.ConnectionError):
            return True
        return isinstance(exc, es.ApiError) and exc.meta.status in RETRY_STATUS

    # -- errors ---------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def translate(self, exc: Exception, action: str) -> LookalikeError:
        """The lookalike error for a client exception raised while doing ``action``."""
        if isinstance(exc, LookalikeError):
            return exc
        es = self._es
        where = self.location
        if isinstance(exc, es.exceptions.SSLError):
            return StoreUnavailableError(
                self.redact(
                    f"TLS failed with Elasticsearch at {where} while {action}: {_short(exc)}. "
                    "Point es_ca_certs at the cluster's CA certificate (for the docker-compose "
                    "cluster: http://, no TLS), or set es_verify_certs=false on a trusted network."
                ),
                field="es_ca_certs",
            )
        if isinstance(exc, es.exceptions.ConnectionError):  # includes ConnectionTimeout
            return StoreUnavailableError(
                self.redact(
                    f"cannot reach Elasticsearch at {where} while {action}: {_short(exc)}. "
                    "Check that it is running (deploy/docker-compose.yml starts one) and that "
                    "the store setting (or ES_HOST) names it."
                ),
                field="store",
            )
        if isinstance(exc, es.exceptions.UnsupportedProductError):
            return StoreUnavailableError(
                f"the server at {where} is not Elasticsearch (OpenSearch and others are not "
                "supported by this backend); point the store setting at an Elasticsearch "
                "8.14+ cluster",
                field="store",
            )
        if isinstance(exc, es.ApiError):
            return self._translate_api(exc, action)
        if isinstance(exc, es.exceptions.SerializationError):
            return StoreError(
                self.redact(f"Elasticsearch sent an unreadable answer while {action}: {exc}")
            )
        if isinstance(exc, (ValueError, TypeError)):
            return StoreError(self.redact(f"Elasticsearch request failed while {action}: {exc}"))
        raise exc

    def _translate_api(self, exc: Any, action: str) -> LookalikeError:
        err = self._translate_api_inner(exc, action)
        err.server_type = error_type(exc.body)[0]
        err.server_status = int(exc.meta.status)
        return err

    def _translate_api_inner(self, exc: Any, action: str) -> LookalikeError:
        status = int(exc.meta.status)
        etype, reason = error_type(exc.body)
        where = self.location
        text = self.redact(f"{etype}: {reason}" if reason else etype or str(exc.message))
        if etype == "media_type_header_exception":
            return StoreUnavailableError(
                f"the installed elasticsearch client ({self._client_version()}) cannot talk to the "
                f"cluster at {where}: the client's major version must not be newer than "
                "the server's. "
                "For an 8.x cluster: pip install 'elasticsearch>=8.14,<9' (it also works with 9.x)",
                field="store",
            )
        if status == 401:
            return StoreUnavailableError(
                f"Elasticsearch at {where} refused the credentials while {action}: set es_api_key, "
                "or es_user and es_password (ES_USER / ES_PWD in .env)",
                field="es_user",
            )
        if status == 403:
            return StoreError(
                f"the Elasticsearch user may not do this ({action}) at {where}: {text}. "
                "Grant it the index privileges 'manage', 'read' and 'write' on lookalike-*, "
                "or use another API key",
                field="es_user",
            )
        if status in RETRY_STATUS:
            return StoreUnavailableError(
                f"Elasticsearch at {where} is overloaded or failing ({status}, {text}) while "
                f"{action}, even after {self.retries} retries; try again later or give the "
                "cluster more resources"
            )
        return StoreError(f"Elasticsearch rejected the request while {action} ({status}): {text}")

    def _client_version(self) -> str:
        return ".".join(str(p) for p in getattr(self._es, "__version__", ("?",)))

    # -- bulk -----------------------------------------------------------------------------------

    def bulk(self, index: str, ops: Sequence[BulkOp], action: str) -> None:
        """Send ``(op, id, source_json)`` operations (op is "index" or "delete") in bounded
        batches. Items refused with 429/5xx are retried with back-off; other per-document
        failures are gathered and raised together as BulkStoreError after every batch is sent.
        A delete of an unknown id is not a failure."""
        failures: list[BulkFailure] = []
        for batch in self._batches(index, ops):
            failures.extend(self._bulk_batch(index, batch, action))
        if failures:
            sample = "; ".join(f"{f.id}: {f.reason}" for f in failures[:5])
            more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
            raise BulkStoreError(
                self.redact(
                    f"{len(failures)} of {len(ops)} documents could not be written to {index} at "
                    f"{self.location} while {action}: {sample}{more}. The others were written; "
                    "fix the cause and run again (writes are idempotent by id)."
                ),
                failures,
            )

    def _batches(self, index: str, ops: Sequence[BulkOp]) -> list[list[BulkOp]]:
        """Batches of at most ``bulk_max_docs`` operations and ``bulk_max_bytes`` bytes of
        NDJSON as sent: UTF-8 bytes, not characters (a non-ASCII path counts 2-4 per char)."""
        batches: list[list[BulkOp]] = []
        current: list[BulkOp] = []
        size = 0
        for op in ops:
            weight = len(_action_line(op[0], index, op[1]).encode("utf-8")) + 1
            if op[2] is not None:
                weight += len(op[2].encode("utf-8")) + 1
            if current and (
                len(current) >= self.bulk_max_docs or size + weight > self.bulk_max_bytes
            ):
                batches.append(current)
                current, size = [], 0
            current.append(op)
            size += weight
        if current:
            batches.append(current)
        return batches

    def _bulk_batch(self, index: str, batch: list[BulkOp], action: str) -> list[BulkFailure]:
        pending = batch
        final: list[BulkFailure] = []
        throttled: list[BulkFailure] = []
        attempts = 1 + self.retries  # one budget for refused requests and refused documents
        for attempt in range(attempts):
            if attempt:
                self.sleep(self.backoff(attempt - 1))
            lines: list[str] = []
            for kind, doc_id, source in pending:
                lines.append(_action_line(kind, index, doc_id))
                if source is not None:
                    lines.append(source)
            try:
                resp = self.client.bulk(
                    operations=lines, require_alias=True, filter_path=_BULK_FILTER
                )
            except Exception as exc:  # the client's errors are translated below
                if attempt + 1 < attempts and self._retryable(exc):
                    continue
                raise self.translate(exc, action) from None
            body = as_dict(resp)
            items = body.get("items") or []
            if not body.get("errors"):
                return final
            retry: list[BulkOp] = []
            throttled = []
            for op, item in zip(pending, items, strict=False):
                result: Mapping[str, Any] = (
                    next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
                )
                status = int(result.get("status", 500))
                if status < 300 or (op[0] == "delete" and status == 404):
                    continue
                etype, reason = error_type({"error": result.get("error")})
                failure = BulkFailure(
                    op[1], status, f"{etype}: {reason}" if reason else etype or str(status)
                )
                if status in RETRY_STATUS:
                    retry.append(op)
                    throttled.append(failure)
                else:
                    final.append(failure)
            for missing in pending[len(items) :]:  # a truncated answer: retry the rest
                retry.append(missing)
                throttled.append(
                    BulkFailure(missing[1], 0, "no answer from Elasticsearch for this document")
                )
            if not retry:
                return final
            pending = retry
        return final + throttled

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a pool that never connected must not fail
            self.client.close()


def _action_line(op: str, index: str, doc_id: str) -> str:
    return json.dumps(
        {op: {"_index": index, "_id": doc_id}}, ensure_ascii=False, separators=(",", ":")
    )


def as_dict(resp: Any) -> Mapping[str, Any]:
    """The JSON body of a client response as a mapping ({} for anything else)."""
    body = resp.body if hasattr(resp, "body") else resp
    return body if isinstance(body, Mapping) else {}


def error_type(body: Any) -> tuple[str, str]:
    """(type, reason) of an Elasticsearch error body, preferring the root cause's reason."""
    if not isinstance(body, Mapping):
        return "", str(body) if body else ""
    err = body.get("error")
    if isinstance(err, str):
        return err, ""
    if not isinstance(err, Mapping):
        return "", ""
    etype = str(err.get("type", ""))
    reason = str(err.get("reason", "") or "")
    caused = err.get("caused_by")
    if isinstance(caused, Mapping) and caused.get("reason"):
        reason = f"{reason} ({caused.get('reason')})" if reason else str(caused.get("reason"))
    return etype, reason


def _short(exc: Exception) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return str(msg).splitlines()[0][:300] if msg else type(exc).__name__
