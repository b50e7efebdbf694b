"""`WebhookEvents`: the life of one webhook event, the same for Messenger and Telegram.

1. **Admitted** (`accept`), before the platform hears 200: kept in the store's inbox, then checked against
   the events answered in the dedupe window (a platform redelivers what it thinks was lost). A duplicate is
   dropped; a store that cannot keep it raises StoreError and the webhook answers 503, so the platform
   delivers it again and nothing is lost.
2. **Handled**: a sync kind on the background pool, one event at a time per ordering key (a Messenger
   user); an async kind as a coroutine on its event loop (Telegram's Application). The handler returns an
   `Outcome`.
3. **Retried** while the store is down: a handler that could not reach the store returns `Outcome.RETRY`
   (it may, while `attempt.may_retry`), and the event is handled again after the next of `STORE_RETRY_DELAYS`;
   after the last, the handler tells the person it is busy and returns DONE. Nothing is sent on a retry.
4. **Done**: removed from the inbox (said again later if the store is down at that moment).
5. **Recovered**: an event whose worker died before it was done is claimed by another process's inbox
   pass (bot/infra/inbox.py) and handled as in 2, from its first attempt.

This is the one file that decides when a webhook event is retried.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.infra.background import BackgroundTasks
from bot.infra.inbox import Inbox
from bot.infra.ordered_queues import OrderedQueues

log = logging.getLogger(__name__)

STORE_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # seconds between tries while the store is down


class Outcome(enum.Enum):
    DONE = "done"  # handled (answered, or told why not): remove it from the inbox
    RETRY = "retry"  # the store was down and nothing was sent: handle it again later


@dataclass(frozen=True)
class Attempt:
    """Which try of an event this is; `may_retry` says whether a RETRY will be honoured."""

    item_id: str
    number: int
    delays: tuple[float, ...] = STORE_RETRY_DELAYS

    @property
    def may_retry(self) -> bool:
        return self.number < len(self.delays)

    @property
    def delay(self) -> float:
        """Seconds before the next try."""
        return self.delays[min(self.number, len(self.delays) - 1)]

    def next(self) -> Attempt:
        return Attempt(self.item_id, self.number + 1, self.delays)


SyncHandler = Callable[[bytes, Attempt], Outcome]
AsyncHandler = Callable[[bytes, Attempt], Awaitable[Outcome]]


@dataclass
class _Kind:
    prefix: str
    dedupe_ttl: float
    handle: SyncHandler | None = None
    order_key: Callable[[bytes], str] | None = None
    ahandle: AsyncHandler | None = None
    loop: Callable[[], asyncio.AbstractEventLoop] | None = None  # started on first use


class WebhookEvents:
    def __init__(self, store, inbox: Inbox, background: BackgroundTasks,
                 delays: tuple[float, ...] = STORE_RETRY_DELAYS):
        self.store, self.inbox, self.background, self.delays = store, inbox, background, delays
        self._kinds: dict[str, _Kind] = {}
        self._queues = OrderedQueues(background, self._run_queued)
        self._in_flight: set[concurrent.futures.Future] = set()
        self._lock = threading.Lock()

    # -- registration -------------------------------------------------------------------------------
    def register(self, prefix: str, dedupe_ttl: float, handle: SyncHandler, order_key: Callable[[bytes], str]) -> None:
        """Events whose id starts with `prefix` are handled by `handle(payload, attempt)` on the background
        pool, one at a time per `order_key(payload)`."""
        self._add(_Kind(prefix, dedupe_ttl, handle=handle, order_key=order_key))

    def register_async(self, prefix: str, dedupe_ttl: float, handle: AsyncHandler,
                       loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        """Events whose id starts with `prefix` are handled by the coroutine `handle(payload, attempt)` on
        the event loop `loop()` returns."""
        self._add(_Kind(prefix, dedupe_ttl, ahandle=handle, loop=loop))

    def _add(self, kind: _Kind) -> None:
        self._kinds[kind.prefix] = kind
        self.inbox.register(kind.prefix, lambda item_id, payload: self._start(kind, item_id, payload),
                            lambda item_id: self._seen(kind, item_id))

    # -- 1. admission -------------------------------------------------------------------------------
    def accept(self, item_id: str, payload: bytes) -> bool:
        """Admit and start handling an event; False for a duplicate. StoreError: answer the platform 503."""
        kind = self._kind(item_id)
        if not self.inbox.admit(item_id, payload, lambda key: self._seen(kind, key)):
            return False
        self._start(kind, item_id, payload)
        return True

    def _seen(self, kind: _Kind, item_id: str) -> bool:
        return self.store.seen(item_id, ttl=kind.dedupe_ttl)

    def _kind(self, item_id: str) -> _Kind:
        for prefix, kind in self._kinds.items():
            if item_id.startswith(prefix):
                return kind
        raise KeyError(f"no webhook handler registered for {item_id.split(':')[0]!r} events")

    def _start(self, kind: _Kind, item_id: str, payload: bytes, attempt: Attempt | None = None) -> None:
        attempt = attempt or Attempt(item_id, 0, self.delays)
        if kind.handle is not None:
            self._queues.put(kind.order_key(payload), (kind, payload, attempt))
            return
        future = asyncio.run_coroutine_threadsafe(self._run_async(kind, payload, attempt), kind.loop())
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._forget_future)

    def _forget_future(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._in_flight.discard(future)

    # -- 2-4. handling, retries, done ---------------------------------------------------------------
    def _run_queued(self, item: tuple[_Kind, bytes, Attempt]) -> None:
        kind, payload, attempt = item
        outcome = Outcome.DONE
        try:
            outcome = kind.handle(payload, attempt)
        finally:  # a handler that raised is done: its bug is logged, a retry would only repeat it
            if outcome is Outcome.RETRY and attempt.may_retry:
                self._later(attempt.delay, kind, payload, attempt.next())
            else:
                self.inbox.done(attempt.item_id)

    def _later(self, delay: float, kind: _Kind, payload: bytes, attempt: Attempt) -> None:
        """Handle the event again after `delay` seconds (it stays in the inbox meanwhile, should this process
        stop)."""
        timer = threading.Timer(delay, self._start, (kind, attempt.item_id, payload, attempt))
        timer.daemon = True
        timer.start()

    async def _run_async(self, kind: _Kind, payload: bytes, attempt: Attempt) -> None:
        try:
            while (await kind.ahandle(payload, attempt)) is Outcome.RETRY and attempt.may_retry:
                await asyncio.sleep(attempt.delay)
                attempt = attempt.next()
        finally:
            await asyncio.to_thread(self.inbox.done, attempt.item_id)

    # -- lifetime -----------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Async events being handled now (the sync ones are the background pool's `pending`)."""
        with self._lock:
            return len(self._in_flight)

    def wait_async(self, timeout: float) -> None:
        """Let coroutines in flight finish (graceful stop); the sync ones finish with the background pool."""
        with self._lock:
            in_flight = list(self._in_flight)
        concurrent.futures.wait(in_flight, timeout)
