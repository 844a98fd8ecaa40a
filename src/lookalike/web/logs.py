"""Logging for the server: the API token never reaches a log line.

A client that cannot send headers may put the token in the address (``?token=``);
uvicorn's access log writes every request's path and query, so the token would
end up in logs that are kept, shipped and read by others. ``RedactTokens`` sits
on every handler the server logs through and rewrites each record's message and
arguments in place (the access log's formatter needs its arguments as a tuple, so
they are redacted one by one, not flattened into the message).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "RedactTokens", "redact", "server_log_config"]

REDACTED = "[redacted]"
#: ``token=`` as a query parameter, its name possibly percent-encoded (``%74oken=``),
#: up to the next separator; any case, since over-redacting costs nothing
_TOKEN_PARAM = re.compile(
    r"(?P<key>(?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)(?:=|%3d))[^&;\s\"'<>]*",
    re.IGNORECASE,
)
_MIN_SECRET = 6  # a literal shorter than this would blank out ordinary words


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every ``token=`` value and every occurrence of ``secrets`` hidden."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, REDACTED)
    return _TOKEN_PARAM.sub(lambda m: m.group("key") + REDACTED, text)


class RedactTokens(logging.Filter):
    """A handler filter that hides API tokens in every record it lets through."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def _clean(self, value: Any) -> Any:
        return redact(value, self.secrets) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            # format the traceback now, so that its text can be redacted too
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def server_log_config(secrets: Iterable[str] = ()) -> dict[str, Any]:
    """uvicorn's logging configuration with ``RedactTokens`` on every handler, and the
    ``lookalike`` loggers sent through the same handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {
        "()": RedactTokens,
        "secrets": list(secrets),
    }
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    config["loggers"]["lookalike"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
