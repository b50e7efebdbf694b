"""Both webhooks under gunicorn as the Procfile runs it: two gthread workers, one sqlite store, real HTTP.

Messenger users and Telegram chats write concurrently; every message is answered exactly once, redeliveries
that reach the other worker included, and the workers survive it all."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fake_bot_api import TOKEN as TELEGRAM_TOKEN
from fake_bot_api import FakeBotAPI, message, private_chat, update, user, wait_until
from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook
from gunicorn_server import GunicornServer

SECRET, VERIFY, PAGE, TG_SECRET = "app-secret", "verify-me", "PAGE-TOKEN", "tg-secret_1"


@pytest.fixture
def server(tiny_artifact, tmp_path):
    with FakeGraph(token=PAGE) as graph, FakeBotAPI() as bot_api:
        env = {"TALKLIKE_MODEL": str(tiny_artifact), "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8",
               "TALKLIKE_STORE_URL": f"sqlite:///{tmp_path / 't.db'}",
               "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": SECRET, "MESSENGER_PAGE_TOKEN": PAGE,
               "MESSENGER_GRAPH_URL": graph.url, "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
               "TELEGRAM_WEBHOOK_SECRET": TG_SECRET, "TELEGRAM_API_URL": bot_api.url,
               "TALKLIKE_DISCLOSURE": "off"}  # one reply per message: what the counts check
        server = GunicornServer(env, tmp_path).start()
        try:
            yield server, graph, bot_api
        finally:
            server.stop()


def test_messenger_and_telegram_under_gunicorn_answer_each_message_once(server):
    server, graph, bot_api = server
    users, chats, per_user = [f"psid{i}" for i in range(6)], [user(700 + i, f"Tg{i}") for i in range(6)], 3
    statuses: list[int] = []

    def messenger_user(psid: str) -> None:
        for k in range(per_user):
            raw = facebook_json(webhook(message_event(psid, f"hello {k}", mid=f"m-{psid}-{k}")))
            headers = {"X-Hub-Signature-256": sign(SECRET, raw)}
            statuses.append(server.post("/messenger/webhook", raw, headers))
            statuses.append(server.post("/messenger/webhook", raw, headers))  # Facebook retrying

    def telegram_user(u: dict) -> None:
        for k in range(per_user):
            raw = json.dumps(update(message=message(private_chat(u), u, f"hi {k}"))).encode()
            headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
            statuses.append(server.post("/telegram/webhook", raw, headers))
            statuses.append(server.post("/telegram/webhook", raw, headers))  # the same update id again

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
    assert server.post("/telegram/webhook", b"{}", {"X-Telegram-Bot-Api-Secret-Token": "wrong"}) == 403
    assert server.proc.poll() is None and server.ready() and len(server.workers()) == 2
