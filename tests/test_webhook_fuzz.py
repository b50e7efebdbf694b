"""Both webhooks against arbitrary JSON (hypothesis), through Flask's test client: never a 5xx, and whatever the
background does with those events, the app keeps answering normal messages.

Messenger bodies are signed with the right app secret and Telegram updates carry the right secret, so they get
past authentication into parsing, deduplication and the background handlers (replies go to the loopback fakes).
benchmarks/fuzz_webhooks.py does the same, and more, against gunicorn. The cases it found are kept at the end."""

from __future__ import annotations

import json
import logging
import string

import pytest
from fake_bot_api import TOKEN, FakeBotAPI, message, private_chat, user, wait_until
from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.telegram.webhook import runner_of
from bot.app import create_app, services_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECRET, VERIFY, PAGE, TG_SECRET = "fuzz-app-secret", "fuzz-verify", "FUZZ-PAGE-TOKEN", "fuzz-tg_secret"
TG_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fakes():
    with FakeGraph(token=PAGE) as graph, FakeBotAPI() as bot_api:
        yield graph, bot_api


@pytest.fixture(scope="module")
def app(tiny_artifact, fakes):
    graph, bot_api = fakes
    app = create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://", "TALKLIKE_CONSOLE": "0",
                      "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": SECRET, "MESSENGER_PAGE_TOKEN": PAGE,
                      "MESSENGER_GRAPH_URL": graph.url, "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
                      "TELEGRAM_API_URL": bot_api.url})
    handler = app.extensions.get("talklike.messenger")
    if handler is not None and hasattr(handler.send_api, "retry"):  # fail fast on the fake's odd answers
        from bot.adapters.messenger.send_api import RetryPolicy

        handler.send_api.retry = RetryPolicy(attempts=2, backoff=0.01)
    yield app
    services_of(app).close()


# --- strategies ----------------------------------------------------------------------------------------
# Text without lone surrogates (those are a known bug, pinned below); everything else goes.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
KEYS = st.sampled_from(["object", "entry", "messaging", "id", "time", "sender", "recipient", "timestamp", "message",
                        "mid", "text", "quick_reply", "payload", "attachments", "type", "postback", "title", "is_echo",
                        "sticker_id", "read", "delivery", "update_id", "chat", "from", "date", "message_id",
                        "entities", "offset", "length", "callback_query", "data", "my_chat_member", "edited_message",
                        "new_chat_member", "status", "user", "is_bot", "first_name", "username", "sticker", "emoji",
                        "reply_to_message", "message_thread_id", "is_topic_message"]) | TEXT
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
           | TEXT | st.sampled_from(["page", "private", "group", "supergroup", "mention", "bot_command", "member",
                                     "left", "/start", "/persona Bob", "/reset", "/forget", "/help", "/say",
                                     "PERSONA:Bob", "GET_STARTED", "persona:Alice", "@talklike_test_bot hi"]))
HEADER = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=70)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=25)


def maybe(strategy):
    return st.one_of(strategy, JSON)


def _messaging_event():
    message_ = st.fixed_dictionaries({}, optional={
        "mid": maybe(TEXT), "text": maybe(TEXT | st.text(max_size=5000)), "is_echo": maybe(st.booleans()),
        "quick_reply": maybe(st.fixed_dictionaries({"payload": maybe(st.sampled_from(["PERSONA:Bob", "RESET", "x"]))})),
        "attachments": maybe(st.lists(st.fixed_dictionaries({"type": maybe(st.sampled_from(["image", "audio"]))}),
                                      max_size=3)),
        "sticker_id": JSON})
    return st.fixed_dictionaries({}, optional={
        "sender": maybe(st.fixed_dictionaries({"id": maybe(TEXT)})), "recipient": JSON,
        "timestamp": maybe(st.integers()), "message": maybe(message_),
        "postback": maybe(st.fixed_dictionaries({}, optional={"payload": maybe(TEXT), "title": JSON, "mid": JSON})),
        "read": JSON, "delivery": JSON})


MESSENGER_BODY = st.one_of(
    JSON,
    st.fixed_dictionaries({"object": maybe(st.just("page")),
                           "entry": maybe(st.lists(st.fixed_dictionaries(
                               {"id": JSON, "messaging": maybe(st.lists(maybe(_messaging_event()), max_size=3))}),
                               max_size=2))}),
)


def _telegram_message():
    chat = st.fixed_dictionaries({"id": maybe(st.integers()), "type": maybe(st.sampled_from(["private", "group"]))})
    sender = st.fixed_dictionaries({"id": maybe(st.integers()), "is_bot": maybe(st.booleans()),
                                    "first_name": maybe(TEXT)})
    entity = st.fixed_dictionaries({"type": maybe(st.sampled_from(["mention", "bot_command", "text_mention"])),
                                    "offset": maybe(st.integers()), "length": maybe(st.integers())})
    return st.fixed_dictionaries({"message_id": maybe(st.integers(1, 10**6)), "date": maybe(st.integers(0, 2**31)),
                                  "chat": maybe(chat)},
                                 optional={"from": maybe(sender), "text": maybe(TEXT | st.text(max_size=5000)),
                                           "entities": maybe(st.lists(entity, max_size=3)), "sticker": JSON,
                                           "reply_to_message": JSON, "message_thread_id": JSON,
                                           "is_topic_message": JSON, "migrate_to_chat_id": JSON})


TELEGRAM_BODY = st.one_of(
    JSON,
    st.fixed_dictionaries({"update_id": maybe(st.integers(0, 2**40))},
                          optional={"message": maybe(_telegram_message()), "edited_message": JSON,
                                    "callback_query": JSON, "my_chat_member": JSON, "channel_post": JSON,
                                    "x_unknown_kind": JSON}),
)


# --- the properties ----------------------------------------------------------------------------------------
def post_messenger(client, raw: bytes):
    return client.post("/messenger/webhook", data=raw,
                       headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, raw)})


def post_telegram(client, raw: bytes):
    return client.post("/telegram/webhook", data=raw, headers={"Content-Type": "application/json", TG_HEADER: TG_SECRET})


@FUZZ
@given(body=MESSENGER_BODY)
def test_a_signed_messenger_body_of_any_shape_is_never_a_5xx(app, body):
    raw = facebook_json(body) if isinstance(body, (dict, list)) else json.dumps(body).encode()
    response = post_messenger(app.test_client(), raw)
    assert response.status_code < 500, (raw[:500], response.get_data(as_text=True)[:300])
    assert response.status_code in (200, 400, 404)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(string.printable, max_size=300).map(str.encode))
def test_signed_bytes_that_are_not_json_are_never_a_5xx(app, raw):
    assert post_messenger(app.test_client(), raw).status_code < 500
    assert post_telegram(app.test_client(), raw).status_code < 500


@FUZZ
@given(body=TELEGRAM_BODY)
def test_a_telegram_update_of_any_shape_is_never_a_5xx(app, body):
    raw = json.dumps(body).encode()
    response = post_telegram(app.test_client(), raw)
    assert response.status_code < 500, (raw[:500], response.get_data(as_text=True)[:300])
    assert response.status_code in (200, 400)


@FUZZ
@given(body=JSON, signature=st.none() | HEADER | HEADER.map(lambda s: "sha256=" + s), secret=st.none() | HEADER)
def test_without_the_right_signature_or_secret_nothing_gets_in(app, body, signature, secret):
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None and signature != sign(SECRET, raw):
        headers["X-Hub-Signature-256"] = signature
    assert app.test_client().post("/messenger/webhook", data=raw, headers=headers).status_code == 403
    headers = {"Content-Type": "application/json"}
    if secret is not None and secret.strip() != TG_SECRET:
        headers[TG_HEADER] = secret
    assert app.test_client().post("/telegram/webhook", data=raw, headers=headers).status_code == 403


HOSTILE_MESSENGER = [  # shapes that reach the background handler, each for its own user
    {"sender": {"id": "bg1"}, "message": {"mid": "m.bg.1", "text": "/persona"}},
    {"sender": {"id": "bg2"}, "message": {"mid": "m.bg.2", "text": "x" * 20_000}},
    {"sender": {"id": "bg3"}, "message": {"mid": "m.bg.3", "attachments": [{"type": None}, 5, {"type": ["a"]}]}},
    {"sender": {"id": "bg4"}, "message": {"mid": "m.bg.4", "quick_reply": {"payload": "PERSONA:" + "B" * 3000}}},
    {"sender": {"id": "bg5"}, "postback": {"payload": "PERSONA:Nobody", "title": 5}, "timestamp": "now"},
    {"sender": {"id": 12345}, "message": {"mid": "m.bg.6", "text": "an int psid"}},
    {"sender": {"id": "bg7"}, "message": {"mid": "m.bg.7", "text": "/forget"}},
    {"sender": {"id": "bg7"}, "message": {"mid": "m.bg.8", "text": "/reset now"}},
    {"sender": {"id": "bg9"}, "message": {"mid": "m.bg.9", "sticker_id": 1}, "timestamp": 10**20},
]


def test_the_background_survives_the_fuzz_and_still_answers(app, fakes, caplog):
    """After everything above (and a few hostile events that do reach the handlers), a normal message still
    gets its reply on both platforms, and no background task raised out of its pool thread."""
    graph, bot_api = fakes
    client = app.test_client()
    services = services_of(app)
    with caplog.at_level(logging.WARNING):
        assert post_messenger(client, facebook_json(webhook(*HOSTILE_MESSENGER))).status_code == 200
        for i, extra in enumerate([{"text": "hi", "entities": [{"type": "mention", "offset": 10**6, "length": 5}]},
                                   {"text": "@talklike_test_bot", "entities": [{"type": "mention", "offset": -3,
                                                                               "length": 99}]},
                                   {"text": "/persona " + "Z" * 5000}, {"text": "x" * 9000}]):
            u = user(880_000 + i, "Fuzz", username=None)
            raw = json.dumps({"update_id": 9_000_000 + i, "message": message(private_chat(u), u, **extra)}).encode()
            assert post_telegram(client, raw).status_code == 200
        assert services.background.wait_idle(60), "the background pool did not finish"
        raw = facebook_json(webhook(message_event("after-fuzz", "hello again", mid="m.after.fuzz")))
        assert post_messenger(client, raw).status_code == 200
        u = user(990_001, "Dana", username=None)
        raw = json.dumps({"update_id": 9_999_999, "message": message(private_chat(u), u, "hello again")}).encode()
        assert post_telegram(client, raw).status_code == 200
        assert graph.wait_for(lambda f: len(f.texts("after-fuzz")) == 1, timeout=60)
        bot_api.wait_for("sendMessage", 1, lambda c: str(c.get("chat_id")) == "990001", timeout=60)
        assert services.background.wait_idle(60)
    escaped = [r for r in caplog.records if r.name == "bot.infra.background"]  # BackgroundTasks: "task ... failed"
    assert not escaped, [r.getMessage() for r in escaped]
    assert app.test_client().get("/readyz").status_code == 200


# --- cases the fuzzing found ---------------------------------------------------------------------------------
@pytest.mark.parametrize("event", [
    {"sender": {"id": "s1"}, "message": {"mid": "m.sur.1", "text": "\udfff"}},
    {"sender": {"id": "s2"}, "message": {"mid": "m.sur.\ud800", "text": "hi"}},
    {"sender": {"id": "\ud800"}, "postback": {"payload": "HELP"}, "timestamp": 1},
], ids=["text", "mid", "postback-psid"])
def test_lone_surrogates_in_a_messenger_body_are_a_400(app, event):
    assert post_messenger(app.test_client(), facebook_json(webhook(event))).status_code == 400


def test_a_deeply_nested_telegram_body_is_a_400(app):
    assert post_telegram(app.test_client(), b"[" * 100_000).status_code == 400


@pytest.mark.parametrize("kind", ["my_chat_member", "callback_query", "blank_command", "list_chat_id"])
def test_malformed_telegram_updates_are_refused_or_handled_without_errors(app, kind, caplog):
    chat = {"id": 990002, "type": "private", "first_name": "Fu"}
    sender = {"id": 990002, "is_bot": False, "first_name": "Fu"}
    bodies = {
        "my_chat_member": {"chat": chat, "from": sender, "date": 1, "old_chat_member": None},
        "callback_query": {"id": "cq", "from": sender, "chat_instance": "x", "data": "persona:#99",
                           "message": {"message_id": 1, "date": 1, "chat": chat, "text": "pick"}},
        "blank_command": {"message_id": 2, "date": 1, "chat": chat, "from": sender, "text": " ",
                          "entities": [{"type": "bot_command", "offset": 0, "length": 1}]},
        "list_chat_id": {"message_id": 3, "date": 1, "chat": {**chat, "id": [1]}, "from": sender, "text": "hi"},
    }
    key = {"my_chat_member": "my_chat_member", "callback_query": "callback_query"}.get(kind, "message")
    with caplog.at_level(logging.ERROR):
        status = post_telegram(app.test_client(),
                               json.dumps({"update_id": 900 + list(bodies).index(kind), key: bodies[kind]}).encode()).status_code
        assert status in (200, 400)
        events = runner_of(app).services.events
        wait_until(lambda: not events.in_flight, what="the Telegram loop done with the update")
    assert not [r for r in caplog.records if "update failed" in r.getMessage()], caplog.text
