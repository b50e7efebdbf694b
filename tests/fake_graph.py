"""`FakeGraph`: a loopback HTTP server playing the Facebook Graph API (Send API, Messenger Profile API),
and Facebook's side of the webhook: `facebook_json` and `sign` write and sign bodies as Facebook does.

The server records every call (path, query, JSON body, the status it answered) and can be told to fail the next
calls: an HTTP status with a Graph error body (500, 429, `{"error": {"code": 613}}`, ...), or a stall longer
than the client's timeout; or every call from now on (`refuse`: 401, 403, 500, as the Graph API words them). Tests and benchmarks/bench_webhook.py use it; nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION = "v21.0"


_mids = itertools.count(1)


def facebook_json(body: dict) -> bytes:
    """Serialize as Facebook does: non-ASCII as \\uXXXX and "/" as "\\/" (so a checker that re-serializes
    before verifying the signature fails)."""
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def sign(secret: str, raw: bytes) -> str:
    """The X-Hub-Signature-256 header value for `raw`."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def webhook(*events: dict, page_id: str = "PAGE1") -> dict:
    """A webhook body carrying `events` in one entry."""
    return {"object": "page", "entry": [{"id": page_id, "time": int(time.time() * 1000), "messaging": list(events)}]}


def message_event(psid: str, text: str | None = None, *, mid: str | None = None, quick_reply: str | None = None,
                  attachments: list[dict] | None = None, is_echo: bool = False) -> dict:
    """A `message` event from user `psid` (a fresh mid unless given)."""
    message: dict = {"mid": mid or f"m_{next(_mids)}"}
    if text is not None:
        message["text"] = text
    if quick_reply is not None:
        message["quick_reply"] = {"payload": quick_reply}
    if attachments is not None:
        message["attachments"] = attachments
    if is_echo:
        message["is_echo"] = True
    return _event(psid, message=message)


def postback_event(psid: str, payload: str, title: str = "Get Started", timestamp: int | None = None) -> dict:
    """A `postback` event (a button), without a mid as Facebook sometimes sends them."""
    return _event(psid, timestamp, postback={"title": title, "payload": payload})


def _event(psid: str, timestamp: int | None = None, **body) -> dict:
    return {"sender": {"id": psid}, "recipient": {"id": "PAGE1"},
            "timestamp": timestamp or int(time.time() * 1000), **body}


@dataclass
class Call:
    method: str
    path: str  # without the version prefix, e.g. "/me/messages"
    query: dict[str, str]
    json: dict | None
    status: int = 200
    at: float = field(default_factory=time.monotonic)  # when the fake answered it (time.monotonic())

    @property
    def recipient(self) -> str | None:
        return ((self.json or {}).get("recipient") or {}).get("id")

    @property
    def text(self) -> str | None:
        return ((self.json or {}).get("message") or {}).get("text")

    @property
    def action(self) -> str | None:
        return (self.json or {}).get("sender_action")


@dataclass
class Failure:
    status: int = 500
    body: dict = field(default_factory=lambda: {"error": {"message": "An unknown error occurred", "type":
                                                          "OAuthException", "code": 1}})
    stall: float = 0.0  # seconds before answering (the answer is then a normal 200)
    path: str | None = None  # only calls to this path; None: any
    what: str | None = None  # only calls carrying this key ("message", "sender_action"); None: any
    headers: dict = field(default_factory=dict)

    def matches(self, path: str, data: object) -> bool:
        return self.path in (None, path) and (self.what is None or (isinstance(data, dict) and self.what in data))


class FakeGraph:
    """`with FakeGraph(token="p") as fake: ... fake.url ...`; calls with another access_token get Graph's 190."""

    def __init__(self, token: str = "p"):
        self.token = token
        self.calls: list[Call] = []
        self._failures: list[Failure] = []
        self._refusal: Failure | None = None
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-graph")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{VERSION}"

    def start(self) -> FakeGraph:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- telling it what to do ----------------------------------------------------------------------
    def fail(self, times: int = 1, status: int = 500, error: dict | None = None, stall: float = 0.0,
             path: str | None = None, what: str | None = None, headers: dict | None = None) -> None:
        """Fail the next `times` calls (to `path`, carrying `what`, if given) with `status` and a Graph
        `error` object, or stall them `stall` seconds before a normal answer."""
        body = {"error": error} if error is not None else Failure().body
        with self._lock:
            self._failures += [Failure(status, body, stall, path, what, headers or {}) for _ in range(times)]

    def refuse(self, status: int | None) -> None:
        """Every call from now on fails with `status` and the Graph API's error for it (the 401 quotes the
        token it could not parse, as Graph does); None answers normally again."""
        errors = {401: {"message": f"Malformed access token {self.token}", "type": "OAuthException", "code": 190},
                  403: {"message": "(#200) Requires pages_messaging permission to manage the object",
                        "type": "OAuthException", "code": 200},
                  500: {"message": "An unknown error occurred", "type": "OAuthException", "code": 1}}
        with self._lock:
            self._refusal = None if status is None else Failure(status, {"error": errors.get(status, {"code": 1})})

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    # -- what it saw --------------------------------------------------------------------------------
    def messages(self, psid: str | None = None) -> list[Call]:
        """Text messages it accepted (status 200), in arrival order; only to `psid` if given."""
        with self._lock:
            return [c for c in self.calls if c.status == 200 and c.text is not None
                    and (psid is None or c.recipient == psid)]

    def texts(self, psid: str | None = None) -> list[str]:
        return [c.text for c in self.messages(psid)]

    def actions(self, psid: str | None = None) -> list[str]:
        with self._lock:
            return [c.action for c in self.calls if c.action and (psid is None or c.recipient == psid)]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Wait until `predicate(self)` holds (re-checked on every call received)."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self), timeout)

    # -- the server ---------------------------------------------------------------------------------
    def _answer(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict, dict]:
        parts = urlsplit(raw_path)
        path = parts.path.removeprefix("/" + VERSION)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        with self._lock:
            failure = next((f for f in self._failures if f.matches(path, data)), None)
            if failure is not None:
                self._failures.remove(failure)
            else:
                failure = self._refusal
        if failure is not None and failure.stall:
            self._stop.wait(failure.stall)
            failure = None
        if query.get("access_token") != self.token:
            status, answer, headers = 400, {"error": {"message": "Invalid OAuth access token.", "type":
                                                      "OAuthException", "code": 190}}, {}
        elif failure is not None:
            status, answer, headers = failure.status, failure.body, failure.headers
        elif not isinstance(data, dict):
            status, answer, headers = 400, {"error": {"message": "bad body", "type": "OAuthException", "code": 100}}, {}
        elif path == "/me/messages":
            recipient = (data.get("recipient") or {}).get("id")
            status, headers = 200, {}
            answer = {"recipient_id": recipient}
            if "message" in data:
                answer["message_id"] = f"m_{len(self.calls)}"
        elif path == "/me/messenger_profile":
            status, answer, headers = 200, {"result": "success"}, {}
        else:
            status, answer, headers = 404, {"error": {"message": "Unknown path", "type": "GraphMethodException",
                                                      "code": 100}}, {}
        with self._lock:
            self.calls.append(Call(method, path, query, data, status))
            self._lock.notify_all()
        return status, answer, headers

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                status, answer, headers = fake._answer("POST", self.path, self.rfile.read(length))
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) and closed the connection
                    pass

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler
