"""Who may talk to the bot (allowlists, checked before anything is kept), who may change a group (its
administrators), and the disclosure that a model writes the replies — on Messenger and Telegram, through
their webhooks, against the loopback fakes of the Graph and Bot APIs."""

from __future__ import annotations

import itertools

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
from fake_graph import FakeGraph, postback_event
from flask import Flask
from test_messenger_webhook import TOKEN as PAGE_TOKEN
from test_messenger_webhook import Messenger, make_app

from bot.adapters.telegram.config import TelegramConfig
from bot.adapters.telegram.webhook import SECRET_HEADER, close_runner, make_blueprint
from bot.app import Services, services_of
from bot.conversation.access import ADMINS_ONLY
from bot.engine.engine import Engine, EngineConfig
from bot.engine.settings import SamplingSettings
from bot.infra.config import DEFAULT_DISCLOSURE, AppConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECRET = "who-may-talk_secret"
_ids = itertools.count(90_000)


# --- Messenger --------------------------------------------------------------------------------------------
@pytest.fixture
def graph():
    with FakeGraph(token=PAGE_TOKEN) as server:
        yield server


def messenger(tiny_artifact, graph, **env) -> Messenger:
    return Messenger(make_app(tiny_artifact, graph, **env), graph)


def test_messenger_answers_only_allowed_users_and_keeps_nothing_of_others(tiny_artifact, graph):
    fb = messenger(tiny_artifact, graph, MESSENGER_ALLOW_USERS="friend1, friend2")
    try:
        fb.say("stranger", "hello, who is this?", mid="m_stranger")
        fb.say("friend1", "hello!", mid="m_friend")
        fb.wait()
        assert graph.texts("stranger") == [] and len(graph.texts("friend1")) == 1
        store = fb.engine.store
        assert store.get("messenger:stranger") is None
        assert not store.seen("messenger:mid:m_stranger", ttl=1)  # not even marked as received...
        assert [item for item, _ in store.inbox_claim("x", lease=0.0)] == []  # ...nor kept
    finally:
        services_of(fb.app).close()


def test_messenger_says_once_per_conversation_that_a_model_writes(tiny_artifact, graph):
    fb = messenger(tiny_artifact, graph, TALKLIKE_DISCLOSURE="Automated: a model imitating {persona} writes here.")
    try:
        fb.send(postback_event("u1", "GET_STARTED"))
        fb.say("u1", "how are you?")
        fb.wait()
        texts = graph.texts("u1")
        assert texts[0] == "Automated: a model imitating Alice writes here." and len(texts) == 3
        assert not any("Automated" in t for t in texts[1:])
        assert all("Automated" not in m["text"] for m in fb.transcript("u1"))  # never the persona's speech
        assert fb.engine.store.get("messenger:u1").messages == 2  # the model read one message and its reply
        fb.say("u1", "/forget")
        fb.say("u1", "hello again")
        fb.wait()
        assert sum("Automated" in t for t in graph.texts("u1")) == 2  # a forgotten conversation is a new one
    finally:
        services_of(fb.app).close()


def test_the_default_disclosure_names_the_persona_and_off_is_explicit(tiny_artifact, graph):
    assert "{persona}" in DEFAULT_DISCLOSURE and "model" in DEFAULT_DISCLOSURE
    fb = messenger(tiny_artifact, graph, TALKLIKE_DISCLOSURE=DEFAULT_DISCLOSURE)
    try:
        fb.say("u2", "hi")
        fb.wait()
        assert graph.texts("u2")[0] == DEFAULT_DISCLOSURE.replace("{persona}", "Alice")
    finally:
        services_of(fb.app).close()
    assert AppConfig.from_env({}).disclosure == DEFAULT_DISCLOSURE  # on unless turned off
    assert AppConfig.from_env({"TALKLIKE_DISCLOSURE": "off"}).disclosure is None


# --- Telegram ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=16))) as e:
        yield e


@pytest.fixture(scope="module")
def api():
    with FakeBotAPI() as server:
        yield server


class Telegram:
    def __init__(self, engine, api, telegram: TelegramConfig, disclosure: str | None = None):
        settings = AppConfig(telegram_token=TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=api.url,
                             disclosure=disclosure)
        self.services = Services.build(settings, engine, telegram)
        self.app = Flask(__name__)
        self.app.register_blueprint(make_blueprint(self.services, telegram))
        self.client, self.api, self.engine = self.app.test_client(), api, engine

    def post(self, **kinds) -> dict:
        response = self.client.post("/telegram/webhook", json=update(**kinds), headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200
        return response.get_json()

    def sent(self, chat_id: int) -> list[str]:
        return [c["text"] for c in self.api.sent(chat_id)]

    def close(self) -> None:
        close_runner(self.app)
        self.services.background.close()


@pytest.fixture
def telegram(engine, api):
    made = []

    def make(disclosure=None, **config) -> Telegram:
        made.append(Telegram(engine, api, TelegramConfig(chat_interval=0, retry_backoff=0.05, **config), disclosure))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def test_telegram_drops_updates_of_chats_and_users_not_allowed_before_keeping_them(telegram, engine):
    friend, stranger = user(next(_ids), "Fran"), user(next(_ids), "Sam")
    tg = telegram(allow_users=frozenset({friend["id"]}))
    assert tg.post(message=message(private_chat(stranger), stranger, "let me in"))["dropped"] is True
    assert tg.post(message=message(private_chat(friend), friend, "hi"))["dropped"] is False
    wait_until(lambda: tg.sent(friend["id"]), what="the friend's answer")
    assert tg.sent(stranger["id"]) == [] and engine.store.get(f"telegram:{stranger['id']}") is None

    group = group_chat(-1000000000000 - next(_ids))
    only_group = telegram(allow_chats=frozenset({group["id"]}))
    assert only_group.post(message=message(private_chat(friend), friend, "hi"))["dropped"] is True
    text = f"@{BOT_USERNAME} hello"
    only_group.post(message=message(group, friend, text, entities=mention(text, BOT_USERNAME)))
    wait_until(lambda: only_group.sent(group["id"]), what="the group's answer")


def test_telegram_leaves_groups_when_they_are_not_allowed(telegram, api):
    tg = telegram(allow_groups=False)
    group, dana = group_chat(-1000000000000 - next(_ids)), user(next(_ids), "Dana")
    tg.post(my_chat_member=member_change(group, dana, "left", "member"))
    wait_until(lambda: api.calls_to("leaveChat", lambda c: int(c["chat_id"]) == group["id"]), what="leaveChat")
    assert tg.sent(group["id"]) == []  # no greeting
    assert tg.post(message=message(group, dana, "/say"))["dropped"] is True
    private = private_chat(dana)
    assert tg.post(message=message(private, dana, "hi"))["dropped"] is False  # private chats still work


def test_only_administrators_change_a_group(telegram, api, engine):
    tg = telegram()
    group = group_chat(-1000000000000 - next(_ids))
    admin, member = user(next(_ids), "Ada"), user(next(_ids), "Mo")
    api.set_admins(group["id"], [admin])
    key = f"telegram:{group['id']}"
    tg.post(message=message(group, member, "/persona Bob"))
    tg.post(message=message(group, member, "/reset"))
    tg.post(message=message(group, member, "/help"))  # reading is for everyone
    wait_until(lambda: len(tg.sent(group["id"])) == 3, what="three answers")
    answers = tg.sent(group["id"])  # updates are handled concurrently: in any order
    assert answers.count(ADMINS_ONLY) == 2 and any("/persona" in a for a in answers)
    assert engine.store.get(key) is None or engine.store.get(key).persona is None
    tg.post(message=message(group, admin, "/persona Bob"))
    wait_until(lambda: len(tg.sent(group["id"])) == 4, what="the administrator's switch")
    assert tg.sent(group["id"])[3] == "Now speaking as Bob." and engine.store.get(key).persona == "Bob"
    shown = message(group, {"id": BOT_ID, "is_bot": True, "first_name": "T", "username": BOT_USERNAME}, "Who?")
    tg.post(callback_query=callback_query(member, shown, "persona:Alice"))
    wait_until(lambda: api.calls_to("answerCallbackQuery", lambda c: c.get("text") == ADMINS_ONLY), what="refusal")
    assert engine.store.get(key).persona == "Bob"
    private = private_chat(member)
    tg.post(message=message(private, member, "/persona Bob"))  # in private, everyone runs their own chat
    wait_until(lambda: tg.sent(member["id"]) == ["Now speaking as Bob."], what="a private switch")


def test_telegram_discloses_once_in_private_and_when_it_joins_a_group(telegram, engine):
    tg = telegram(disclosure="Automated replies imitating {persona}.")
    dana = user(next(_ids), "Dana")
    private = private_chat(dana)
    tg.post(message=message(private, dana, "hello"))
    tg.post(message=message(private, dana, "and again"))
    wait_until(lambda: len(tg.sent(dana["id"])) == 3, what="disclosure and two replies")
    sent = tg.sent(dana["id"])
    assert sent[0] == "Automated replies imitating Alice." and not any("Automated" in t for t in sent[1:])
    assert all("Automated" not in m["text"] for m in engine.transcript(f"telegram:{dana['id']}"))

    group = group_chat(-1000000000000 - next(_ids))
    tg.post(my_chat_member=member_change(group, dana, "left", "member"))
    [hello] = wait_until(lambda: tg.sent(group["id"]), what="the greeting")
    assert "Automated replies imitating Alice." in hello
    text = f"@{BOT_USERNAME} hi"
    tg.post(message=message(group, dana, text, entities=mention(text, BOT_USERNAME)))
    wait_until(lambda: len(tg.sent(group["id"])) == 2, what="the reply")
    assert "Automated" not in tg.sent(group["id"])[1]


def test_group_members_are_read_as_authors_by_name_only_when_asked(telegram, engine):
    alice = user(next(_ids), "Alice", username=None)  # anyone can call themselves Alice
    for match, expected in ((False, "⟨other⟩"), (True, "Alice")):
        group = group_chat(-1000000000000 - next(_ids))
        tg = telegram(author_match=match)
        tg.post(message=message(group, alice, "morning"))
        key = f"telegram:{group['id']}"
        wait_until(lambda key=key: engine.transcript(key), what="read along")
        assert engine.transcript(key)[0]["author"] == expected
    assert TelegramConfig().author_match is False


def test_forget_in_private_also_takes_ones_words_out_of_group_transcripts(telegram, engine):
    # Transcripts are kept here (the engine keeps them for every key): /forget must reach into the groups.
    tg = telegram()
    dana, eve = user(next(_ids), "Dana"), user(next(_ids), "Eve")
    group = group_chat(-1000000000000 - next(_ids))
    group_key = f"telegram:{group['id']}"
    tg.post(message=message(group, dana, "dana's secret plan"))
    tg.post(message=message(group, eve, "eve says hi"))
    wait_until(lambda: len(engine.transcript(group_key)) == 2, what="both read along")
    private = private_chat(dana)
    tg.post(message=message(private, dana, "hello"))
    wait_until(lambda: tg.sent(dana["id"]), what="a private reply")
    tg.post(message=message(private, dana, "/forget"))
    wait_until(lambda: len(tg.sent(dana["id"])) == 2, what="the forget answer")
    assert tg.sent(dana["id"])[1].startswith("Done")
    assert engine.store.get(f"telegram:{dana['id']}") is None
    assert [m["text"] for m in engine.transcript(group_key)] == ["eve says hi"]  # only Dana's words are gone
