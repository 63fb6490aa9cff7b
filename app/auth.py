"""Sign-in, sign-out and session checks in front of the Gradio app (an ASGI middleware), backed by the database.

``AccountsGate`` sees every HTTP and websocket request before Gradio does:
- ``POST /login`` signs in through ``ReviewService.sign_in`` (throttling and lockout per username and per
  client address, equal time for unknown usernames) and starts a login session in the database; the cookies are
  Gradio's own (``access-token-<cookie_id>``), so Gradio's login checks keep working;
- every other request checks its cookie's login session (idle and absolute expiry, disabled reader) once, in
  a worker thread, and hands the result to Gradio through ``SessionTokens``, which replaces Gradio's in-memory
  ``app.tokens``: every page, queue event and workstation server function sees only live sessions;
- ``GET /`` without a live session serves the sign-in page, which says why a session ended and shows lockout
  messages; ``GET /logout`` ends the session; ``/monitoring`` (Gradio's traffic monitoring) is refused.
"""

from __future__ import annotations

import contextvars
import functools
import html
import secrets
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse

from annotations_db import passwords
from annotations_db.accounts import AccountPolicy, LoginRefused, SessionCheck
from annotations_db.service import ReviewService

REFUSAL_STATUS = {"credentials": 400, "locked": 429, "disabled": 403}
_checked: contextvars.ContextVar[tuple[str | None, str | None] | None] = contextvars.ContextVar(
    "gazex_checked_session", default=None)


class SessionTokens:
    """Stands in for Gradio's ``app.tokens`` dict: a token maps to its reader while its login session lives."""

    def __init__(self, service: ReviewService) -> None:
        self._service = service

    def get(self, token: str | None, default: Any = None) -> str | None:
        checked = _checked.get()
        if checked is not None and checked[0] == token:
            username = checked[1]
        else:  # not seen by the gate in this request (should not happen): ask the database
            username = self._service.check_login_session(token, activity=False).username
        return username if username is not None else default

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.get(token) is not None

    def __getitem__(self, token: str) -> str:
        username = self.get(token)
        if username is None:
            raise KeyError(token)
        return username

    def __setitem__(self, token: str, username: str) -> None:
        raise RuntimeError("sign-in goes through app.auth.AccountsGate, never Gradio's own /login")

    def __delitem__(self, token: str) -> None:
        self._service.end_login_session(token)

    def keys(self) -> list[str]:
        return []  # tokens are stored hashed


class AccountsGate:
    """ASGI middleware (see module docstring). Passed to Gradio as ``app_kwargs={"middleware": [...]}``."""

    def __init__(self, app: Any, *, service: ReviewService, title: str = "GazeX Review") -> None:
        self.app = app
        self.service = service
        self.title = title
        self.tokens = SessionTokens(service)
        passwords.dummy_hash()  # cached; launch_app computes it before serving (equal time from the first try)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        gradio_app = scope.get("app")
        if gradio_app is not None and getattr(gradio_app, "tokens", None) is not self.tokens:
            gradio_app.tokens = self.tokens
        path, method = _path(scope), scope.get("method", "GET")
        http = scope["type"] == "http"
        if path == "/monitoring" or path.startswith("/monitoring/"):
            return await _reply(PlainTextResponse("Monitoring is off on this server.", 403), scope, receive, send)
        if http and method == "POST" and path in ("/login", "/login/"):
            return await _reply(await self._sign_in(scope, receive), scope, receive, send)
        token = _cookie_token(scope, gradio_app)
        if http and path in ("/logout", "/logout/"):
            return await _reply(await self._sign_out(token, gradio_app), scope, receive, send)
        page = http and method == "GET" and path == "/"
        check = SessionCheck(None)
        if token:
            check = await anyio.to_thread.run_sync(
                functools.partial(self.service.check_login_session, token, activity=page or method != "GET"))
        if page and check.username is None:
            return await _reply(HTMLResponse(self.sign_in_page(check.ended)), scope, receive, send)
        reset = _checked.set((token, check.username))
        try:
            await self.app(scope, receive, send)
        finally:
            _checked.reset(reset)

    async def _sign_in(self, scope: dict, receive: Any) -> Any:
        try:
            form = await Request(scope, receive).form()
        except Exception as exc:  # not a form (wrong content type, bad encoding): one line, no traceback
            return JSONResponse({"detail": f"could not read the sign-in form: {exc}"}, status_code=400)
        username, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
        client = (scope.get("client") or (None,))[0]
        token = secrets.token_urlsafe(32)
        try:
            reader = await anyio.to_thread.run_sync(functools.partial(self.service.sign_in, username, password,
                                                                      client=client))
            await anyio.to_thread.run_sync(functools.partial(self.service.start_login_session, reader.username,
                                                             token, client=client))
        except LoginRefused as exc:
            headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
            return JSONResponse({"detail": str(exc)}, status_code=REFUSAL_STATUS[exc.reason], headers=headers)
        response = JSONResponse({"success": True})
        secure_name, plain_name = _cookie_names(getattr(scope.get("app"), "cookie_id", ""))
        response.set_cookie(secure_name, token, httponly=True, samesite="none", secure=True)  # as Gradio does
        response.set_cookie(plain_name, token, httponly=True)
        return response

    async def _sign_out(self, token: str | None, gradio_app: Any) -> Any:
        if token:
            await anyio.to_thread.run_sync(self.service.end_login_session, token)
        response = RedirectResponse("./", status_code=302)
        for name in _cookie_names(getattr(gradio_app, "cookie_id", "")):
            response.delete_cookie(name, path="/")
        return response

    def sign_in_page(self, ended: str | None) -> str:
        note = ended_message(ended, self.service.account_policy)
        return SIGN_IN_PAGE.format(title=html.escape(self.title),
                                   note=f'<p class="note">{html.escape(note)}</p>' if note else "")


def ended_message(reason: str | None, policy: AccountPolicy) -> str:
    idle = _duration(policy.idle_timeout.total_seconds())
    absolute = _duration(policy.absolute_timeout.total_seconds())
    return {
        "idle": f"You were signed out after {idle} without activity. Please sign in again.",
        "expired": f"Your session reached its {absolute} limit. Please sign in again.",
        "disabled": "This account has been disabled; ask an administrator.",
        "password": "Your password was changed. Please sign in with the new password.",
    }.get(reason or "", "")


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _path(scope: dict) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


def _cookie_names(cookie_id: str) -> tuple[str, str]:
    return f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"


def request_token(request: Any) -> str | None:
    """The login-session token of a gr.Request (or the raw request a server function gets)."""
    raw = getattr(request, "request", None) or request
    cookies = getattr(raw, "cookies", None) or {}
    for name in _cookie_names(getattr(getattr(raw, "app", None), "cookie_id", "")):
        if hasattr(cookies, "get") and cookies.get(name):
            return cookies.get(name)
    return None


def _cookie_token(scope: dict, gradio_app: Any) -> str | None:
    cookies = Request(scope).cookies
    for name in _cookie_names(getattr(gradio_app, "cookie_id", "")):
        if cookies.get(name):
            return cookies[name]
    return None


async def _reply(response: Any, scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":  # refuse the handshake
        await send({"type": "websocket.close", "code": 1008})
        return
    await response(scope, receive, send)


SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — sign in</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; display: flex; justify-content: center; }}
main {{ background: #fff; margin-top: 12vh; padding: 28px 32px; border-radius: 10px; width: 340px;
        box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
label {{ display: block; margin: 12px 0 4px; font-size: 14px; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; font-size: 15px; }}
button {{ margin-top: 18px; width: 100%; padding: 9px; font-size: 15px; background: #1f5fbf; color: #fff;
          border: 0; border-radius: 6px; cursor: pointer; }}
.note {{ background: #fff4e5; color: #7a4b00; padding: 8px 10px; border-radius: 6px; }}
#gx-login-error {{ background: #fdecea; color: #8a1c1c; padding: 8px 10px; border-radius: 6px; }}
#gx-login-error:empty {{ display: none; }}
</style></head>
<body><main>
<h2>{title}</h2>
<p>Sign in with your reader account.</p>
{note}
<form id="gx-login" autocomplete="on">
<label for="gx-username">Username</label>
<input id="gx-username" name="username" type="text" autocomplete="username" required autofocus>
<label for="gx-password">Password</label>
<input id="gx-password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p id="gx-login-error" data-testid="login-error" role="alert"></p>
<script>
document.getElementById("gx-login").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const error = document.getElementById("gx-login-error");
  error.textContent = "";
  const password = document.getElementById("gx-password");
  let response;
  try {{
    response = await fetch("login", {{ method: "POST", body: new URLSearchParams(new FormData(event.target)) }});
  }} catch (e) {{
    error.textContent = "The server cannot be reached: " + e;
    return;
  }}
  if (response.ok) {{ location.reload(); return; }}
  let detail = "Sign-in failed (HTTP " + response.status + ").";
  try {{ detail = (await response.json()).detail || detail; }} catch (e) {{}}
  error.textContent = detail;
  password.value = "";
  password.focus();
}});
</script>
</main></body></html>
"""


# In the app page: when the server answers 401 (the session ended: idle, expired, disabled, new password),
# say so in a banner with a button to the sign-in page, instead of leaving events failing silently.
SESSION_ENDED_HEAD = """<script>
(() => {
  if (window.__gazexSessionWatch) return;
  window.__gazexSessionWatch = true;
  const original = window.fetch;
  const show = () => {
    if (document.getElementById("gx-session-ended")) return;
    const banner = document.createElement("div");
    banner.id = "gx-session-ended";
    banner.setAttribute("role", "alert");
    banner.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:10000;padding:10px 16px;" +
      "background:#8a1c1c;color:#fff;font:15px system-ui,sans-serif;display:flex;gap:12px;align-items:center";
    banner.textContent = "Your session has ended. Sign in again to continue.";
    const button = document.createElement("button");
    button.textContent = "Sign in";
    button.style.cssText = "padding:4px 12px;border-radius:4px;border:0;cursor:pointer";
    button.onclick = () => location.reload();
    banner.appendChild(button);
    document.body.appendChild(banner);
  };
  window.fetch = async (...args) => {
    const response = await original(...args);
    if (response.status === 401) show();
    return response;
  };
})();
</script>"""
