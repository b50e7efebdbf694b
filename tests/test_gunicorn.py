"""Both webhooks under gunicorn as the Procfile runs it: two gthread workers, one sqlite store, real HTTP.

Messenger users and Telegram chats write concurrently; every message is answered exactly once, redeliveries
that reach the other worker included, and the workers survive it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port
from fake_bot_api import TOKEN as TELEGRAM_TOKEN
from fake_bot_api import FakeBotAPI, message, private_chat, update, user, wait_until
from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook

ROOT = Path(__file__).resolve().parent.parent
SECRET, VERIFY, PAGE, TG_SECRET = "app-secret", "verify-me", "PAGE-TOKEN", "tg-secret_1"


def _post(url: str, raw: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture
def server(tiny_artifact, tmp_path):
    with FakeGraph(token=PAGE) as graph, FakeBotAPI() as bot_api:
        port = free_port()
        env = {**os.environ, "PORT": str(port), "TALKLIKE_MODEL": str(tiny_artifact), "WEB_CONCURRENCY": "2",
               "GUNICORN_THREADS": "8", "TALKLIKE_STORE_URL": f"sqlite:///{tmp_path / 't.db'}",
               "TALKLIKE_TORCH_THREADS": "1", "TALKLIKE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
               "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": SECRET, "MESSENGER_PAGE_TOKEN": PAGE,
               "MESSENGER_GRAPH_URL": graph.url, "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
               "TELEGRAM_WEBHOOK_SECRET": TG_SECRET, "TELEGRAM_API_URL": bot_api.url,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.Popen(["gunicorn", "bot.app:create_app()", "-c", "python:bot.gunicorn_conf"], cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: proc.poll() is not None or _ready(base), timeout=60, what="gunicorn ready")
            assert proc.poll() is None, proc.stderr.read()
            yield base, graph, bot_api, proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_messenger_and_telegram_under_gunicorn_answer_each_message_once(server):
    base, graph, bot_api, proc = server
    users, chats, per_user = [f"psid{i}" for i in range(6)], [user(700 + i, f"Tg{i}") for i in range(6)], 3
    statuses: list[int] = []

    def messenger_user(psid: str) -> None:
        for k in range(per_user):
            raw = facebook_json(webhook(message_event(psid, f"hello {k}", mid=f"m-{psid}-{k}")))
            headers = {"X-Hub-Signature-256": sign(SECRET, raw)}
            statuses.append(_post(f"{base}/messenger/webhook", raw, headers))
            statuses.append(_post(f"{base}/messenger/webhook", raw, headers))  # Facebook retrying

    def telegram_user(u: dict) -> None:
        for k in range(per_user):
            raw = json.dumps(update(message=message(private_chat(u), u, f"hi {k}"))).encode()
            headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
            statuses.append(_post(f"{base}/telegram/webhook", raw, headers))
            statuses.append(_post(f"{base}/telegram/webhook", raw, headers))  # the same update id again

    threads = [threading.Thread(target=messenger_user, args=(p,)) for p in users]
    threads += [threading.Thread(target=telegram_user, args=(u,)) for u in chats]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) == len(statuses) == 2 * per_user * (len(users) + len(chats))
    wait_until(lambda: all(len(graph.texts(p)) >= per_user for p in users), timeout=60, what="Messenger replies")
    wait_until(lambda: all(len(bot_api.sent(u["id"])) >= per_user for u in chats), timeout=60,
               what="Telegram replies")
    time.sleep(0.5)  # a doubled reply would arrive about now
    assert [len(graph.texts(p)) for p in users] == [per_user] * len(users)
    assert [len(bot_api.sent(u["id"])) for u in chats] == [per_user] * len(chats)
    assert _post(f"{base}/telegram/webhook", b"{}", {"X-Telegram-Bot-Api-Secret-Token": "wrong"}) == 403
    assert proc.poll() is None and _ready(base)
