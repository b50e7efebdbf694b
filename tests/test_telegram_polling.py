"""`talklike telegram`: the real command in a child process, polling the loopback Bot API server
(getUpdates) until Ctrl-C (SIGINT); and its one-line errors, in process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fake_bot_api import (
    BOT_USERNAME,
    TOKEN,
    FakeBotAPI,
    group_chat,
    mention,
    message,
    private_chat,
    update,
    user,
)

from talklike.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent


def _clean(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.startswith(("TALKLIKE_", "TELEGRAM_", "MESSENGER_"))}


@pytest.fixture
def clean_env(monkeypatch):
    for name in set(os.environ) - set(_clean(dict(os.environ))):
        monkeypatch.delenv(name)


def test_polling_deletes_the_webhook_sets_commands_and_answers_until_interrupted(tiny_artifact):
    with FakeBotAPI() as api:
        env = {**_clean(dict(os.environ)), "TALKLIKE_TORCH_THREADS": "1", "TALKLIKE_DISCLOSURE": "off"}
        child = subprocess.Popen(
            [sys.executable, "-m", "talklike", "telegram", str(tiny_artifact), "--token", TOKEN,
             "--api-url", api.url, "--store", "memory://", "--persona", "Bob"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            api.wait_for("getUpdates", 1, timeout=40)
            dana = user(4001, "Dana", username=None)
            group = group_chat(-1004001)
            text = f"@{BOT_USERNAME} you there"
            api.push_update(update(message=message(private_chat(dana), dana, "hello")))
            api.push_update(update(message=message(group, dana, text, entities=mention(text, BOT_USERNAME))))
            api.push_update(update(message=message(group, dana, "just chatting")))  # read along, not answered
            [private] = api.wait_for("sendMessage", 1, lambda c: int(c["chat_id"]) == 4001)
            [in_group] = api.wait_for("sendMessage", 1, lambda c: int(c["chat_id"]) == -1004001)
        finally:
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
        methods = [c.method for c in api.calls]
    assert child.returncode == 0, err
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert "setMyCommands" in methods
    assert private["text"].strip() and "reply_parameters" in in_group.params
    assert len([c for c in api.calls_to("sendMessage") if int(c["chat_id"]) == -1004001]) == 1
    assert f"@{BOT_USERNAME} is speaking as Bob" in out and "stopped" in out


def test_a_bad_token_is_one_clear_line(tiny_artifact, clean_env, capsys):
    with FakeBotAPI() as api:
        rc = main(["telegram", str(tiny_artifact), "--token", "111:wrong", "--api-url", api.url,
                   "--store", "memory://"])
        assert [c.method for c in api.calls] == ["getMe"]
    err = capsys.readouterr().err
    assert rc == 2
    said = [line for line in err.strip().splitlines() if not line.startswith('{"ts"')]  # log lines aside
    assert "rejected the bot token" in err and len(said) == 1
    assert "111:wrong" not in err  # the token stays off the screen


def test_no_token_and_an_unknown_persona(tiny_artifact, clean_env, capsys):
    assert main(["telegram", str(tiny_artifact), "--store", "memory://"]) == 2
    assert "no bot token" in capsys.readouterr().err
    assert main(["telegram", str(tiny_artifact), "--token", TOKEN, "--store", "memory://", "--persona", "Zed"]) == 2
    assert "Zed" in capsys.readouterr().err
