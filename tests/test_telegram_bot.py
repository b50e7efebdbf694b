"""The Telegram bot's behaviour: the real python-telegram-bot Application, fed real Update JSON through the
Flask webhook, talking to a real HTTP server on loopback that plays the Bot API (tests/fake_bot_api.py)."""

from __future__ import annotations

import itertools
import logging

import pytest
from fake_bot_api import (
    BOT_ID,
    BOT_USERNAME,
    TOKEN,
    FakeBotAPI,
    callback_query,
    group_chat,
    member_change,
    mention,
    message,
    private_chat,
    update,
    user,
    wait_until,
)
from flask import Flask

from bot.adapters.telegram.config import TelegramConfig, parse_author_map
from bot.adapters.telegram.handlers import APOLOGY, NOT_TEXT
from bot.adapters.telegram.webhook import SECRET_HEADER, close_runner, make_blueprint
from bot.app import Services
from bot.engine.engine import Engine, EngineConfig
from bot.engine.settings import SamplingSettings
from bot.infra.config import AppConfig, ConfigError
from bot.infra.user_tags import user_tag

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECRET = "test-secret_123"
_chat_ids = itertools.count(7000)


@pytest.fixture(scope="module")
def engine(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=20))) as e:
        yield e


@pytest.fixture(scope="module")
def api():
    with FakeBotAPI() as server:
        yield server


class Harness:
    """Posts updates to the webhook as Telegram would, and reads what the bot sent."""

    def __init__(self, client, api: FakeBotAPI, engine):
        self.client, self.api, self.engine = client, api, engine

    def post(self, **kinds) -> dict:
        body = update(**kinds)
        response = self.client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200, response.get_data(as_text=True)
        return body

    def replies(self, chat_id: int, count: int = 1, timeout: float = 15.0):
        return self.api.wait_for("sendMessage", count, lambda c: c.get("ok", True) and int(c["chat_id"]) == chat_id,
                                 timeout)

    def transcript(self, key: str) -> list[dict]:
        return self.engine.transcript(key)

    def record(self, key: str):
        return self.engine.store.get(key)


def make_harness(engine, api, config: TelegramConfig):
    settings = AppConfig(telegram_token=TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=api.url,
                         disclosure=None)  # counted replies only (the disclosure has tests of its own)
    services = Services.build(settings, engine)
    app = Flask(__name__)
    app.register_blueprint(make_blueprint(services, config))
    return app, services


@pytest.fixture
def tg(engine, api):
    app, services = make_harness(engine, api, TelegramConfig(chat_interval=0, retry_backoff=0.05, author_match=True,
                                                             author_map={"mapped_user": "Bob"}))
    yield Harness(app.test_client(), api, engine)
    close_runner(app)
    services.background.close()


def new_private() -> tuple[dict, dict]:
    u = user(next(_chat_ids), "Dana", username=None)
    return u, private_chat(u)


def new_group(forum: bool = False) -> dict:
    return group_chat(-1000000000000 - next(_chat_ids), forum=forum)


# --- private chats ---------------------------------------------------------------------------------------
def test_private_message_gets_a_reply_in_the_default_persona_with_typing(tg):
    u, chat = new_private()
    tg.post(message=message(chat, u, "hello there"))
    [sent] = tg.replies(chat["id"])
    assert sent["text"].strip() and len(sent["text"]) <= 20
    assert "reply_parameters" not in sent.params  # private chats are not quoted
    typing = tg.api.calls_to("sendChatAction", lambda c: int(c["chat_id"]) == chat["id"])
    assert typing and typing[0]["action"] == "typing" and typing[0].at <= sent.at
    transcript = tg.transcript(f"telegram:{chat['id']}")
    assert [m["text"] for m in transcript] == ["hello there", sent["text"]]
    assert transcript[1]["author"] == "Alice"  # the default persona: the first of the model


def test_start_and_help_with_and_without_the_bots_name(tg):
    u, chat = new_private()
    tg.post(message=message(chat, u, "/start"))
    tg.post(message=message(chat, u, f"/help@{BOT_USERNAME}"))
    first, second = tg.replies(chat["id"], 2)
    texts = sorted([first["text"], second["text"]], key=len)
    assert "speaking as Alice" in texts[1] and "/persona" in texts[0]


def test_a_command_for_another_bot_is_ignored_and_an_unknown_one_explained(tg):
    u, chat = new_private()
    tg.post(message=message(chat, u, "/help@some_other_bot"))
    tg.post(message=message(chat, u, "/frobnicate"))
    [sent] = tg.replies(chat["id"])
    assert "I don't know /frobnicate" in sent["text"]
    tg.post(message=message(chat, u, "/personas"))
    assert len(tg.replies(chat["id"], 2)) == 2  # the other bot's /help never got an answer
    assert not any("/persona —" in c["text"] for c in tg.api.sent(chat["id"]))


def test_persona_by_name_by_keyboard_and_an_unknown_one(tg):
    u, chat = new_private()
    key = f"telegram:{chat['id']}"
    tg.post(message=message(chat, u, "/persona bob"))
    assert tg.replies(chat["id"])[0]["text"] == "Now speaking as Bob."
    assert tg.record(key).persona == "Bob"

    tg.post(message=message(chat, u, "/persona"))
    keyboard = tg.replies(chat["id"], 2)[1]
    buttons = [b for row in keyboard["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["callback_data"] for b in buttons] == ["persona:Alice", "persona:Bob"]
    assert "• Bob" in [b["text"] for b in buttons]

    shown = message(chat, {"id": BOT_ID, "is_bot": True, "first_name": "T", "username": BOT_USERNAME}, "Who?")
    tg.post(callback_query=callback_query(u, shown, "persona:Alice"))
    [answered] = tg.api.wait_for("answerCallbackQuery", 1, lambda c: "Alice" in c.get("text", ""))
    [edited] = tg.api.wait_for("editMessageText", 1, lambda c: int(c["chat_id"]) == chat["id"])
    assert edited["text"] == "Now speaking as Alice." and int(edited["message_id"]) == shown["message_id"]
    assert tg.record(key).persona == "Alice"

    tg.post(message=message(chat, u, "/persona Zed"))
    refusal = tg.replies(chat["id"], 3)[2]["text"]
    assert "Zed" in refusal and "Alice, Bob" in refusal


def test_temperature_reset_and_forget(tg):
    u, chat = new_private()
    key = f"telegram:{chat['id']}"
    tg.post(message=message(chat, u, "/temperature 0.5"))
    assert tg.replies(chat["id"])[0]["text"] == "Temperature set to 0.5."
    assert tg.record(key).settings["temperature"] == 0.5
    tg.post(message=message(chat, u, "/temperature"))
    assert tg.replies(chat["id"], 2)[1]["text"].startswith("Temperature is 0.5")
    tg.post(message=message(chat, u, "/temperature hot"))
    assert "must be a number" in tg.replies(chat["id"], 3)[2]["text"]
    tg.post(message=message(chat, u, "/temperature 9"))
    assert "between 0 and 5" in tg.replies(chat["id"], 4)[3]["text"]

    tg.post(message=message(chat, u, "hi"))
    tg.replies(chat["id"], 5)
    tg.post(message=message(chat, u, "/reset"))
    assert tg.replies(chat["id"], 6)[5]["text"].startswith("Starting over")
    assert tg.transcript(key) == [] and tg.record(key).settings["temperature"] == 0.5
    tg.post(message=message(chat, u, "/forget"))
    assert tg.replies(chat["id"], 7)[6]["text"].startswith("Done")
    assert tg.record(key) is None


def test_sticker_is_answered_by_its_emoji_and_a_photo_without_caption_politely(tg):
    u, chat = new_private()
    sticker = {"file_id": "CAACAgIAAx", "file_unique_id": "AgAD", "type": "regular", "width": 512, "height": 512,
               "is_animated": False, "is_video": False, "emoji": "😂"}
    tg.post(message=message(chat, u, sticker=sticker))
    tg.replies(chat["id"])
    assert tg.transcript(f"telegram:{chat['id']}")[0]["text"] == "😂"
    photo = [{"file_id": "AgACAgQ", "file_unique_id": "AQAD", "width": 90, "height": 67, "file_size": 1200}]
    tg.post(message=message(chat, u, photo=photo))
    assert tg.replies(chat["id"], 2)[1]["text"] == NOT_TEXT


def test_edits_and_channel_posts_are_ignored(tg):
    u, chat = new_private()
    tg.post(message=message(chat, u, "first"))
    tg.replies(chat["id"])
    tg.post(edited_message=message(chat, u, "first, edited", edit_date=1700000000))
    channel = {"id": -1009998887776, "type": "channel", "title": "News"}
    tg.post(channel_post=message(channel, None, "@talklike_test_bot news", sender_chat=channel,
                                 entities=mention("@talklike_test_bot news", BOT_USERNAME)))
    tg.post(message=message(chat, u, "second"))
    tg.replies(chat["id"], 2)
    assert [m["text"] for m in tg.transcript(f"telegram:{chat['id']}")][::2] == ["first", "second"]
    assert tg.api.sent(channel["id"]) == []


# --- groups ----------------------------------------------------------------------------------------------
def test_group_messages_are_read_along_with_known_authors_and_not_answered(tg):
    group = new_group()
    key = f"telegram:{group['id']}"
    alice = user(501, "Alice", username="al_ice")
    stranger = user(502, "Quentin", username="q")
    mapped = user(503, "Whoever", username="Mapped_User")
    tg.post(message=message(group, alice, "morning all"))
    tg.post(message=message(group, stranger, "hey"))
    tg.post(message=message(group, mapped, "sup"))
    photo = [{"file_id": "AgACAgQ", "file_unique_id": "AQAD", "width": 90, "height": 67}]
    tg.post(message=message(group, stranger, photo=photo))  # no caption: nothing to read
    tg.post(message=message(group, alice, photo=photo, caption="look at this"))
    transcript = wait_until(lambda: len(tg.transcript(key)) == 4 and tg.transcript(key), what="4 observed")
    assert [(m["author"], m["text"]) for m in transcript] == [("Alice", "morning all"), ("⟨other⟩", "hey"),
                                                              ("Bob", "sup"), ("Alice", "look at this")]
    assert tg.api.sent(group["id"]) == []


def test_group_mention_text_mention_and_reply_to_the_bot_are_answered_quoted(tg):
    group = new_group()
    key = f"telegram:{group['id']}"
    dana = user(601, "Dana")
    text = f"@{BOT_USERNAME} what do you think"
    asked = tg.post(message=message(group, dana, text, entities=mention(text, BOT_USERNAME)))["message"]
    [first] = tg.replies(group["id"])
    assert first["reply_parameters"]["message_id"] == asked["message_id"]
    assert tg.transcript(key)[0]["text"] == "what do you think"  # the @mention is not part of the message

    bot_said = message(group, {"id": BOT_ID, "is_bot": True, "first_name": "T", "username": BOT_USERNAME},
                       first["text"])
    tg.post(message=message(group, dana, "really?", reply_to=bot_said))
    tg.replies(group["id"], 2)
    named = "hey Talklike you there"
    tg.post(message=message(group, dana, named, entities=[{"type": "text_mention", "offset": 4, "length": 8,
                                                           "user": {"id": BOT_ID, "is_bot": True,
                                                                    "first_name": "Talklike"}}]))
    tg.replies(group["id"], 3)
    other_bot = message(group, {"id": 99, "is_bot": True, "first_name": "Other"}, "beep")
    tg.post(message=message(group, dana, "not you", reply_to=other_bot))
    wait_until(lambda: any(m["text"] == "not you" for m in tg.transcript(key)), what="observed")
    assert len(tg.api.sent(group["id"])) == 3


def test_group_commands_say_and_another_bots_command(tg):
    group = new_group()
    dana = user(701, "Dana")
    tg.post(message=message(group, dana, "/say@some_other_bot"))
    tg.post(message=message(group, dana, f"/say@{BOT_USERNAME}"))
    [said] = tg.replies(group["id"])
    assert "reply_parameters" not in said.params
    tg.post(message=message(group, dana, "/say"))
    tg.replies(group["id"], 2)
    transcript = tg.transcript(f"telegram:{group['id']}")
    assert [m["author"] for m in transcript] == ["Alice", "Alice"]
    assert len(tg.api.sent(group["id"])) == 2


def test_forum_topic_is_its_own_conversation_answered_in_its_thread(tg):
    group = new_group(forum=True)
    dana = user(801, "Dana")
    text = f"@{BOT_USERNAME} hi topic"
    topic_start = {"message_id": 77, "date": 1, "chat": group, "from": dana,
                   "forum_topic_created": {"name": "Plans", "icon_color": 7322096}}
    tg.post(message=message(group, dana, text, entities=mention(text, BOT_USERNAME), thread_id=77,
                            reply_to=topic_start))
    [sent] = tg.replies(group["id"])
    assert int(sent["message_thread_id"]) == 77
    assert tg.transcript(f"telegram:{group['id']}:77")[0]["text"] == "hi topic"
    assert tg.transcript(f"telegram:{group['id']}") == []
    typing = tg.api.calls_to("sendChatAction", lambda c: int(c["chat_id"]) == group["id"])
    assert int(typing[0]["message_thread_id"]) == 77
    # a plain message in the topic (it "replies" to the topic's first message, not to the bot): read along
    topic_by_bot = {**topic_start, "from": {"id": BOT_ID, "is_bot": True, "first_name": "T"}}
    tg.post(message=message(group, dana, "later", thread_id=77, reply_to=topic_by_bot))
    wait_until(lambda: len(tg.transcript(f"telegram:{group['id']}:77")) == 3, what="observed in topic")
    assert len(tg.api.sent(group["id"])) == 1


def test_added_to_a_group_greets_once_and_removed_forgets(tg):
    group = new_group()
    key = f"telegram:{group['id']}"
    dana = user(901, "Dana")
    tg.post(my_chat_member=member_change(group, dana, "left", "member"))
    [greeting] = tg.replies(group["id"])
    assert "speaking as Alice" in greeting["text"]
    tg.post(my_chat_member=member_change(group, dana, "member", "administrator"))  # promoted: no second hello
    tg.post(message=message(group, dana, "hello bot"))
    wait_until(lambda: tg.record(key) is not None, what="observed")
    tg.post(my_chat_member=member_change(group, dana, "administrator", "kicked"))
    wait_until(lambda: tg.record(key) is None, what="forgotten")
    assert len(tg.api.sent(group["id"])) == 1


def test_a_group_that_becomes_a_supergroup_keeps_its_conversation(tg):
    old = {"id": -4000 - next(_chat_ids), "type": "group", "title": "Small"}
    new_id = -1000000000000 - next(_chat_ids)
    dana = user(951, "Dana")
    tg.post(message=message(old, dana, "remember this"))
    wait_until(lambda: tg.record(f"telegram:{old['id']}") is not None, what="observed")
    tg.post(message=message(old, dana, migrate_to_chat_id=new_id))
    tg.post(message=message({"id": new_id, "type": "supergroup", "title": "Small"}, dana,
                            migrate_from_chat_id=old["id"]))
    moved = wait_until(lambda: tg.transcript(f"telegram:{new_id}"), what="moved")
    assert moved[0]["text"] == "remember this"
    wait_until(lambda: tg.record(f"telegram:{old['id']}") is None, what="the old group forgotten")  # copy, then delete


# --- Bot API errors --------------------------------------------------------------------------------------
def test_flood_wait_is_slept_off_and_the_reply_delivered(tg):
    u, chat = new_private()
    tg.api.flood("sendMessage", retry_after=1)
    tg.post(message=message(chat, u, "hello"))
    [delivered] = tg.replies(chat["id"], timeout=20)
    tries = tg.api.calls_to("sendMessage", lambda c: int(c["chat_id"]) == chat["id"])
    assert len(tries) == 2 and tries[0].get("ok") is False
    assert delivered.at - tries[0].at >= 0.95


def test_server_errors_are_retried(tg):
    u, chat = new_private()
    tg.api.fail("sendMessage", 502, times=2)
    tg.post(message=message(chat, u, "hello"))
    tg.replies(chat["id"])
    assert len(tg.api.calls_to("sendMessage", lambda c: int(c["chat_id"]) == chat["id"])) == 3


def test_a_failing_update_is_logged_without_its_text_and_the_bot_keeps_going(tg, caplog):
    u, chat = new_private()
    tg.api.fail("sendMessage", 500, times=4)  # more than the retries: the handler fails
    with caplog.at_level(logging.INFO):
        tg.post(message=message(chat, u, "a secret sentence"))
        [apology] = tg.replies(chat["id"])
    assert apology["text"] == APOLOGY
    failed = [r for r in caplog.records if r.getMessage() == "a Telegram update failed"]
    assert failed and failed[0].chat == user_tag(chat["id"])  # the chat, without its id (a private chat is a person)
    assert not any("a secret sentence" in r.getMessage() + str(vars(r)) for r in caplog.records)
    tg.post(message=message(chat, u, "still there?"))
    assert tg.replies(chat["id"], 2)[1]["text"] != APOLOGY


def test_bad_request_from_the_api_does_not_kill_the_application(tg):
    group = new_group()
    dana = user(1001, "Dana")
    tg.api.fail("sendMessage", 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    tg.post(message=message(group, dana, "/say"))
    tg.api.wait_for("sendMessage", 1, lambda c: int(c["chat_id"]) == group["id"])
    tg.post(message=message(group, dana, "/say"))
    tg.replies(group["id"])


# --- pacing, chiming in, settings ------------------------------------------------------------------------
def test_messages_to_one_chat_are_paced(engine, api):
    app, services = make_harness(engine, api, TelegramConfig(chat_interval=0.4))
    try:
        h = Harness(app.test_client(), api, engine)
        u, chat = new_private()
        for name in ("/help", "/personas", "/start"):
            h.post(message=message(chat, u, name))
        sent = h.replies(chat["id"], 3)
        gaps = [b.at - a.at for a, b in zip(sent, sent[1:], strict=False)]
        assert min(gaps) >= 0.3  # 0.4 s apart when sent; loopback jitter on a busy machine aside
    finally:
        close_runner(app)


def test_chiming_in_when_the_persona_is_likely_next_and_not_too_often(engine, api):
    app, services = make_harness(engine, api, TelegramConfig(chat_interval=0, chime_in=1e-9, chime_gap=3600))
    try:
        h = Harness(app.test_client(), api, engine)
        group = new_group()
        dana = user(1101, "Dana")
        h.post(message=message(group, dana, "anyone around"))
        [unasked] = h.replies(group["id"])
        assert "reply_parameters" not in unasked.params
        h.post(message=message(group, dana, "ok then"))
        key = f"telegram:{group['id']}"
        wait_until(lambda: any(m["text"] == "ok then" for m in h.transcript(key)), what="observed")
        assert len(api.sent(group["id"])) == 1
    finally:
        close_runner(app)


def test_author_map_and_unknown_telegram_settings():
    assert parse_author_map("alice_tg=Alice, @Bob_T=Bob ,123=Alice") == {"alice_tg": "Alice", "bob_t": "Bob",
                                                                          "123": "Alice"}
    assert TelegramConfig.from_env({"TELEGRAM_CHIME_IN": "0.5", "TELEGRAM_TOKEN": "x"}).chime_in == 0.5
    with pytest.raises(ConfigError, match="USERNAME_OR_ID=Author"):
        parse_author_map("alice_tg")
    with pytest.raises(ConfigError, match="TELEGRAM_CHIM_IN"):
        TelegramConfig.from_env({"TELEGRAM_CHIM_IN": "0.5"})
    with pytest.raises(ConfigError, match="TELEGRAM_CHIME_IN"):
        TelegramConfig.from_env({"TELEGRAM_CHIME_IN": "2"})


def test_author_map_naming_a_stranger_fails_at_start_up(engine, api):
    with pytest.raises(ConfigError, match="Carol"):
        make_harness(engine, api, TelegramConfig(author_map={"someone": "Carol"}))


def test_long_text_is_split_within_telegrams_limit_counting_utf16():
    from bot.adapters.telegram.incoming import split_text

    words = ("word " * 2000).strip()  # 9999 characters
    pieces = split_text(words)
    assert len(pieces) == 3 and all(len(p) <= 4096 for p in pieces)
    assert " ".join(pieces) == words and not any(p.startswith(" ") or p.endswith(" ") for p in pieces)
    emoji = "😂" * 3000  # 6000 UTF-16 code units, no spaces
    pieces = split_text(emoji)
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in pieces) and "".join(pieces) == emoji
    assert split_text("short") == ["short"]


def test_the_sliding_window_waits_for_its_turn():
    import asyncio
    import time

    from bot.adapters.telegram.limiter import _is_group, _Window

    async def three() -> list[float]:
        window = _Window(2, 0.3)
        times = []
        for _ in range(3):
            await window.acquire()
            times.append(time.monotonic())
        return times

    times = asyncio.run(three())
    assert times[1] - times[0] < 0.1 and times[2] - times[0] >= 0.29
    assert _is_group(-1001234) and _is_group("@news") and not _is_group(42)


def test_the_runner_stops_with_the_services(engine, api):
    settings = AppConfig(telegram_token=TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=api.url,
                         disclosure=None)  # counted replies only (the disclosure has tests of its own)
    services = Services.build(settings, engine)
    app = Flask(__name__)
    app.register_blueprint(make_blueprint(services, TelegramConfig(chat_interval=0)))
    h = Harness(app.test_client(), api, engine)
    u, chat = new_private()
    h.post(message=message(chat, u, "hi"))
    h.replies(chat["id"])
    from bot.adapters.telegram.webhook import runner_of

    thread = runner_of(app)._thread
    [close] = services.closers  # what Services.close() runs before it stops the engine
    close()
    assert not thread.is_alive() and runner_of(app).application is None
    services.background.close()
