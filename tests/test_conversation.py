"""The conversation layer on its own: personas by name (also by the thousand), the commands of each surface,
and what a person is told for every failure."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from bot.conversation import Conversations, problem_of
from bot.conversation.commands import MESSENGER, TELEGRAM, TERMINAL, available, help_text, menu
from bot.conversation.persona_names import PersonaNames
from bot.conversation.problems import APOLOGY, STORE_DOWN
from bot.engine.engine import Engine, EngineConfig
from bot.engine.errors import EmptyMessage, EngineBusy, EngineStopped, EngineTimeout, UnknownPersona
from bot.engine.settings import SamplingSettings
from bot.infra.stores import LockTimeout, StoreError, StoreUnavailable

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=16))) as e:
        yield e


@pytest.fixture
def conversations(engine):
    return Conversations(engine)


def test_switching_by_exact_name_any_case_or_a_unique_part(conversations):
    assert conversations.switch("c:1", "bob").text == "Now speaking as Bob."
    assert conversations.persona_of("c:1") == "Bob"
    assert conversations.switch("c:1", "lic").text == "Now speaking as Alice."  # the only name with "lic"
    refused = conversations.switch("c:1", "Zed")
    assert refused.problem.kind == "invalid" and "I can't be Zed" in refused.text and refused.choices
    assert conversations.persona_of("c:1") == "Alice"  # a refused switch changes nothing


def test_a_persona_off_the_allowlist_reads_like_one_the_model_never_had(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(personas=["Alice"])) as e:
        layer = Conversations(e)
        hidden, unknown = layer.switch("c:2", "Bob"), layer.switch("c:2", "Zed")
        assert hidden.text.replace("Bob", "X") == unknown.text.replace("Zed", "X")
        assert hidden.choices == unknown.choices == ["Alice"]
        assert not layer.available("Bob") and not layer.available("Zed") and layer.available("Alice")


def test_thousands_of_personas_are_listed_by_activity_and_found_by_part_of_a_name():
    names = [f"user{i:04d}" for i in range(3000)]
    card = {"authors": {n: {"messages": i} for i, n in enumerate(names)}}
    fake_engine = SimpleNamespace(personas=names, artifact=SimpleNamespace(card=card))
    personas = PersonaNames(fake_engine)
    assert personas.top() == [f"user{i:04d}" for i in range(2999, 2986, -1)]  # 13, the most active first
    listing = personas.listing()
    assert "and 2980 more" in listing and len(listing) < 400
    assert personas.find("user0042") == "user0042" and personas.find("USER0042") == "user0042"
    assert personas.find("user00") is None  # a hundred names fit: no guess
    assert personas.matching("user00")[:2] == ["user0099", "user0098"]  # offered, most active first


@pytest.mark.parametrize("surface, has, lacks", [
    (MESSENGER, {"persona", "reset", "forget", "start"}, {"say", "history", "quit"}),
    (TELEGRAM, {"persona", "temperature", "say", "start"}, {"history", "quit"}),
    (TERMINAL, {"history", "quit", "temperature"}, {"say", "start"}),
])
def test_each_surface_has_its_commands_and_its_help_lists_them(conversations, surface, has, lacks):
    names = {c.name for c in available(surface)}
    assert has <= names and not lacks & names
    text = help_text(surface)
    assert all(f"/{n}" in text for n in has - {"start"})
    assert not any(f"/{n} " in text for n in lacks)
    for name in lacks:
        said = conversations.command("c:3", f"/{name}", surface)
        assert said.problem.kind == "invalid" and said.text.startswith(f"I don't know /{name}")


def test_commands_parse_names_addressed_to_the_bot_and_aliases(conversations):
    assert conversations.command("c:4", "/Persona@talklike_bot bob", TELEGRAM).text == "Now speaking as Bob."
    assert conversations.command("c:4", "/temperature 0,4", TELEGRAM).text == "Temperature set to 0.4."
    assert conversations.command("c:4", "/temperature", TELEGRAM).text.startswith("Temperature is 0.4")
    assert conversations.command("c:4", "/exit", TERMINAL).leave
    assert [name for name, _ in menu(TELEGRAM)][:3] == ["start", "help", "persona"]


def test_reset_and_forget_say_whether_anything_was_kept(conversations):
    assert conversations.answer("c:5", "hello").by_model
    assert conversations.reset("c:5").existed and conversations.forget("c:5").existed
    assert not conversations.forget("c:5").existed and not conversations.reset("c:5").existed


@pytest.mark.parametrize("error, kind, status, retry_after", [
    (StoreUnavailable("redis://:hunter2@db.internal:6379/0 is unreachable"), "store_down", 503, 2),
    (StoreError("record unreadable"), "store_down", 503, 2),
    (LockTimeout("lock wait"), "conversation_busy", 503, 2),
    (EngineBusy("256 waiting"), "busy", 503, 2),
    (EngineTimeout("the reply took longer than 30 s"), "slow", 504, None),
    (EngineStopped("stopped"), "stopped", 503, None),
    (EmptyMessage("the message is empty"), "invalid", 400, None),
    (UnknownPersona("persona 'Zed' is not available here"), "invalid", 400, None),
    (RuntimeError("model exploded"), "bug", 500, None),
])
def test_every_failure_maps_to_one_problem(error, kind, status, retry_after):
    problem = problem_of(error)
    assert (problem.kind, problem.status, problem.retry_after) == (kind, status, retry_after)
    assert "hunter2" not in problem.text and "db.internal" not in problem.text  # store URLs never reach a person
    if kind == "store_down":
        assert problem.text == STORE_DOWN


def test_a_bug_is_logged_with_its_traceback_and_answered_with_the_apology(engine, caplog, monkeypatch):
    layer = Conversations(engine)

    def explode(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(engine, "reply", explode)
    with caplog.at_level(logging.WARNING):
        said = layer.answer("c:6", "my secret words")
    assert said.text == APOLOGY and said.problem.kind == "bug" and not said.by_model
    [record] = [r for r in caplog.records if r.getMessage() == "a conversation request failed"]
    assert record.exc_info is not None and "secret" not in caplog.text
