"""The API token never reaches a log line: a real ``lookalike serve`` process with a token,
requests that carry it in the address (right and wrong, plain and percent-encoded, on the
API, pages, errors), then the server's whole output (uvicorn's access log included)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from lookalike.collection import Collection
from lookalike.web.logs import REDACTED, RedactTokens, redact
from web.live import ServeProcess, free_port

TOKEN = "tok-9f3a7c1e5b2d4a68"
WRONG = "not-the-token-4242xyz"


@pytest.mark.slow
def test_the_token_in_the_address_never_reaches_the_log(
    own_collection: Collection, tmp_path: Path
) -> None:
    settings = own_collection.settings.with_overrides(api_token=TOKEN)
    own_collection.close()  # the server process opens the collection itself
    server = ServeProcess(settings, free_port(), log=tmp_path / "serve.log")
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.get(f"/api/v1/health?token={TOKEN}").status_code == 200
            assert client.get(f"/api/v1/search?q=x&token={TOKEN}&k=1").status_code == 200
            assert client.get(f"/api/v1/health?%74oken={TOKEN}").status_code == 200
            assert client.get(f"/api/v1/health?token={WRONG}").status_code == 401
            assert client.get(f"/api/v1/nowhere?token={TOKEN}").status_code == 404
            page = client.get(f"/?q=x&token={TOKEN}", follow_redirects=False)
            assert page.status_code == 303 and TOKEN not in page.headers["location"]
            assert client.get("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        server.stop()
    output = (tmp_path / "serve.log").read_text(errors="replace")
    assert TOKEN not in output and WRONG not in output
    access = [line for line in output.splitlines() if '"GET /' in line]
    assert len(access) == 7, output  # the access log is on, and every request is in it
    assert f'"GET /api/v1/health?token={REDACTED} HTTP/1.1" 200' in output
    assert f'"GET /api/v1/health?token={REDACTED} HTTP/1.1" 401' in output
    assert f'"GET /api/v1/search?q=x&token={REDACTED}&k=1 HTTP/1.1" 200' in output
    assert f"%74oken={REDACTED}" in output


def test_redaction_keeps_the_rest_of_the_line() -> None:
    assert redact("/a?q=blue&token=abc123&k=2") == f"/a?q=blue&token={REDACTED}&k=2"
    assert redact("/a?TOKEN%3Dabc") == f"/a?TOKEN%3D{REDACTED}"
    assert redact("no secrets here") == "no secrets here"
    # the literal token is hidden wherever it appears, also URL-encoded
    assert redact("sent s3cret/+tok and s3cret%2F%2Btok", ["s3cret/+tok"]) == (
        f"sent {REDACTED} and {REDACTED}"
    )


def test_the_filter_keeps_the_access_log_arguments_a_tuple() -> None:
    """uvicorn's access formatter unpacks five arguments: they are redacted one by one."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/x?token={TOKEN}", "1.1", 200),
        None,
    )
    assert RedactTokens([TOKEN]).filter(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert record.getMessage() == f'127.0.0.1:5 - "GET /x?token={REDACTED} HTTP/1.1" 200'
