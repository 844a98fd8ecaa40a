"""The optional API token (``settings.api_token`` / ``LOOKALIKE_API_TOKEN``).

When a token is set, every route needs it, in one of three forms, best first:

* ``Authorization: Bearer <token>``: API clients.
* the ``lookalike_session`` cookie: browsers. It is HttpOnly and SameSite=Lax
  and holds an HMAC of the token, not the token itself; changing the token
  signs everyone out. A browser gets it by pasting the token into the sign-in
  form the server shows instead of a page, or by opening any page with
  ``?token=<token>`` (the server answers with a redirect that drops the token
  from the address bar and history).
* ``?token=<token>`` on any request, for clients that cannot set headers. The
  server's log redacts it (``lookalike.web.logs``), but proxies may not.

Comparisons are constant-time. Without a token configured this middleware does nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lookalike.web.errors import error_body

__all__ = ["COOKIE", "TokenAuth", "session_value"]

COOKIE = "lookalike_session"
LOGIN_PATH = "/auth"
_COOKIE_AGE = 30 * 24 * 3600
_MAX_LOGIN_BODY = 4096


def session_value(token: str) -> str:
    return hmac.new(token.encode("utf-8"), b"lookalike-session-v1", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape")
    )


def _safe_next(target: str | None) -> str:
    """Only a local path, so the sign-in form cannot be used to redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.token or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["path"] == LOGIN_PATH and request.method == "POST":
            response = await self._login(request)
            await response(scope, receive, send)
            return
        via, bad = self._credential(request)
        if via is None:
            await self._deny(request, bad)(scope, receive, send)
            return
        if via == "query" and request.method in ("GET", "HEAD") and self._is_page(request):
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            location = scope["path"] + ("?" + urlencode(kept) if kept else "")
            await self._signed_in(RedirectResponse(_safe_next(location), 303))(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _is_page(request: Request) -> bool:
        return not request.url.path.startswith(("/api/", "/partials/", "/static/"))

    def _credential(self, request: Request) -> tuple[str | None, bool]:
        """How the request proved itself ("header", "cookie", "query"), and whether it
        offered a wrong credential."""
        bad = False
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and _same(value.strip(), self.token):
                return "header", False
            bad = True
        cookie = request.cookies.get(COOKIE)
        if cookie is not None:
            if _same(cookie, self.session):
                return "cookie", False
            bad = True
        query = request.query_params.get("token")
        if query is not None:
            if _same(query, self.token):
                return "query", False
            bad = True
        return None, bad

    def _signed_in(self, response: Response) -> Response:
        response.set_cookie(
            COOKIE, self.session, max_age=_COOKIE_AGE, path="/", httponly=True, samesite="lax"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def _deny(self, request: Request, bad: bool) -> Response:
        what = "the token you sent is not right" if bad else "this server needs its API token"
        wants_page = self._is_page(request) and "text/html" in request.headers.get("accept", "")
        if wants_page:
            next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return _login_page(_safe_next(next_path), error=what if bad else None)
        message = (
            f"{what}: send 'Authorization: Bearer <token>' (the server's LOOKALIKE_API_TOKEN), "
            "or open the page with ?token=<token>"
        )
        return JSONResponse(
            error_body(message, field="token", type_="Unauthorized"),
            401,
            headers={"WWW-Authenticate": 'Bearer realm="lookalike"', "Cache-Control": "no-store"},
        )

    async def _login(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_LOGIN_BODY:
                return JSONResponse(
                    error_body("the sign-in form is too large", field="token", type_="QueryError"),
                    413,
                )
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        target = _safe_next(form.get("next"))
        if _same(form.get("token", "").strip(), self.token):
            return self._signed_in(RedirectResponse(target, 303))
        return _login_page(target, error="the token you sent is not right")


def _login_page(next_path: str, *, error: str | None) -> HTMLResponse:
    notice = f'<p class="err" role="alert">{html.escape(error.capitalize())}.</p>' if error else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · lookalike</title>
<style>
:root {{ color-scheme: light dark;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
body {{ display: grid; place-items: center; min-height: 90vh; margin: 0 1rem; }}
form {{ max-width: 24rem; width: 100%; display: grid; gap: .75rem; }}
input, button {{ font: inherit; padding: .6rem .8rem; border-radius: .5rem;
  border: 1px solid #8886; }}
button {{ background: #3b5bdb; color: white; border: 0; cursor: pointer; }}
.err {{ color: #e03131; margin: 0; }}
</style></head>
<body><form method="post" action="{LOGIN_PATH}">
<h1>lookalike</h1>
<p>This server is protected by a token. Paste the token it was started with
(<code>LOOKALIKE_API_TOKEN</code>).</p>
{notice}
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<button type="submit">Sign in</button>
</form></body></html>"""
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(page, status_code=401, headers=headers)
