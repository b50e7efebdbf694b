"""Faults under gunicorn: a worker killed mid-reply, and a graceful stop (SIGTERM) with replies in flight.

Each reply is held "mid-reply" deterministically: the test holds the conversation's lock in the shared
sqlite store (as another reply in progress would), so the worker has acknowledged the message and is
waiting to write its answer when the fault strikes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from fake_bot_api import TOKEN as TELEGRAM_TOKEN
from fake_bot_api import FakeBotAPI, message, private_chat, update, user, wait_until
from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook
from gunicorn_server import GunicornServer

from bot.infra.stores import open_store

SECRET, PAGE, TG_SECRET = "app-secret", "PAGE-TOKEN", "tg-secret_2"


class Server(GunicornServer):
    """One worker over one sqlite file, with both webhooks on."""

    def __init__(self, artifact: Path, db: Path, graph: FakeGraph, bot_api: FakeBotAPI, workdir: Path):
        super().__init__({"TALKLIKE_MODEL": str(artifact), "WEB_CONCURRENCY": "1", "TALKLIKE_STORE_URL": f"sqlite:///{db}",
                          "TALKLIKE_CONSOLE": "0", "TALKLIKE_KEEP_TRANSCRIPTS": "1", "TALKLIKE_DISCLOSURE": "off", "MESSENGER_VERIFY_TOKEN": "v", "MESSENGER_APP_SECRET": SECRET,
                          "MESSENGER_PAGE_TOKEN": PAGE, "MESSENGER_GRAPH_URL": graph.url,
                          "TELEGRAM_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
                          "TELEGRAM_API_URL": bot_api.url}, workdir)
        self.db = db

    def worker(self) -> int:
        [pid] = self.workers()
        return pid

    def messenger(self, psid: str, text: str, mid: str) -> int:
        raw = facebook_json(webhook(message_event(psid, text, mid=mid)))
        return self.post("/messenger/webhook", raw, {"X-Hub-Signature-256": sign(SECRET, raw)})

    def telegram(self, u: dict, text: str) -> int:
        raw = json.dumps(update(message=message(private_chat(u), u, text))).encode()
        return self.post("/telegram/webhook", raw, {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})

    def inbox_owners(self) -> list[str]:
        with sqlite3.connect(self.db) as conn:
            return [row[0] for row in conn.execute("SELECT owner FROM inbox")]


@pytest.fixture
def fakes():
    with FakeGraph(token=PAGE) as graph, FakeBotAPI() as bot_api:
        yield graph, bot_api


def test_a_worker_killed_mid_reply_answers_after_the_restart_once(tiny_artifact, tmp_path, fakes):
    graph, bot_api = fakes
    db = tmp_path / "t.db"
    server = Server(tiny_artifact, db, graph, bot_api, tmp_path).start()
    store = open_store(f"sqlite:///{db}")
    tg_user = user(811, "Kim")
    try:
        with store.lock("messenger:u1", timeout=5), store.lock(f"telegram:{tg_user['id']}", timeout=5):
            assert server.messenger("u1", "are you there?", mid="m-kill-1") == 200
            assert server.telegram(tg_user, "hello?") == 200
            victim = server.worker()
            # Both acknowledged, both waiting for their conversation: now the worker dies.
            wait_until(lambda: len([o for o in server.inbox_owners() if f"/{victim}/" in o]) == 2,
                       what="both events in the inbox")
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: server.ready() and server.worker() != victim, timeout=60, what="a new worker")
        # The lock is free (and the dead worker's would be taken over): the new worker answers both, once.
        wait_until(lambda: graph.texts("u1") and bot_api.sent(tg_user["id"]), timeout=30, what="the replies")
        time.sleep(2.5)  # another recovery pass: nothing may be sent twice
        assert len(graph.texts("u1")) == 1 and len(bot_api.sent(tg_user["id"])) == 1
        assert server.inbox_owners() == []
        transcript = store.get("messenger:u1").transcript
        assert [m["text"] for m in transcript][:1] == ["are you there?"] and len(transcript) == 2
    finally:
        store.close()
        server.stop()


def test_sigterm_lets_replies_in_flight_finish(tiny_artifact, tmp_path, fakes):
    graph, bot_api = fakes
    db = tmp_path / "t.db"
    server = Server(tiny_artifact, db, graph, bot_api, tmp_path).start()
    store = open_store(f"sqlite:///{db}")
    try:
        with store.lock("messenger:u2", timeout=5):
            assert server.messenger("u2", "still there?", mid="m-term-1") == 200
            wait_until(lambda: server.inbox_owners(), what="the event in the inbox")
            os.killpg(server.proc.pid, signal.SIGTERM)  # a graceful stop while the reply waits
            time.sleep(1.0)
        assert server.proc.wait(timeout=60) == 0
        assert len(graph.texts("u2")) == 1 and server.inbox_owners() == []
    finally:
        store.close()
        server.stop()


def test_a_reply_cut_off_by_the_stop_is_answered_by_the_next_start(tiny_artifact, tmp_path, fakes):
    graph, bot_api = fakes
    db = tmp_path / "t.db"
    server = Server(tiny_artifact, db, graph, bot_api, tmp_path)
    server.env["TALKLIKE_REPLY_TIMEOUT"] = "120"  # the reply outwaits gunicorn's graceful timeout
    server.start()
    store = open_store(f"sqlite:///{db}")
    try:
        with store.lock("messenger:u3", timeout=5):
            assert server.messenger("u3", "hello?", mid="m-cut-1") == 200
            wait_until(lambda: server.inbox_owners(), what="the event in the inbox")
            victim = server.worker()
            os.kill(victim, signal.SIGKILL)  # as gunicorn does past its graceful timeout
            server.stop()
            assert graph.texts("u3") == [] and len(server.inbox_owners()) == 1
        server.start()  # a deploy later: the event is still there, and answered
        wait_until(lambda: graph.texts("u3"), timeout=30, what="the recovered reply")
        assert len(graph.texts("u3")) == 1
    finally:
        store.close()
        server.stop()
