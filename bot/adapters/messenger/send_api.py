"""`SendAPI`: the Messenger Send API and Messenger Profile API over one `requests.Session`.

Every call has a timeout; transient failures (connection errors, HTTP 5xx, HTTP 429 and the Graph API's
rate-limit and temporary error codes) are retried with exponential backoff, then given up as `SendError`.
A read timeout on a message is not retried: Facebook may already have delivered it, and a duplicate reply is
worse than a missing one. The page token travels as the `access_token` query parameter and never appears in
a log line or an error message (requests' own exception text contains the URL, so it is never logged).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)
TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s\"']*")

MAX_TEXT_CHARS = 2000  # a Send API text message
ACTION_READ_TIMEOUT = 3.0  # seconds a typing indicator may hold up a reply
MAX_PARTS = 3  # a longer reply is split into at most this many messages, the rest cut
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
# Graph API error codes worth retrying: 1/2 unknown/temporary, 4/17/32/613 rate limits, 80006 Messenger rate limit
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80006})


class RedactTokens(logging.Filter):
    """Masks `access_token=...` in records of urllib3's connection pool, which logs request URLs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg, record.args = TOKEN_IN_URL.sub(r"\1***", message), None
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, RedactTokens) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(RedactTokens())


class SendError(Exception):
    """The Graph API refused a call or could not be reached after the retries; the text is safe to log."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass
class RetryPolicy:
    """How hard to try: `attempts` in all, sleeping `backoff * 2**i` seconds (capped) in between."""

    attempts: int = 4
    backoff: float = 0.5
    max_sleep: float = 8.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(self.max_sleep, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(self.max_sleep, self.backoff * 2**attempt)


class SendAPI:
    """Calls `{graph_url}/me/...` as the page whose token is given."""

    def __init__(self, graph_url: str, page_token: str, *, timeout: tuple[float, float] = (3.05, 10.0),
                 retry: RetryPolicy | None = None, session: requests.Session | None = None):
        self.graph_url = graph_url.rstrip("/")
        self._token = page_token
        self.timeout = timeout  # (connect, read) seconds
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()

    # -- Send API -----------------------------------------------------------------------------------
    def send_text(self, psid: str, text: str, quick_replies: list[dict] | None = None) -> int:
        """Send `text` (split at word boundaries into messages of at most 2000 characters) as a RESPONSE;
        quick replies go with the last part. Returns the number of messages sent."""
        parts = split_text(text)
        for i, part in enumerate(parts):
            message: dict = {"text": part}
            if quick_replies and i == len(parts) - 1:
                message["quick_replies"] = quick_replies[:MAX_QUICK_REPLIES]
            self.post("me/messages", {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": message},
                      retry_timeouts=False)
        return len(parts)

    def sender_action(self, psid: str, action: str) -> None:
        """`typing_on`, `typing_off` or `mark_seen`: cosmetic, so tried once and not waited on for long."""
        self.post("me/messages", {"recipient": {"id": psid}, "sender_action": action}, attempts=1,
                  timeout=(self.timeout[0], min(self.timeout[1], ACTION_READ_TIMEOUT)))

    # -- Messenger Profile API ----------------------------------------------------------------------
    def set_profile(self, profile: dict) -> dict:
        """Set `get_started`, `greeting`, `persistent_menu`, ... for the page."""
        return self.post("me/messenger_profile", profile, retry_timeouts=True)

    # -- transport ----------------------------------------------------------------------------------
    def post(self, path: str, payload: dict, retry_timeouts: bool = True, attempts: int | None = None,
             timeout: tuple[float, float] | None = None) -> dict:
        """POST JSON to `{graph_url}/{path}`; the decoded answer, or SendError after the retries
        (`attempts` in all, default the policy's; `timeout` default the client's)."""
        url = f"{self.graph_url}/{path}"
        attempts = attempts or self.retry.attempts
        timeout = timeout or self.timeout
        attempt = 0
        while True:
            wait, error = None, None
            try:
                response = self.session.post(url, params={"access_token": self._token}, json=payload,
                                             timeout=timeout)
            except requests.ConnectionError as err:  # includes ConnectTimeout: nothing was delivered
                error = SendError(f"POST /{path}: cannot reach the Graph API ({type(err).__name__})")
            except requests.Timeout as err:
                error = SendError(f"POST /{path}: no answer within {timeout[1]:g} s ({type(err).__name__})")
                if not retry_timeouts:
                    raise error from None
            else:
                if response.ok:
                    return _json(response)
                error = _graph_error(path, response)
                if not _transient(response, error):
                    raise error
                wait = response.headers.get("Retry-After")
            attempt += 1
            if attempt >= attempts:
                raise error
            delay = self.retry.delay(attempt - 1, wait)
            log.info("graph api call failed, retrying", extra={"path": path, "status": error.status,
                                                              "code": error.code, "attempt": attempt,
                                                              "sleep_s": round(delay, 3)})
            time.sleep(delay)

    def close(self) -> None:
        self.session.close()


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _graph_error(path: str, response: requests.Response) -> SendError:
    """A SendError from a failed answer: HTTP status, Graph error code and type (its message can quote input,
    so it is kept short and stripped of anything that looks like a token)."""
    error = _json(response).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    kind = error.get("type", "") if isinstance(error, dict) else ""
    detail = str(error.get("message", ""))[:120] if isinstance(error, dict) else ""
    detail = TOKEN_IN_URL.sub(r"\1***", detail)
    text = f"POST /{path}: HTTP {response.status_code}"
    if code is not None:
        text += f", Graph error {code}" + (f" ({kind})" if kind else "")
    if detail:
        text += f": {detail}"
    return SendError(text, status=response.status_code, code=code if isinstance(code, int) else None)


def _transient(response: requests.Response, error: SendError) -> bool:
    return response.status_code >= 500 or response.status_code == 429 or error.code in TRANSIENT_CODES


def split_text(text: str, limit: int = MAX_TEXT_CHARS, max_parts: int = MAX_PARTS) -> list[str]:
    """`text` as messages of at most `limit` characters, split at the last whitespace before the limit
    (mid-word only when a word is longer than a message); beyond `max_parts` parts the rest is cut."""
    parts: list[str] = []
    rest = text.strip()
    while rest and len(parts) < max_parts:
        if len(rest) <= limit:
            parts.append(rest)
            rest = ""
            break
        cut = max(rest.rfind(" ", 0, limit + 1), rest.rfind("\n", 0, limit + 1))
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest and parts:  # cut: the last part ends with an ellipsis at a word boundary
        last = parts[-1]
        if len(last) >= limit:
            room = last[: limit - 1]
            space = room.rfind(" ")
            last = (room[:space] if space > 0 else room).rstrip()
        parts[-1] = last + "…"
    return parts


def quick_reply(title: str, payload: str) -> dict:
    """A text quick reply; the title is cut to the platform's 20 characters."""
    if len(title) > MAX_QUICK_REPLY_TITLE:
        title = title[: MAX_QUICK_REPLY_TITLE - 1] + "…"
    return {"content_type": "text", "title": title, "payload": payload[:1000]}
