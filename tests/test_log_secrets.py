"""Secrets never reach a log: the filter on every handler, the fixed lines for errors that quote a token, and
both platforms under gunicorn against their loopback fakes answering 401, 403 and 500, every line grepped."""

from __future__ import annotations

import io
import json
import logging
import time
import urllib.request

import pytest
from fake_bot_api import TOKEN as TELEGRAM_TOKEN
from fake_bot_api import FakeBotAPI, message, private_chat, update, user, wait_until
from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook
from gunicorn_server import GunicornServer

from bot.infra.log_format import JSONFormatter, RedactSecrets, install_redaction, redact, register_secrets
from bot.infra.stores.base import redact_url

APP_SECRET, VERIFY, TG_SECRET = "app-secret-5f2c91", "verify-me-7d01", "tg-secret_8e4b"
PAGE = "EAAGtalklikePAGEtoken4b9f1c2d3e4f5a6b7c8d9e0f"  # a Page token's form: EAA + letters and digits
SECRETS = {"the bot token": TELEGRAM_TOKEN, "the app secret": APP_SECRET, "the Page token": PAGE,
           "the verify token": VERIFY, "the webhook secret": TG_SECRET}


def captured(logger: logging.Logger) -> tuple[logging.Handler, io.StringIO]:
    """A JSON handler with the filter on `logger`, as `configure_logging` installs it, writing to a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(RedactSecrets())
    logger.addHandler(handler)
    return handler, out


# --- the filter --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "kept"), [
    (f"POST https://api.telegram.org/bot{TELEGRAM_TOKEN}/getMe 401", "/bot***/getMe"),
    ("GET /bot123:short-malformed/getMe", "/bot***/getMe"),
    (f"The token `{TELEGRAM_TOKEN}` was rejected by the server.", "123456789:***"),
    ("POST /v21.0/me/messages?access_token=PAGE-TOKEN-1&x=1 HTTP/1.1", "access_token=***&x=1"),
    (f"Malformed access token {PAGE}", "Malformed access token EAA***"),
    ("store redis://:p@ss:w/rd@cache.example:6379/0 is unavailable", "redis://:***@cache.example:6379/0"),
    ("store redis://cache.example:6379/0?password=hunter2&db=1", "?password=***&db=1"),
])
def test_the_filter_masks_tokens_and_passwords(text, kept):
    masked = redact(text)
    assert kept in masked
    for secret in (TELEGRAM_TOKEN, "short-malformed", "PAGE-TOKEN-1", PAGE, "p@ss:w/rd", "ss:w", "hunter2"):
        assert secret not in masked


def test_redact_url_handles_passwords_holding_at_signs_and_password_query_values():
    assert redact_url("redis://user:p@ss@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact_url("rediss://:a@b@c@h/0?ssl_cert_reqs=none") == "rediss://:***@h/0?ssl_cert_reqs=none"
    assert redact_url("redis://h:6379/0?password=s3cr3t@x&db=2") == "redis://h:6379/0?password=***&db=2"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"  # nothing to hide: unchanged
    assert redact_url("redis://user@h:6379/0") == "redis://user@h:6379/0"


def test_the_filter_masks_messages_arguments_extras_and_exception_text():
    register_secrets(["app-secret-of-this-test", "short"])  # too short to mask safely: ignored
    logger = logging.getLogger("talklike.test_log_secrets")
    handler, out = captured(logger)
    try:
        logger.warning("calling %s", f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/getMe",
                       extra={"error": "signed with app-secret-of-this-test", "count": 3})
        try:
            raise RuntimeError(f"The token `{TELEGRAM_TOKEN}` was rejected; secret app-secret-of-this-test")
        except RuntimeError:
            logger.exception("it failed", stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert TELEGRAM_TOKEN not in text and "app-secret-of-this-test" not in text
    first, second = (json.loads(line) for line in text.splitlines() if line.startswith("{"))
    assert first["msg"] == "calling https://api.telegram.org/bot***/getMe" and first["count"] == 3
    assert first["error"] == "signed with ***"
    assert "RuntimeError: The token `123456789:***` was rejected; secret ***" in second["exc"]
    assert "short" in redact("a short word")


def test_configure_logging_puts_the_filter_on_every_handler():
    from bot.infra.log_format import configure_logging

    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    extra = logging.StreamHandler(io.StringIO())
    gunicorn = logging.getLogger("gunicorn.error")
    theirs = logging.StreamHandler(io.StringIO())
    gunicorn.addHandler(theirs)
    try:
        configure_logging("INFO")
        root.addHandler(extra)
        install_redaction()
        assert all(any(isinstance(f, RedactSecrets) for f in h.filters) for h in [*root.handlers, theirs])
        install_redaction()  # idempotent
        assert sum(isinstance(f, RedactSecrets) for f in theirs.filters) == 1
    finally:
        root.handlers, root.level = saved, level
        gunicorn.removeHandler(theirs)


def test_inbox_recovery_logs_a_fixed_line_for_an_error_quoting_the_token():
    # Without the filter: the line itself must not carry the token (python-telegram-bot's InvalidToken quotes it).
    from telegram.error import InvalidToken

    from bot.infra.inbox import Inbox
    from bot.infra.stores import open_store
    from bot.infra.stores.owner import this_machine

    store = open_store("memory://")
    inbox = Inbox(store, lease=60)

    def recover(item_id: str, payload: bytes) -> None:
        try:
            raise InvalidToken(f"The token `{TELEGRAM_TOKEN}` was rejected by the server.")
        except InvalidToken as err:
            raise RuntimeError("the Telegram webhook is not running") from err

    inbox.register("telegram:", recover)
    store.inbox_add("telegram:update:1:2", b"{}", f"{this_machine()}/{2**22 + 1}/gone", lease=60)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))  # a plain handler: no filter
    logger = logging.getLogger("bot.infra.inbox")
    logger.addHandler(handler)
    try:
        assert inbox.recover_now() == 1
    finally:
        logger.removeHandler(handler)
    assert "the platform refused the bot's token" in out.getvalue()
    assert TELEGRAM_TOKEN not in out.getvalue() and "Traceback" not in out.getvalue()


# --- both platforms under gunicorn, refused by their APIs ---------------------------------------------
def test_no_secret_reaches_the_logs_when_the_platforms_refuse_the_bot(tiny_artifact, tmp_path):
    log = tmp_path / "server.log"
    with FakeGraph(token=PAGE) as graph, FakeBotAPI() as bot_api:
        env = {"TALKLIKE_MODEL": str(tiny_artifact), "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "8",
               "TALKLIKE_LOG_LEVEL": "DEBUG", "TALKLIKE_STORE_URL": f"sqlite:///{tmp_path / 't.db'}",
               "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": APP_SECRET, "MESSENGER_PAGE_TOKEN": PAGE,
               "MESSENGER_GRAPH_URL": graph.url, "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
               "TELEGRAM_WEBHOOK_SECRET": TG_SECRET, "TELEGRAM_API_URL": bot_api.url}
        server = GunicornServer(env, tmp_path, log=log).start()
        try:
            verify = f"{server.base}/messenger/webhook?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=42"
            with urllib.request.urlopen(verify, timeout=10) as answer:
                assert answer.read() == b"42"
            tg = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
            for phase, status in enumerate((401, 403, 500), 1):
                graph.refuse(status)
                bot_api.refuse(status)
                raw = facebook_json(webhook(message_event("psid1", f"hello {status}", mid=f"m-{status}")))
                assert server.post("/messenger/webhook", raw, {"X-Hub-Signature-256": sign(APP_SECRET, raw)}) == 200
                assert server.post("/messenger/webhook", raw, {"X-Hub-Signature-256": "sha256=00"}) == 403
                # the bot cannot start: getMe is refused
                raw = json.dumps(update(message=message(private_chat(user(7)), user(7), "hi"))).encode()
                assert server.post("/telegram/webhook", raw, tg) == 503
                wait_until(lambda n=phase: log.read_text().count("messenger reply not delivered") >= n, timeout=30,
                           what=f"the Messenger reply refused with {status}")
            bot_api.refuse(None)  # the bot starts; then its replies are refused
            raw = json.dumps(update(message=message(private_chat(user(8)), user(8), "hi"))).encode()
            assert server.post("/telegram/webhook", raw, tg) == 200
            bot_api.wait_for("sendMessage")
            for status in (401, 403, 500):
                bot_api.refuse(status)
                sent = len(bot_api.calls_to("sendMessage"))
                raw = json.dumps(update(message=message(private_chat(user(9)), user(9), f"hi {status}"))).encode()
                assert server.post("/telegram/webhook", raw, tg) == 200
                bot_api.wait_for("sendMessage", sent + 1)
            time.sleep(1.0)  # retries and their log lines
        finally:
            assert server.stop() == 0
    text = log.read_text()
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} reached the log"
    # the failures were logged, masked: the test saw what it means to see
    assert "Telegram refused TELEGRAM_TOKEN" in text
    assert "access_token=***" in text and "Malformed access token ***" in text
    assert "messenger reply not delivered" in text and "model loaded" in text
