"""`talklike messenger-setup` against the fake Graph API on loopback."""

from __future__ import annotations

import pytest
from fake_graph import FakeGraph

from talklike.cli import main

TOKEN = "PAGE-TOKEN-90aa"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.delenv("TALKLIKE_PERSONAS", raising=False)
    with FakeGraph(token=TOKEN) as server:
        monkeypatch.setenv("MESSENGER_PAGE_TOKEN", TOKEN)
        monkeypatch.setenv("MESSENGER_GRAPH_URL", server.url)
        yield server


def test_sets_get_started_greeting_and_menu(fake, tiny_artifact, capsys):
    assert main(["messenger-setup", "--model", str(tiny_artifact), "--greeting", "Hello {{user_first_name}}!"]) == 0
    (call,) = fake.calls
    assert call.path == "/me/messenger_profile" and call.query == {"access_token": TOKEN}
    profile = call.json
    assert profile["get_started"] == {"payload": "GET_STARTED"}
    assert profile["greeting"] == [{"locale": "default", "text": "Hello {{user_first_name}}!"}]
    menu = profile["persistent_menu"][0]["call_to_actions"]
    assert [m["payload"] for m in menu] == ["PERSONAS", "RESET", "HELP", "PERSONA:Alice", "PERSONA:Bob"]
    assert all(m["type"] == "postback" and len(m["title"]) <= 30 for m in menu)
    out = capsys.readouterr().out
    assert "Messenger profile set" in out and TOKEN not in out


def test_flags_override_the_environment(fake, monkeypatch, capsys):
    monkeypatch.setenv("MESSENGER_PAGE_TOKEN", "stale-token")
    monkeypatch.setenv("MESSENGER_GRAPH_URL", "http://127.0.0.1:9/nowhere")
    assert main(["messenger-setup", "--page-token", TOKEN, "--graph-url", fake.url]) == 0
    menu = fake.calls[0].json["persistent_menu"][0]["call_to_actions"]
    assert [m["payload"] for m in menu] == ["PERSONAS", "RESET", "HELP"]  # no --model: no personas


def test_allowlist_limits_the_menu(fake, tiny_artifact, monkeypatch):
    monkeypatch.setenv("TALKLIKE_PERSONAS", "Bob")
    assert main(["messenger-setup", "--model", str(tiny_artifact)]) == 0
    menu = fake.calls[0].json["persistent_menu"][0]["call_to_actions"]
    assert [m["payload"] for m in menu][3:] == ["PERSONA:Bob"]


def test_http_failure_is_one_clear_line(fake, capsys):
    fake.fail(times=5, status=400, error={"message": "(#100) Invalid parameter", "type": "OAuthException",
                                          "code": 100})
    assert main(["messenger-setup"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("talklike messenger-setup: error: could not set the Messenger profile")
    assert "HTTP 400" in err and "100" in err and TOKEN not in err
    assert len(fake.calls) == 1  # a permanent error is not retried


def test_wrong_token_is_reported(fake, capsys):
    assert main(["messenger-setup", "--page-token", "not-the-token"]) == 2
    err = capsys.readouterr().err
    assert "190" in err and "not-the-token" not in err


@pytest.mark.parametrize("argv, message", [
    (["--greeting", "x" * 161], "--greeting must be 1-160 characters"),
    (["--graph-url", "ftp://x"], "--graph-url must be an http(s) URL"),
])
def test_bad_flags(fake, capsys, argv, message):
    assert main(["messenger-setup", *argv]) == 2
    assert message in capsys.readouterr().err
    assert fake.calls == []


def test_missing_token(fake, monkeypatch, capsys):
    monkeypatch.delenv("MESSENGER_PAGE_TOKEN")
    assert main(["messenger-setup"]) == 2
    assert "MESSENGER_PAGE_TOKEN" in capsys.readouterr().err
    assert fake.calls == []


def test_dry_run_prints_without_calling(fake, capsys):
    assert main(["messenger-setup", "--dry-run"]) == 0
    assert '"GET_STARTED"' in capsys.readouterr().out
    assert fake.calls == []


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["messenger-setup", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for needle in ("MESSENGER_PAGE_TOKEN", "MESSENGER_GRAPH_URL", "--page-token", "--graph-url", "--greeting",
                   "--model", "GET_STARTED", "persistent menu"):
        assert needle in out, needle
