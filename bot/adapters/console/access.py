"""Who may use the console: on a loopback bind, anyone on this machine; anywhere else, only whoever holds
TALKLIKE_CONSOLE_TOKEN.

- The `Host` of every console request must be a loopback name or TALKLIKE_CONSOLE_HOST, so a web page
  elsewhere cannot reach the local console by pointing its own domain at 127.0.0.1 (DNS rebinding).
- With a token, the page asks for it once (`/console/login` sets an HttpOnly, SameSite=Strict cookie holding
  a keyed digest of the token, never the token) and the API also takes it as `Authorization: Bearer`.
  Both are compared in constant time; a client that fails too often in a minute is refused (429) for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque

from flask import Request, Response, jsonify, redirect

COOKIE = "talklike_console"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
FAILURES_ALLOWED = 5  # per client per window
FAILURE_WINDOW_S = 60.0


def host_name(host_header: str) -> str:
    """The host of a `Host` header, without its port ("[::1]:8000" → "[::1]", "a.b:80" → "a.b")."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class ConsoleAccess:
    def __init__(self, token: str | None, host: str | None):
        self.token = token
        self.hosts = LOOPBACK_HOSTS | ({host.lower()} if host else set())
        self._session = hmac.new(token.encode(), b"talklike console session", hashlib.sha256).hexdigest() \
            if token else None
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def refuse(self, request: Request) -> Response | None:
        """The answer for a request that may not reach the console, or None to let it through."""
        if host_name(request.host) not in self.hosts:
            return _json(403, "this console answers only at its own host name (see TALKLIKE_CONSOLE_HOST)")
        if self.token is None or request.path == "/console/login" or request.path.startswith("/console/static/"):
            return None
        header = request.headers.get("Authorization")
        if header is not None:  # a guess at the token: refused unheard once this client failed too often
            if self._locked_out(request):
                return _too_many()
            if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), self.token.encode()):
                return None
            self._failed(request)
        elif hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._session.encode()):
            return None
        if request.path.startswith("/api/"):
            return _json(401, "this console needs its access token (Authorization: Bearer <TALKLIKE_CONSOLE_TOKEN>)",
                         {"WWW-Authenticate": 'Bearer realm="talklike console"'})
        return redirect("/console/login", code=303)

    def login(self, request: Request) -> Response:
        """The login form's POST: the right token sets the session cookie; a wrong one counts as a failure."""
        if self._locked_out(request):
            return _too_many()
        given = (request.form.get("token") or "").strip()
        if self.token is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            self._failed(request)
            return redirect("/console/login?failed=1", code=303)
        response = redirect("/", code=303)
        response.set_cookie(COOKIE, self._session, httponly=True, samesite="Strict", secure=request.is_secure,
                            max_age=30 * 24 * 3600, path="/")
        return response

    def _recent(self, request: Request) -> deque[float]:
        """This client's failures within the window (the caller holds the lock)."""
        now = time.monotonic()
        times = self._failures.setdefault(request.remote_addr or "?", deque())
        while times and now - times[0] > FAILURE_WINDOW_S:
            times.popleft()
        return times

    def _locked_out(self, request: Request) -> bool:
        with self._lock:
            return len(self._recent(request)) >= FAILURES_ALLOWED

    def _failed(self, request: Request) -> None:
        with self._lock:
            self._recent(request).append(time.monotonic())
            if len(self._failures) > 10_000:  # bounded: forget clients with no recent failure
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]


def _too_many() -> Response:
    return _json(429, "too many wrong tokens; wait a minute", {"Retry-After": str(int(FAILURE_WINDOW_S))})


def _json(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error={401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}[status], message=message)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
