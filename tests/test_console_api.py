"""The console's JSON API through Flask's test client, on the real app and a real (tiny) engine."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bot.app import create_app, services_of
from bot.engine.engine import Engine, EngineConfig
from bot.engine.errors import EngineBusy, EngineTimeout
from bot.engine.settings import SamplingSettings
from bot.infra.stores.base import LockTimeout, StoreUnavailable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STATIC = Path(__file__).resolve().parent.parent / "bot" / "adapters" / "console" / "static"


@pytest.fixture(scope="module")
def engine(tiny_artifact, one_torch_thread):
    """One engine for the module; short replies keep the random-weight model fast."""
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=24))) as e:
        yield e


def make_app(config, engine=None):
    app = create_app(config, engine=engine, local=True)  # the console as `talklike serve` gives it
    app.testing = True
    return app


@pytest.fixture(scope="module")
def app(engine):
    app = make_app({"TALKLIKE_STORE_URL": "memory://"}, engine=engine)
    yield app
    services_of(app).background.close()  # the engine is the module's, closed by its fixture


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, path, body):
    return client.post(path, json=body)


class FailingEngine:
    """The real engine, except that generating raises `error` (a busy or slow engine on demand)."""

    def __init__(self, engine, error: Exception):
        self._engine = engine
        self._error = error

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def reply(self, *args, **kwargs):
        raise self._error

    def speak(self, *args, **kwargs):
        raise self._error


# --- the page ---------------------------------------------------------------------------------------
def test_page_and_its_files_are_served_with_no_platform_configured(app, client):
    config = services_of(app).config
    assert not config.messenger_enabled and not config.telegram_enabled
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'src="console/static/console.js"' in html and 'href="console/static/console.css"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from a CDN: works offline
    for name, mimetype in [("console.js", "text/javascript"), ("console.css", "text/css")]:
        response = client.get(f"/console/static/{name}")
        assert response.status_code == 200 and response.mimetype == mimetype
        assert response.get_data() == (STATIC / name).read_bytes()


def test_page_script_never_writes_html():
    script = (STATIC / "console.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script


def test_console_can_be_turned_off(engine):
    app = make_app({"TALKLIKE_STORE_URL": "memory://", "TALKLIKE_CONSOLE": "0"}, engine=engine)
    try:
        client = app.test_client()
        assert client.get("/").status_code == 404
        response = client.get("/api/personas")
        assert response.status_code == 404 and response.is_json
        assert client.get("/healthz").status_code == 200
    finally:
        services_of(app).background.close()


# --- personas, chat, reset ----------------------------------------------------------------------------
def test_personas_with_message_counts_from_the_card(client):
    response = client.get("/api/personas")
    assert response.status_code == 200
    data = response.get_json()
    assert data["personas"] == [{"name": "Alice", "messages": 3, "chars": 57},
                                {"name": "Bob", "messages": 3, "chars": 246}]
    assert data["default"] == "Alice"
    assert data["limits"]["max_turns"] == 20
    assert data["settings"] == {"temperature": 0.8, "max_chars": 24}
    assert isinstance(data["model"], dict)


def test_chat_replies_in_the_chosen_persona_and_remembers(client, engine):
    response = post(client, "/api/chat", {"conversation": "tab-1", "persona": "Bob", "message": "hello bob"})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["persona"] == "Bob" and data["conversation"] == "tab-1"
    assert isinstance(data["reply"], str) and data["reply"].strip()
    history = engine.transcript("console:tab-1")
    assert [(m["author"], m["text"]) for m in history] == [("⟨other⟩", "hello bob"), ("Bob", data["reply"])]

    again = post(client, "/api/chat", {"conversation": "tab-1", "persona": "Alice", "message": "and you?"})
    assert again.status_code == 200 and again.get_json()["persona"] == "Alice"
    restored = client.get("/api/transcript?conversation=tab-1").get_json()
    assert restored["persona"] == "Alice"
    assert [(m["author"], m["mine"]) for m in restored["messages"]] == [
        ("⟨other⟩", True), ("Bob", False), ("⟨other⟩", True), ("Alice", False)]


def test_chat_without_persona_uses_the_default(client):
    response = post(client, "/api/chat", {"conversation": "tab-default", "message": "hi"})
    assert response.status_code == 200 and response.get_json()["persona"] == "Alice"


def test_temperature_is_kept_for_the_conversation(client, engine):
    response = post(client, "/api/chat", {"conversation": "tab-t", "persona": "Alice", "message": "hi",
                                          "temperature": 0.3})
    assert response.status_code == 200
    assert engine.store.get("console:tab-t").settings["temperature"] == 0.3
    assert client.get("/api/transcript?conversation=tab-t").get_json()["temperature"] == 0.3
    too_hot = post(client, "/api/chat", {"conversation": "tab-t", "persona": "Alice", "message": "hi",
                                         "temperature": 7})
    assert too_hot.status_code == 400
    assert too_hot.get_json()["field"] == "temperature"
    assert "temperature must be between 0 and 5" in too_hot.get_json()["message"]
    assert engine.store.get("console:tab-t").settings["temperature"] == 0.3


def test_reset_clears_the_transcript(client, engine):
    assert post(client, "/api/chat", {"conversation": "tab-r", "persona": "Bob", "message": "hey"}).status_code == 200
    assert len(engine.transcript("console:tab-r")) == 2
    response = post(client, "/api/reset", {"conversation": "tab-r"})
    assert response.status_code == 200 and response.get_json() == {"conversation": "tab-r", "reset": True}
    assert engine.transcript("console:tab-r") == []
    assert client.get("/api/transcript?conversation=tab-r").get_json()["messages"] == []
    assert post(client, "/api/reset", {"conversation": "never-used"}).get_json()["reset"] is False


def test_forget_deletes_everything_kept_about_the_conversation(client, engine):
    assert post(client, "/api/chat", {"conversation": "tab-f", "persona": "Bob", "message": "my secret",
                                      "temperature": 0.4}).status_code == 200
    response = post(client, "/api/forget", {"conversation": "tab-f"})
    assert response.status_code == 200 and response.get_json() == {"conversation": "tab-f", "forgotten": True}
    assert engine.store.get("console:tab-f") is None  # memory, transcript, persona and temperature alike
    restored = client.get("/api/transcript?conversation=tab-f").get_json()
    assert restored == {"conversation": "tab-f", "persona": None, "temperature": None, "messages": []}
    assert post(client, "/api/forget", {"conversation": "tab-f"}).get_json()["forgotten"] is False


# --- simulate --------------------------------------------------------------------------------------------
def test_simulate_speaks_only_as_the_chosen_personas(client, engine):
    response = post(client, "/api/simulate", {"conversation": "sim-1", "personas": ["Alice", "Bob"], "turns": 4})
    assert response.status_code == 200
    messages = response.get_json()["messages"]
    assert len(messages) == 4
    assert {m["author"] for m in messages} <= {"Alice", "Bob"}
    assert all(isinstance(m["text"], str) and m["text"] for m in messages)
    assert [m["author"] for m in engine.transcript("console:sim-1")] == [m["author"] for m in messages]

    solo = post(client, "/api/simulate", {"conversation": "sim-2", "personas": ["Bob"], "turns": 3})
    assert [m["author"] for m in solo.get_json()["messages"]] == ["Bob"] * 3


def test_simulate_one_turn_by_default_and_a_seed_repeats(client):
    body = {"personas": ["Alice", "Bob"], "turns": 3, "seed": 7, "temperature": 1.0}
    first = post(client, "/api/simulate", {"conversation": "sim-seed-a", **body}).get_json()["messages"]
    second = post(client, "/api/simulate", {"conversation": "sim-seed-b", **body}).get_json()["messages"]
    assert first == second
    one = post(client, "/api/simulate", {"conversation": "sim-one", "personas": ["Alice"]})
    assert len(one.get_json()["messages"]) == 1


# --- consent: the allowlist -----------------------------------------------------------------------------
def test_allowlist_refuses_other_personas(tiny_artifact):
    app = make_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_PERSONAS": "Alice",
                    "TALKLIKE_STORE_URL": "memory://"})
    try:
        client = app.test_client()
        assert [p["name"] for p in client.get("/api/personas").get_json()["personas"]] == ["Alice"]
        refused = post(client, "/api/chat", {"conversation": "c", "persona": "Bob", "message": "hi"})
        assert refused.status_code == 400
        assert refused.get_json()["field"] == "persona"
        assert "'Bob' is not available here; choose from: Alice" in refused.get_json()["message"]
        group = post(client, "/api/simulate", {"conversation": "s", "personas": ["Alice", "Bob"]})
        assert group.status_code == 400 and group.get_json()["field"] == "personas"
        assert services_of(app).engine.transcript("console:s") == []
    finally:
        services_of(app).close()


# --- mistakes at the edge --------------------------------------------------------------------------------
CHAT = {"conversation": "ok", "persona": "Alice", "message": "hi"}
SIM = {"conversation": "ok", "personas": ["Alice"], "turns": 2}


@pytest.mark.parametrize("path, body, field, words", [
    ("/api/chat", {**CHAT, "conversation": None}, "conversation", "conversation is required"),
    ("/api/chat", {**CHAT, "conversation": "../etc"}, "conversation", "A-Z, a-z, 0-9"),
    ("/api/chat", {**CHAT, "conversation": "x" * 65}, "conversation", "1-64 characters"),
    ("/api/chat", {**CHAT, "conversation": 12}, "conversation", "conversation must be"),
    ("/api/chat", {**CHAT, "message": None}, "message", "message is required"),
    ("/api/chat", {**CHAT, "message": 5}, "message", "message must be a string, got a number"),
    ("/api/chat", {**CHAT, "message": "   "}, "message", "message is empty"),
    ("/api/chat", {**CHAT, "message": "x" * 4001}, "message", "too long"),
    ("/api/chat", {**CHAT, "persona": ["Alice"]}, "persona", "persona must be a string, got a list"),
    ("/api/chat", {**CHAT, "persona": "Zed"}, "persona", "'Zed' is not available here; choose from: Alice, Bob"),
    ("/api/chat", {**CHAT, "temperature": "hot"}, "temperature", "temperature must be a number, got a string"),
    ("/api/chat", {**CHAT, "temperature": True}, "temperature", "got a boolean"),
    ("/api/chat", {**CHAT, "temperature": -1}, "temperature", "between 0 and 5"),
    ("/api/reset", {"conversation": "a b"}, "conversation", "conversation must be"),
    ("/api/simulate", {**SIM, "turns": 21}, "turns", "turns must be between 1 and 20, got 21"),
    ("/api/simulate", {**SIM, "turns": 0}, "turns", "between 1 and 20"),
    ("/api/simulate", {**SIM, "turns": "3"}, "turns", "turns must be a whole number, got a string"),
    ("/api/simulate", {**SIM, "turns": 2.5}, "turns", "whole number"),
    ("/api/simulate", {**SIM, "personas": "Alice"}, "personas", "must be a list"),
    ("/api/simulate", {**SIM, "personas": []}, "personas", "at least one persona"),
    ("/api/simulate", {**SIM, "personas": None}, "personas", "personas is required"),
    ("/api/simulate", {**SIM, "personas": ["Alice", "Zed"]}, "personas", "'Zed' is not available here"),
    ("/api/simulate", {**SIM, "seed": "x"}, "seed", "seed must be a whole number"),
    ("/api/simulate", {**SIM, "temperature": 9}, "temperature", "between 0 and 5"),
])
def test_bad_fields_are_400_naming_the_field(client, engine, path, body, field, words):
    response = post(client, path, {k: val for k, val in body.items() if val is not None})
    assert response.status_code == 400, response.get_json()
    data = response.get_json()
    assert data["error"] == "Bad Request" and data["field"] == field
    assert words in data["message"] and "\n" not in data["message"] and "Traceback" not in data["message"]
    assert engine.transcript("console:ok") == []  # nothing was generated


@pytest.mark.parametrize("path", ["/api/chat", "/api/reset", "/api/simulate"])
@pytest.mark.parametrize("data, content_type, words", [
    ("hello", "text/plain", "must be JSON"),
    ("{not json", "application/json", "not valid JSON"),
    ('["a list"]', "application/json", "must be a JSON object, got a list"),
    ("", None, "must be JSON"),
])
def test_bodies_that_are_not_json_objects_are_400(client, path, data, content_type, words):
    response = client.post(path, data=data, content_type=content_type)
    assert response.status_code == 400
    assert words in response.get_json()["message"]


def test_other_http_mistakes_answer_json(client):
    assert client.get("/api/chat").status_code == 405 and client.get("/api/chat").is_json
    assert client.get("/api/nothing-here").status_code == 404
    bad = client.get("/api/transcript?conversation=%2F")
    assert bad.status_code == 400 and bad.get_json()["field"] == "conversation"
    assert client.get("/api/transcript").status_code == 400


@pytest.mark.parametrize("error, status, retry_after, words", [
    (EngineBusy("too many requests are waiting"), 503, "2", "busy"),
    (EngineTimeout("the reply took longer than 30 s"), 504, None, "longer than 30 s"),
    (LockTimeout("lock wait"), 503, "2", "still busy with an earlier reply"),
    (StoreUnavailable("redis://127.0.0.1:1/0 is unreachable"), 503, "2", "store is unavailable"),
])
def test_a_busy_or_slow_engine_is_503_or_504(engine, error, status, retry_after, words):
    app = make_app({"TALKLIKE_STORE_URL": "memory://"}, engine=FailingEngine(engine, error))
    try:
        client = app.test_client()
        for path, body in [("/api/chat", CHAT), ("/api/simulate", SIM)]:
            response = post(client, path, body)
            assert response.status_code == status
            assert response.headers.get("Retry-After") == retry_after
            assert words in response.get_json()["message"]
    finally:
        services_of(app).background.close()


# --- logs ----------------------------------------------------------------------------------------------
def test_message_text_is_logged_only_at_debug(client, caplog):
    secret = "plugh-the-secret-word"
    caplog.set_level(logging.INFO, logger="talklike")
    assert post(client, "/api/chat", {"conversation": "log-1", "message": secret}).status_code == 200
    records = [r for r in caplog.records if r.name == "talklike.console"]
    assert records and records[-1].chars_in == len(secret)
    assert not any(secret in str(vars(r)) for r in caplog.records)

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="talklike")
    assert post(client, "/api/chat", {"conversation": "log-2", "message": secret}).status_code == 200
    assert any(getattr(r, "text", None) == secret for r in caplog.records)


def test_thousands_of_personas_are_listed_by_activity_and_searched(engine, monkeypatch):
    names = [f"nick{i:04d}" for i in range(3000)]
    monkeypatch.setattr(engine, "personas", names)
    monkeypatch.setitem(engine.artifact.card, "authors", {n: {"messages": i} for i, n in enumerate(names)})
    app = make_app({"TALKLIKE_STORE_URL": "memory://", "TALKLIKE_PERSONA": "nick0001"}, engine=engine)
    try:
        client = app.test_client()
        data = client.get("/api/personas").get_json()
        assert data["total"] == 3000 and len(data["personas"]) == 201  # the 200 most active, and the default
        assert data["personas"][0]["name"] == "nick2999" and data["personas"][-1]["name"] == "nick0001"
        found = client.get("/api/personas?q=ck012&limit=5").get_json()["personas"]
        assert [p["name"] for p in found] == ["nick0129", "nick0128", "nick0127", "nick0126", "nick0125"]
        assert client.get("/api/personas?limit=0").status_code == 400
    finally:
        services_of(app).background.close()
