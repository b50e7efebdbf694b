"""The webhook event lifecycle on its own: admission and the dedupe window, in-order handling, retries
while the store is down, done, and recovery after a crash; sync (Messenger) and async (Telegram) alike."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from bot.infra.background import BackgroundTasks
from bot.infra.inbox import Inbox
from bot.infra.stores import open_store
from bot.infra.stores.owner import this_machine
from bot.infra.webhook_events import Attempt, Outcome, WebhookEvents

DELAYS = (0.01, 0.02, 0.03)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def lifecycle():
    store = open_store("memory://")
    background = BackgroundTasks(4)
    inbox = Inbox(store, lease=120)
    events = WebhookEvents(store, inbox, background, delays=DELAYS)
    yield events
    background.close()
    inbox.close()


def kept(events: WebhookEvents) -> list[str]:
    """Ids still in the inbox (not done), as another process would claim them once their lease ran out."""
    return [item for item, _ in events.store.inbox_claim("someone-else", lease=0.0)]


class Recorder:
    """A sync handler that answers RETRY for its first `retries` tries."""

    def __init__(self, retries: int = 0, raises: bool = False):
        self.retries, self.raises = retries, raises
        self.tries: list[tuple[bytes, int, bool]] = []

    def __call__(self, payload: bytes, attempt: Attempt) -> Outcome:
        self.tries.append((payload, attempt.number, attempt.may_retry))
        if self.raises:
            raise RuntimeError("handler bug")
        return Outcome.RETRY if len(self.tries) <= self.retries else Outcome.DONE


def test_an_event_is_handled_once_in_order_and_then_done(lifecycle):
    handler = Recorder()
    lifecycle.register("m:", 60.0, handler, order_key=lambda payload: payload[:1].decode())
    for i in range(5):
        assert lifecycle.accept(f"m:{i}", f"u{i}".encode())
    assert not lifecycle.accept("m:3", b"u3")  # a redelivery while (or after) it is handled
    wait_until(lambda: len(handler.tries) == 5 and lifecycle.background.pending == 0)
    assert [p for p, _, _ in handler.tries] == [b"u0", b"u1", b"u2", b"u3", b"u4"]  # one key: in order
    assert kept(lifecycle) == []
    assert not lifecycle.accept("m:1", b"u1")  # answered within the dedupe window


def test_a_store_outage_is_retried_after_each_delay_then_given_up(lifecycle):
    handler = Recorder(retries=10)  # never recovers
    lifecycle.register("m:", 60.0, handler, order_key=lambda payload: "u")
    started = time.monotonic()
    lifecycle.accept("m:1", b"x")
    wait_until(lambda: len(handler.tries) == len(DELAYS) + 1 and lifecycle.background.pending == 0)
    time.sleep(0.1)
    assert [(n, may) for _, n, may in handler.tries] == [(0, True), (1, True), (2, True), (3, False)]
    assert time.monotonic() - started >= sum(DELAYS)
    assert kept(lifecycle) == []  # the last try told the person and was done


def test_a_handler_that_raises_is_done_not_retried(lifecycle):
    handler = Recorder(raises=True)
    lifecycle.register("m:", 60.0, handler, order_key=lambda payload: "u")
    lifecycle.accept("m:1", b"x")
    wait_until(lambda: handler.tries and lifecycle.background.pending == 0)
    time.sleep(0.1)
    assert len(handler.tries) == 1 and kept(lifecycle) == []


def test_async_events_retry_on_their_event_loop(lifecycle):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tries = []

    async def handle(payload: bytes, attempt: Attempt) -> Outcome:
        tries.append((attempt.number, threading.current_thread() is thread))
        return Outcome.RETRY if attempt.number < 2 else Outcome.DONE

    try:
        lifecycle.register_async("t:", 60.0, handle, loop=lambda: loop)
        assert lifecycle.accept("t:1", b"update")
        wait_until(lambda: len(tries) == 3 and lifecycle.in_flight == 0)
        assert tries == [(0, True), (1, True), (2, True)]
        assert kept(lifecycle) == []
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_an_event_left_by_a_dead_worker_is_recovered_and_handled(lifecycle):
    handler = Recorder()
    lifecycle.register("m:", 60.0, handler, order_key=lambda payload: "u")
    dead = f"{this_machine()}/{_unused_pid()}/gone"
    assert lifecycle.store.inbox_add("m:orphan", b"left behind", dead, lease=120)
    assert lifecycle.inbox.recover_now() == 1
    wait_until(lambda: handler.tries and lifecycle.background.pending == 0)
    assert handler.tries[0][:2] == (b"left behind", 0)
    assert not lifecycle.accept("m:orphan", b"left behind")  # its redelivery reads as answered


def _unused_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1
