"""A real HTTP server on loopback that plays the Telegram Bot API, for tests of the Telegram adapter.

It answers `POST /bot<token>/<method>` like api.telegram.org does (getMe, sendMessage, sendChatAction,
setMyCommands, getUpdates with long polling, deleteWebhook, setWebhook, answerCallbackQuery,
editMessageText, …), records every call with its parameters, and can be told to fail the next calls to a
method (429 with retry_after, 5xx, any status and body), or every call from now on (`refuse`: a revoked
token's 401, a 403, a 500). Plus factories for realistic Update JSON.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TOKEN = "123456789:AAHtestTOKENfortalklikeBOTapi0000000"
BOT_ID = 123456789
BOT_USERNAME = "talklike_test_bot"
JSON_FIELDS = {"reply_markup", "reply_parameters", "commands", "allowed_updates", "entities", "scope"}


@dataclass
class Call:
    """One request the bot made: the method name and its parameters (JSON-valued ones decoded)."""

    method: str
    params: dict
    at: float = field(default_factory=time.monotonic)

    def __getitem__(self, key: str):
        return self.params[key]

    def get(self, key: str, default=None):
        return self.params.get(key, default)


class FakeBotAPI:
    """Start with `with FakeBotAPI() as api:`; point the bot at `api.url` (its TELEGRAM_API_URL)."""

    def __init__(self, token: str = TOKEN, username: str = BOT_USERNAME):
        self.token, self.username = token, username
        self.bot_id = int(token.split(":")[0])
        self.calls: list[Call] = []
        self._updates: list[dict] = []
        self._failures: dict[str, list[tuple[int, dict]]] = {}
        self.admins: dict[int, list[dict]] = {}  # group chat id → its administrators (getChatAdministrators)
        self._refusal: tuple[int, dict] | None = None
        self._cond = threading.Condition()
        self._message_ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        self._stopping = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload = api._handle(self.path, self.headers.get("Content-Type", ""), body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a long poll cancelled at shutdown)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-bot-api", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeBotAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what tests use -----------------------------------------------------------------------------
    def push_update(self, update: dict) -> dict:
        """Queue an update for getUpdates (polling); gives it an update_id if it has none."""
        update.setdefault("update_id", self.next_update_id())
        with self._cond:
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def fail(self, method: str, status: int, body: dict | None = None, times: int = 1) -> None:
        """The next `times` calls to `method` answer `status` with `body` (a Bot API error by default)."""
        body = body or {"ok": False, "error_code": status, "description": f"Internal Server Error ({status})"}
        with self._cond:
            self._failures.setdefault(method, []).extend([(status, body)] * times)

    def refuse(self, status: int | None) -> None:
        """Every call from now on answers `status` as Telegram does (401: the token was revoked, 403: the bot
        was blocked, 500: a server error); None answers normally again."""
        descriptions = {401: "Unauthorized", 403: "Forbidden: bot was blocked by the user",
                        500: "Internal Server Error"}
        with self._cond:
            self._refusal = None if status is None else (
                status, {"ok": False, "error_code": status, "description": descriptions.get(status, f"Error {status}")})

    def flood(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls to `method` get a flood wait (429 with retry_after)."""
        self.fail(method, 429, {"ok": False, "error_code": 429,
                                "description": f"Too Many Requests: retry after {retry_after}",
                                "parameters": {"retry_after": retry_after}}, times)

    def calls_to(self, method: str, where: Callable[[Call], bool] | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and (where is None or where(c))]

    def wait_for(self, method: str, count: int = 1, where: Callable[[Call], bool] | None = None,
                 timeout: float = 15.0) -> list[Call]:
        """Block until at least `count` matching calls were made; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method and (where is None or where(c))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.params.get("chat_id")) for c in self.calls][-20:]
                    raise AssertionError(f"expected {count} call(s) to {method}, got {len(found)}; last calls: {seen}")
                self._cond.wait(left)

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """sendMessage calls that got through (not failed), optionally to one chat."""
        return self.calls_to("sendMessage", lambda c: c.get("ok", True) and
                             (chat_id is None or int(c["chat_id"]) == chat_id))

    # -- the API ------------------------------------------------------------------------------------
    def _handle(self, path: str, content_type: str, body: bytes) -> tuple[int, dict]:
        prefix = f"/bot{self.token}/"
        if not path.startswith("/bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        method = path.split("?")[0].rsplit("/", 1)[-1]
        call = Call(method, _params(content_type, body))
        with self._cond:
            self.calls.append(call)
            failures = self._failures.get(method)
            failure = failures.pop(0) if failures and path.startswith(prefix) else self._refusal
            self._cond.notify_all()
        if not path.startswith(prefix):
            call.params["ok"] = False
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if failure is not None:
            call.params["ok"] = False
            return failure
        answer = getattr(self, f"_api_{method}", None)
        if answer is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            return 200, {"ok": True, "result": answer(call.params)}
        except (KeyError, TypeError, ValueError) as err:  # a missing or malformed parameter, as Telegram answers it
            call.params["ok"] = False
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {type(err).__name__}: {err}"}

    def _api_getMe(self, params):  # noqa: N802
        return {"id": self.bot_id, "is_bot": True, "first_name": "Talklike Test", "username": self.username,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _api_getUpdates(self, params):  # noqa: N802
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 10.0)
        with self._cond:
            while True:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or self._stopping or time.monotonic() >= deadline:
                    return list(self._updates)
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def _api_sendMessage(self, params):  # noqa: N802
        return self._message(params, text=params["text"])

    def _api_editMessageText(self, params):  # noqa: N802
        return self._message(params, text=params["text"], message_id=int(params["message_id"]))

    def _api_sendChatAction(self, params):  # noqa: N802
        return True

    _api_setMyCommands = _api_deleteWebhook = _api_setWebhook = _api_answerCallbackQuery = _api_sendChatAction
    _api_deleteMyCommands = _api_close = _api_logOut = _api_sendChatAction

    def set_admins(self, chat_id: int, users: list[dict]) -> None:
        """The administrators getChatAdministrators lists for a group."""
        with self._cond:
            self.admins[chat_id] = users

    def _api_getChatAdministrators(self, params):  # noqa: N802
        with self._cond:
            users = self.admins.get(int(params["chat_id"]), [])
        return [{"status": "administrator", "user": u, "can_be_edited": False, "is_anonymous": False,
                 "can_manage_chat": True, "can_delete_messages": True, "can_manage_video_chats": True,
                 "can_restrict_members": True, "can_promote_members": False, "can_change_info": True,
                 "can_invite_users": True, "can_post_stories": False, "can_edit_stories": False,
                 "can_delete_stories": False} for u in users]

    _api_leaveChat = _api_sendChatAction

    def _api_getWebhookInfo(self, params):  # noqa: N802
        urls = [c["url"] for c in self.calls_to("setWebhook")]
        return {"url": urls[-1] if urls else "", "has_custom_certificate": False, "pending_update_count": 0}

    def _message(self, params, text: str, message_id: int | None = None) -> dict:
        chat_id = int(params["chat_id"])
        message = {"message_id": message_id or next(self._message_ids), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                   "from": {"id": self.bot_id, "is_bot": True, "first_name": "Talklike Test",
                            "username": self.username},
                   "text": text}
        if params.get("message_thread_id"):
            message["message_thread_id"] = int(params["message_thread_id"])
            message["is_topic_message"] = True
        return message


def _params(content_type: str, body: bytes) -> dict:
    if "json" in content_type:
        return json.loads(body or b"{}")
    if "multipart" in content_type:
        raise AssertionError("the fake Bot API does not take file uploads")
    params = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    for key in JSON_FIELDS & params.keys():
        params[key] = json.loads(params[key])
    return params


# --- Update JSON, as Telegram sends it ------------------------------------------------------------------
_ids = itertools.count(500)


def user(user_id: int = 42, first_name: str = "Dana", last_name: str | None = None,
         username: str | None = "dana_t") -> dict:
    u = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
    if last_name:
        u["last_name"] = last_name
    if username:
        u["username"] = username
    return u


def private_chat(u: dict) -> dict:
    return {"id": u["id"], "type": "private", "first_name": u["first_name"], **(
        {"username": u["username"]} if "username" in u else {})}


def group_chat(chat_id: int = -1001234567890, title: str = "Friends", forum: bool = False) -> dict:
    chat = {"id": chat_id, "type": "supergroup", "title": title}
    if forum:
        chat["is_forum"] = True
    return chat


def message(chat: dict, sender: dict | None = None, text: str | None = None, *, entities: list | None = None,
            reply_to: dict | None = None, thread_id: int | None = None, **extra) -> dict:
    """A Message object; a text starting with `/` gets its bot_command entity automatically."""
    m = {"message_id": next(_ids), "date": int(time.time()), "chat": chat}
    if sender is not None:
        m["from"] = sender
    if text is not None:
        m["text"] = text
        if entities is None and text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if entities:
            m["entities"] = entities
    if reply_to is not None:
        m["reply_to_message"] = reply_to
    if thread_id is not None:
        m["message_thread_id"] = thread_id
        m["is_topic_message"] = True
    m.update(extra)
    return m


def mention(text: str, name: str) -> list[dict]:
    """The `mention` entity of `@name` inside `text` (offsets in UTF-16 code units, as Telegram counts)."""
    start = text.index(f"@{name}")
    offset = len(text[:start].encode("utf-16-le")) // 2
    return [{"type": "mention", "offset": offset, "length": len(f"@{name}".encode("utf-16-le")) // 2}]


def update(**kinds) -> dict:
    """`update(message=...)`, `update(edited_message=...)`, `update(my_chat_member=...)`, …"""
    return {"update_id": next(_update_ids), **kinds}


_update_ids = itertools.count(10_000)


def member_change(chat: dict, by: dict, old: str, new: str, bot_id: int = BOT_ID,
                  bot_username: str = BOT_USERNAME) -> dict:
    """A my_chat_member payload: the bot's status in `chat` went from `old` to `new` (member, left, …)."""
    bot = {"id": bot_id, "is_bot": True, "first_name": "Talklike Test", "username": bot_username}
    return {"chat": chat, "from": by, "date": int(time.time()),
            "old_chat_member": _member(bot, old), "new_chat_member": _member(bot, new)}


def _member(bot: dict, status: str) -> dict:
    """A ChatMember object with the fields its status requires."""
    member = {"user": bot, "status": status}
    if status == "administrator":
        rights = ("is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                  "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                  "can_post_stories", "can_edit_stories", "can_delete_stories")
        member.update({"can_be_edited": False, **{r: r != "is_anonymous" for r in rights}})
    elif status == "kicked":
        member["until_date"] = 0
    return member


def callback_query(u: dict, msg: dict, data: str) -> dict:
    return {"id": str(next(_ids)), "from": u, "message": msg, "chat_instance": "8429", "data": data}


def wait_until(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    """Poll `condition` until it is truthy (returned); AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
