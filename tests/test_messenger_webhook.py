"""The Messenger webhook through Flask's test client, replying to a fake Graph API on loopback."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time

import pytest
from fake_graph import FakeGraph, facebook_json, message_event, postback_event, sign, webhook

from bot.adapters.messenger.handler import ATTACHMENT
from bot.adapters.messenger.send_api import RetryPolicy
from bot.app import create_app, services_of
from bot.conversation.problems import APOLOGY, BUSY, STORE_DOWN
from bot.infra.log_format import JSONFormatter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VERIFY = "verify-tok-81f2"
SECRET = "app-secret-4c9e"
TOKEN = "PAGE-TOKEN-d7a3"
WAIT = 30.0


class Messenger:
    """Facebook's side of one app: signed webhook calls in, what reached the fake Graph API out."""

    def __init__(self, app, fake: FakeGraph):
        self.app, self.fake = app, fake
        self.services = services_of(app)
        self.engine = self.services.engine
        self.handler = app.extensions["talklike.messenger"]
        self.handler.send_api.retry = RetryPolicy(attempts=3, backoff=0.01)
        self.client = app.test_client()

    def post(self, body: dict | bytes, secret: str = SECRET, signature: str | None = None, client=None):
        raw = body if isinstance(body, bytes) else facebook_json(body)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature or sign(secret, raw)}
        return (client or self.client).post("/messenger/webhook", data=raw, headers=headers)

    def send(self, *events: dict, client=None):
        response = self.post(webhook(*events), client=client)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    def say(self, psid: str, text: str, **kwargs):
        return self.send(message_event(psid, text, **kwargs))

    def wait(self) -> None:
        assert self.services.background.wait_idle(WAIT), "background replies did not finish"

    def transcript(self, psid: str) -> list[dict]:
        return self.engine.transcript(f"messenger:{psid}")


def logged(caplog) -> str:
    """Every captured record as the app writes it (JSON, with its extra fields)."""
    return "\n".join(JSONFormatter().format(r) for r in caplog.records)


@pytest.fixture
def fake():
    with FakeGraph(token=TOKEN) as server:
        yield server


def make_app(tiny_artifact, fake, **extra):
    config = {"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://", "TALKLIKE_CONSOLE": "0",
              "TALKLIKE_KEEP_TRANSCRIPTS": "1",  # the tests read what was said back from the transcripts
              "TALKLIKE_DISCLOSURE": "off",  # counted replies only (the disclosure has tests of its own)
              "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": SECRET, "MESSENGER_PAGE_TOKEN": TOKEN,
              "MESSENGER_GRAPH_URL": fake.url, **extra}
    return create_app(config)


@pytest.fixture
def fb(tiny_artifact, fake):
    app = make_app(tiny_artifact, fake)
    yield Messenger(app, fake)
    services_of(app).close()


# --- the HTTP edge -----------------------------------------------------------------------------------
def test_verification_echoes_the_challenge(fb):
    r = fb.client.get("/messenger/webhook", query_string={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                                          "hub.challenge": "1158201444"})
    assert r.status_code == 200
    assert r.get_data(as_text=True) == "1158201444"
    assert r.mimetype == "text/plain"


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
    {"hub.verify_token": VERIFY, "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": VERIFY},
])
def test_verification_refused(fb, query):
    r = fb.client.get("/messenger/webhook", query_string=query)
    assert r.status_code == 403
    assert "1" not in r.get_data(as_text=True).replace("403", "")


def test_signed_body_with_escapes_is_read_as_sent(fb):
    text = "look: http://example.com/a/b — café ☕ 😀"
    raw = facebook_json(webhook(message_event("u1", text)))
    assert b"\\/" in raw and b"\\u00e9" in raw and b"\\ud83d" in raw  # Facebook's escapes, signed as they are
    r = fb.post(raw)
    assert r.status_code == 200
    fb.wait()
    assert fb.transcript("u1")[0]["text"] == text
    assert len(fb.fake.texts("u1")) == 1


def test_signature_over_reserialized_body_is_refused(fb):
    body = webhook(message_event("u1", "a/b é"))
    raw = facebook_json(body)
    plain = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert plain != raw
    r = fb.post(raw, signature=sign(SECRET, plain))  # what a checker that re-serializes would compute
    assert r.status_code == 403
    fb.wait()
    assert fb.fake.calls == []


@pytest.mark.parametrize("signature", ["WRONG-SECRET", "", "sha1=", "sha256=", "sha256=00ff", "sha256=é"])
def test_bad_or_missing_signature_is_403(fb, signature):
    raw = facebook_json(webhook(message_event("u1", "hi")))
    if signature == "WRONG-SECRET":
        header = sign("not-the-secret", raw)
    elif signature == "sha1=":
        header = "sha1=" + sign(SECRET, raw)[len("sha256="):]
    else:
        header = signature
    headers = {"Content-Type": "application/json"}
    if header:
        headers["X-Hub-Signature-256"] = header
    r = fb.client.post("/messenger/webhook", data=raw, headers=headers)
    assert r.status_code == 403
    fb.wait()
    assert fb.fake.calls == []
    assert fb.engine.store.get("messenger:u1") is None


@pytest.mark.parametrize("raw, status", [
    (b"{not json", 400),
    (b"\xff\xfe{}", 400),
    (b"[1, 2]", 400),
    (b'{"object": "page", "entry": {"id": 1}}', 400),
    (b'{"object": "page", "entry": [{"messaging": ["x"]}]}', 400),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'{"object": "user", "entry": []}', 404),
])
def test_malformed_bodies(fb, raw, status):
    r = fb.post(raw)
    assert r.status_code == status
    assert r.is_json


def test_oversized_body_is_413(tiny_artifact, fake):
    app = make_app(tiny_artifact, fake, TALKLIKE_MAX_BODY_BYTES="2048")
    try:
        fb = Messenger(app, fake)
        raw = facebook_json(webhook(message_event("u1", "x" * 4000)))
        assert fb.post(raw).status_code == 413
        # without a Content-Length (chunked, as gunicorn passes it on), reading the body enforces the limit too
        r = fb.client.post("/messenger/webhook", input_stream=io.BytesIO(raw),
                           headers={"X-Hub-Signature-256": sign(SECRET, raw), "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
        assert r.status_code == 413
        event = message_event("u1", "")
        size = len(facebook_json(webhook(event)))
        event["message"]["text"] = "x" * (2048 - size)
        exact = facebook_json(webhook(event))
        assert len(exact) == 2048
        assert fb.post(exact).status_code == 200  # at the limit is still fine
        fb.wait()
        assert len(fake.texts("u1")) == 1
    finally:
        services_of(app).close()


# --- events ------------------------------------------------------------------------------------------
def test_text_message_gets_a_reply_with_typing_and_seen(fb):
    fb.say("u1", "hello there")
    fb.wait()
    sent = fb.fake.messages("u1")
    assert len(sent) == 1
    call = sent[0]
    assert call.path == "/me/messages" and call.query == {"access_token": TOKEN}
    assert call.json["messaging_type"] == "RESPONSE"
    assert 0 < len(call.text) <= 2000
    assert fb.fake.actions("u1") == ["mark_seen", "typing_on", "typing_off"]
    transcript = fb.transcript("u1")
    assert [m["author"] for m in transcript][1] == fb.services.default_persona == "Alice"
    assert transcript[1]["text"].strip() == call.text  # Messenger would strip the edges anyway


def test_redelivered_message_is_answered_once(fb):
    body = webhook(message_event("u1", "hello", mid="m_same"))
    fb.send(body["entry"][0]["messaging"][0])
    fb.send(body["entry"][0]["messaging"][0])  # Facebook retries when it thinks we did not answer
    fb.wait()
    assert len(fb.fake.texts("u1")) == 1
    assert len(fb.transcript("u1")) == 2


def test_redelivery_to_another_worker_is_answered_once(tiny_artifact, fake, tmp_path):
    """Two apps over one sqlite file stand for two gunicorn workers: the retry reaches the other one."""
    store = f"sqlite:///{tmp_path}/t.db"
    apps = [make_app(tiny_artifact, fake, TALKLIKE_STORE_URL=store) for _ in range(2)]
    try:
        workers = [Messenger(app, fake) for app in apps]
        event = message_event("u1", "hello", mid="m_twice")
        workers[0].send(event)
        workers[1].send(event)
        for worker in workers:
            worker.wait()
        assert len(fake.texts("u1")) == 1
        workers[1].say("u1", "and again")
        workers[1].wait()
        assert len(fake.texts("u1")) == 2
    finally:
        for app in apps:
            services_of(app).close()


def test_a_store_that_is_down_gets_503_so_facebook_delivers_again(tiny_artifact, fake, own_redis_server):
    app = make_app(tiny_artifact, fake, TALKLIKE_STORE_URL=own_redis_server.url)
    try:
        fb = Messenger(app, fake)
        own_redis_server.stop()
        body = webhook(message_event("u1", "hello", mid="m_down"))
        down = fb.post(body)
        assert down.status_code == 503 and "store" in down.get_json()["message"]
        own_redis_server.start()
        fb.send(body["entry"][0]["messaging"][0])  # the redelivery, once the store is back
        fb.wait()
        assert len(fake.texts("u1")) == 1
    finally:
        services_of(app).close()


def test_a_reply_waits_for_a_store_that_went_down_instead_of_saying_busy(tiny_artifact, fake, own_redis_server):
    from bot.infra.stores import StoreUnavailable, open_store

    app = make_app(tiny_artifact, fake, TALKLIKE_STORE_URL=own_redis_server.url)
    try:
        fb = Messenger(app, fake)
        other = open_store(own_redis_server.url)
        with contextlib.suppress(StoreUnavailable), other.lock("messenger:u1"):
            # Another reply in progress: ours waits for the conversation, and then the store goes away.
            fb.send(message_event("u1", "hello", mid="m_outage"))
            time.sleep(0.3)
            own_redis_server.stop()
        time.sleep(0.5)
        own_redis_server.start()
        fb.wait()  # the retries (1 s, 2 s, ...) run on the background pool
        assert fake.wait_for(lambda f: any(c.text for c in f.calls if c.recipient == "u1"), timeout=20)
        time.sleep(1.5)  # a second answer would come now
        [reply] = fake.texts("u1")
        assert reply not in (BUSY, STORE_DOWN)
        other.close()
    finally:
        services_of(app).close()


def test_redelivered_postback_without_mid_is_answered_once(fb):
    first = postback_event("u1", "GET_STARTED", timestamp=1_700_000_000_000)
    fb.send(first)
    fb.send(first)
    fb.send(postback_event("u1", "GET_STARTED", timestamp=1_700_000_001_000))  # pressed again: a new event
    fb.wait()
    assert len(fb.fake.texts("u1")) == 2


def test_get_started_greets_and_offers_personas(fb):
    fb.send(postback_event("u1", "GET_STARTED"))
    fb.wait()
    (call,) = fb.fake.messages("u1")
    assert "Alice" in call.text
    quick = call.json["message"]["quick_replies"]
    assert [q["payload"] for q in quick] == ["PERSONA:Alice", "PERSONA:Bob"]
    assert all(q["content_type"] == "text" and len(q["title"]) <= 20 for q in quick)


@pytest.mark.parametrize("event", [
    message_event("u1", "my own words", is_echo=True),
    {"sender": {"id": "u1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1, "delivery": {"mids": ["m_1"], "watermark": 1}},
    {"sender": {"id": "u1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1, "read": {"watermark": 1}},
    {"sender": {"id": "u1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1,
     "reaction": {"mid": "m_1", "action": "react", "emoji": "❤", "reaction": "love"}},
    {"sender": {"id": "u1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1, "optin": {"ref": "secret words"}},
    {"sender": {"id": "u1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1, "something_new": {"text": "secret words"}},
    {"recipient": {"id": "PAGE1"}, "timestamp": 1, "message": {"mid": "m_x", "text": "secret words"}},
    message_event("u1", "   "),
], ids=["echo", "delivery", "read", "reaction", "optin", "unknown", "no-sender", "blank"])
def test_events_that_are_ignored(fb, event, caplog):
    caplog.set_level(logging.INFO)
    fb.send(event)
    fb.wait()
    assert fb.fake.calls == []
    assert fb.engine.store.get("messenger:u1") is None
    assert "secret words" not in logged(caplog) and "my own words" not in logged(caplog)
    assert "ignored" in logged(caplog)


def test_attachment_gets_a_short_reply_in_persona(fb):
    fb.send(message_event("u1", attachments=[{"type": "image", "payload": {"url": "https://x/y.jpg"}}]))
    fb.wait()
    (text,) = fb.fake.texts("u1")
    assert 0 < len(text) <= 80
    assert [m["text"].strip() for m in fb.transcript("u1")] == ["[image]", text]


def test_attachment_gets_a_polite_line_when_no_short_reply_can_be(fb):
    fb.engine.configure("messenger:u1", min_chars=200)  # a short reply would break the user's own settings
    fb.send(message_event("u1", attachments=[{"type": "audio", "payload": {}}]))
    fb.wait()
    assert fb.fake.texts("u1") == [ATTACHMENT]


# --- personas and commands ---------------------------------------------------------------------------
def test_persona_switching_by_quick_reply_and_command(fb):
    fb.say("u1", "Bob", quick_reply="PERSONA:Bob")
    fb.wait()
    assert fb.fake.texts("u1") == ["Now speaking as Bob."]
    assert fb.engine.store.get("messenger:u1").persona == "Bob"
    fb.say("u1", "hi bob")
    fb.wait()
    assert fb.transcript("u1")[-1]["author"] == "Bob"
    fb.say("u1", "/persona alice")
    fb.say("u1", "hi alice")
    fb.wait()
    assert fb.fake.texts("u1")[2] == "Now speaking as Alice."
    assert fb.transcript("u1")[-1]["author"] == "Alice"
    assert fb.engine.store.get("messenger:u1").persona == "Alice"


def test_unknown_persona_offers_the_choices(fb):
    fb.say("u1", "/persona Zed")
    fb.say("u1", "/personas")
    fb.wait()
    first, second = fb.fake.messages("u1")
    assert "Zed" in first.text
    assert [q["payload"] for q in first.json["message"]["quick_replies"]] == ["PERSONA:Alice", "PERSONA:Bob"]
    assert "Alice, Bob" in second.text and "speaking as Alice" in second.text
    assert fb.engine.store.get("messenger:u1") is None  # nothing stored for a refused switch


def test_configured_default_persona(tiny_artifact, fake):
    app = make_app(tiny_artifact, fake, TALKLIKE_PERSONA="Bob")
    try:
        fb = Messenger(app, fake)
        fb.say("u1", "hello")
        fb.wait()
        assert fb.transcript("u1")[-1]["author"] == "Bob"
    finally:
        services_of(app).close()


def test_quick_replies_keep_to_platform_limits(fb, monkeypatch):
    names = [f"Person number {i} with a long name" for i in range(20)]
    monkeypatch.setattr(fb.engine, "personas", names)
    monkeypatch.setitem(fb.engine.artifact.card, "authors", {n: {"messages": i} for i, n in enumerate(names)})
    fb.say("u1", "/personas")
    fb.wait()
    buttons = fb.fake.messages("u1")[-1].json["message"]["quick_replies"]
    assert len(buttons) == 13
    assert all(len(b["title"]) <= 20 for b in buttons)
    assert buttons[0]["payload"] == "PERSONA:" + names[-1]  # most messages first


def test_reset_and_forget(fb):
    fb.say("u1", "/persona Bob")
    fb.say("u1", "remember me")
    fb.wait()
    assert len(fb.transcript("u1")) == 2
    fb.say("u1", "/reset")
    fb.wait()
    record = fb.engine.store.get("messenger:u1")
    assert record.transcript == [] and record.state is None and record.persona == "Bob"
    assert "Bob" in fb.fake.texts("u1")[-1]
    fb.say("u1", "/forget")
    fb.wait()
    assert fb.engine.store.get("messenger:u1") is None
    assert "deleted" in fb.fake.texts("u1")[-1]


def test_help_and_unknown_command(fb):
    fb.say("u1", "/help")
    fb.say("u1", "/frobnicate now")
    fb.send(postback_event("u1", "HELP"))
    fb.wait()
    help_text, unknown, menu_help = fb.fake.texts("u1")
    assert "/persona NAME" in help_text and "/forget" in help_text
    assert unknown.startswith("I don't know /frobnicate") and "/help" in unknown
    assert menu_help == help_text
    assert fb.engine.store.get("messenger:u1") is None  # commands are not fed to the model


# --- ordering and concurrency ------------------------------------------------------------------------
def test_one_users_messages_are_answered_in_order(fb):
    texts = [f"message number {i}" for i in range(6)]
    fb.send(*(message_event("u1", t) for t in texts[:3]))  # one call carrying three events
    for t in texts[3:]:
        fb.say("u1", t)
    fb.wait()
    transcript = fb.transcript("u1")
    assert [m["text"] for m in transcript[0::2]] == texts
    assert [m["text"].strip() for m in transcript[1::2]] == fb.fake.texts("u1")


def test_concurrent_users_get_their_own_replies_in_order(fb):
    users = [f"user{i}" for i in range(10)]
    errors: list[BaseException] = []

    def chat(psid: str) -> None:
        client = fb.app.test_client()
        try:
            for n in range(3):
                fb.send(message_event(psid, f"{psid} says {n}"), client=client)
        except BaseException as err:  # noqa: B036 (re-raised in the main thread)
            errors.append(err)

    threads = [threading.Thread(target=chat, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fb.wait()
    for psid in users:
        transcript = fb.transcript(psid)
        assert [m["text"] for m in transcript[0::2]] == [f"{psid} says {n}" for n in range(3)]
        assert [m["text"].strip() for m in transcript[1::2]] == fb.fake.texts(psid)  # nobody got another's reply
    assert len(fb.fake.messages()) == 30


# --- failures ----------------------------------------------------------------------------------------
def test_graph_errors_are_retried_then_given_up_and_state_kept(fb, caplog):
    caplog.set_level(logging.INFO)
    fb.fake.fail(times=50, status=500, what="message")
    fb.say("u1", "secret words one")
    fb.wait()
    message_calls = [c for c in fb.fake.calls if c.text is not None]
    assert len(message_calls) == 3 and all(c.status == 500 for c in message_calls)  # tried 3 times
    assert "reply not delivered" in logged(caplog) and "HTTP 500" in logged(caplog)
    assert len(fb.transcript("u1")) == 2  # the conversation went on, though the reply was lost
    fb.fake.clear_failures()
    fb.say("u1", "secret words two")
    fb.wait()
    assert len(fb.fake.texts("u1")) == 1
    assert len(fb.transcript("u1")) == 4
    assert "secret words" not in logged(caplog) and TOKEN not in logged(caplog)


@pytest.mark.parametrize("status, error, headers", [
    (429, {"message": "Too many calls", "type": "OAuthException", "code": 4}, {"Retry-After": "0"}),
    (400, {"message": "Calls to this api have exceeded the rate limit.", "type": "OAuthException", "code": 613}, {}),
    (503, {"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2}, {}),
])
def test_rate_limits_and_transient_errors_are_retried(fb, status, error, headers):
    fb.fake.fail(times=2, status=status, error=error, headers=headers, what="message")
    fb.say("u1", "hi")
    fb.wait()
    assert [c.status for c in fb.fake.calls if c.text is not None] == [status, status, 200]
    assert len(fb.fake.texts("u1")) == 1


def test_send_api_timeout_is_logged_and_not_repeated(fb, caplog):
    caplog.set_level(logging.INFO)
    fb.handler.send_api.timeout = (1.0, 0.3)
    fb.say("u1", "/persona Bob")
    fb.wait()
    fb.fake.fail(times=1, stall=1.5, what="message")
    fb.say("u1", "hi")
    fb.wait()
    assert "reply not delivered" in logged(caplog) and "no answer within" in logged(caplog)
    assert fb.fake.wait_for(lambda f: len(f.messages("u1")) == 2, timeout=5)  # the stalled call, answered late
    assert len([c for c in fb.fake.calls if c.text is not None]) == 2  # ...and not sent a second time
    assert len(fb.transcript("u1")) == 2


def test_busy_engine_answers_try_again(tiny_artifact, fake):
    app = make_app(tiny_artifact, fake, TALKLIKE_REPLY_TIMEOUT="0.0001")
    try:
        fb = Messenger(app, fake)
        fb.say("u1", "hello")
        fb.wait()
        [told] = fake.texts("u1")
        assert told.startswith("That took me too long")
        assert fake.actions("u1") == ["mark_seen", "typing_on", "typing_off"]
    finally:
        services_of(app).close()


def test_unexpected_error_is_logged_and_apologized_for(fb, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    real_reply = fb.engine.reply
    calls = []

    def broken_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return real_reply(*args, **kwargs)

    monkeypatch.setattr(fb.engine, "reply", broken_once)
    fb.say("u1", "secret words")
    fb.say("u1", "again")
    fb.wait()
    texts = fb.fake.texts("u1")
    assert texts[0] == APOLOGY and len(texts) == 2 and texts[1] != APOLOGY
    record = next(r for r in caplog.records if r.getMessage() == "a conversation request failed")
    assert record.exc_info and "model exploded" in logged(caplog)
    assert "secret words" not in logged(caplog)


def test_no_message_text_or_secret_in_logs_at_info(fb, caplog):
    caplog.set_level(logging.INFO)
    fb.say("u1", "my very private words")
    fb.send(postback_event("u1", "GET_STARTED", title="private title"))
    fb.say("u1", "private quick", quick_reply="PERSONA:Bob")
    fb.send(message_event("u1", attachments=[{"type": "image", "payload": {"url": "https://x/private.jpg"}}]))
    fb.wait()
    assert len(fb.fake.texts("u1")) == 4
    for secret in ("private", TOKEN, SECRET, VERIFY, '"u1"'):
        assert secret not in logged(caplog), secret
    assert "messenger event" in logged(caplog)
