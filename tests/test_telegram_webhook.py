"""The Telegram webhook in the real app (create_app), under a real threaded server, and `talklike
telegram-setup`, against the loopback Bot API server of tests/fake_bot_api.py."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
import requests
from fake_bot_api import TOKEN, FakeBotAPI, message, private_chat, update, user
from werkzeug.serving import make_server

from bot.adapters.telegram.webhook import SECRET_HEADER, close_runner, runner_of
from bot.app import create_app
from bot.engine.engine import Engine, EngineConfig
from bot.engine.settings import SamplingSettings
from talklike.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECRET = "webhook-Secret_42"


@pytest.fixture(scope="module")
def engine(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=20))) as e:
        yield e


@pytest.fixture(scope="module")
def api():
    with FakeBotAPI() as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(("TALKLIKE_", "TELEGRAM_", "MESSENGER_")):
            monkeypatch.delenv(name)


@pytest.fixture
def app(engine, api, clean_env):
    app = create_app({"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_URL": api.url,
                      "TALKLIKE_CONSOLE": "0", "TALKLIKE_STORE_URL": "memory://", "TALKLIKE_DISCLOSURE": "off"},
                     engine=engine)
    yield app
    close_runner(app)


def private_update(user_id: int, text: str) -> dict:
    u = user(user_id, "Dana", username=None)
    return update(message=message(private_chat(u), u, text))


def test_a_wrong_or_missing_secret_is_refused_before_anything_runs(app):
    client = app.test_client()
    body = private_update(3001, "hi")
    assert client.post("/telegram/webhook", json=body).status_code == 403
    assert client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: SECRET + "x"}).status_code == 403
    assert client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: "wébhook"}).status_code == 403
    assert runner_of(app).application is None  # nothing reached the bot


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b'{"message": {"text": "no update id"}}',
                                  b'{"update_id": 5, "message": "not an object"}'])
def test_a_malformed_update_is_400(app, body):
    response = app.test_client().post("/telegram/webhook", data=body, content_type="application/json",
                                      headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400
    assert response.get_json()["error"] == "Bad Request"


def test_an_update_is_acknowledged_then_answered_and_a_redelivery_dropped(app, api):
    client = app.test_client()
    body = private_update(3002, "hello")
    first = client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: SECRET})
    assert first.status_code == 200 and first.get_json() == {"ok": True, "duplicate": False, "dropped": False}
    api.wait_for("sendMessage", 1, lambda c: int(c["chat_id"]) == 3002)
    again = client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: SECRET})
    assert again.get_json()["duplicate"] is True
    assert len(app.extensions["talklike"].engine.transcript("telegram:3002")) == 2  # read once, answered once
    assert api.calls_to("getMe")  # the Application initialized itself against the loopback API


def test_concurrent_deliveries_through_a_threaded_server_and_a_clean_stop(app, api):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}/telegram/webhook"
    chats = range(3101, 3107)
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda c: requests.post(url, json=private_update(c, "hey"), timeout=10,
                                                          headers={SECRET_HEADER: SECRET}).status_code, chats))
        assert codes == [200] * 6
        for chat in chats:
            api.wait_for("sendMessage", 1, lambda c, chat=chat: int(c["chat_id"]) == chat)
    finally:
        server.shutdown()
    loop_thread = runner_of(app)._thread
    assert loop_thread.is_alive()
    close_runner(app)
    assert not loop_thread.is_alive()
    after = app.test_client().post("/telegram/webhook", json=private_update(3199, "late"),
                                   headers={SECRET_HEADER: SECRET})
    assert after.status_code == 503  # stopped for good; Telegram will deliver it to another process


# --- talklike telegram-setup ------------------------------------------------------------------------------
def test_setup_registers_the_webhook_secret_and_commands(api, clean_env, capsys):
    url = "https://bot.example.com/telegram/webhook"
    assert main(["telegram-setup", "--url", url, "--token", TOKEN, "--api-url", api.url, "--secret", SECRET]) == 0
    [hook] = api.calls_to("setWebhook")
    assert hook["url"] == url and hook["secret_token"] == SECRET
    assert {"message", "my_chat_member", "callback_query"} <= set(hook["allowed_updates"])
    commands = api.calls_to("setMyCommands")[-1]["commands"]
    assert [c["command"] for c in commands] == ["start", "help", "persona", "personas", "reset", "forget",
                                                "temperature", "say"]
    assert url in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["--url", "http://bot.example.com/telegram/webhook", "--secret", SECRET], "https"),
    (["--url", "https://bot.example.com/telegram/webhook"], "no webhook secret"),
    (["--url", "https://bot.example.com/hook", "--secret", SECRET], "/telegram/webhook"),
    (["--url", "https://bot.example.com/telegram/webhook", "--secret", "bad secret!"], "TELEGRAM_WEBHOOK_SECRET"),
])
def test_setup_refuses_bad_arguments_in_one_line(api, clean_env, capsys, argv, expected):
    assert main(["telegram-setup", "--token", TOKEN, "--api-url", api.url, *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_setup_with_a_bad_token_says_so(api, clean_env, capsys):
    argv = ["telegram-setup", "--url", "https://bot.example.com/telegram/webhook", "--secret", SECRET,
            "--token", "111:not-the-token", "--api-url", api.url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "rejected the bot token" in err and len(err.strip().splitlines()) == 1
