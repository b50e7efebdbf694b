"""`Inbox`: webhook events kept in the store from the platform's 200 until they are answered.

A platform that got 200 will not deliver an event again, so a worker killed mid-reply would lose it.
Each adapter adds its event here before acknowledging it and marks it done once handled; a thread in
every worker process claims events whose holder died (this machine: at once) or whose lease ran out
(another machine) and hands them to the adapter that registered their prefix. A reply can only be
doubled by a crash in the instant between sending it and marking it done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.stores import Store, StoreError
from bot.stores.owner import process_owner

log = logging.getLogger(__name__)

Recover = Callable[[str, bytes], None]


class Inbox:
    def __init__(self, store: Store, lease: float, interval: float = 2.0):
        self.store, self.lease, self.interval = store, lease, interval
        self._handlers: dict[str, Recover] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, prefix: str, recover: Recover) -> None:
        """Events whose id starts with `prefix` are recovered by `recover(item_id, payload)`."""
        self._handlers[prefix] = recover

    def add(self, item_id: str, payload: bytes) -> None:
        """Keep an event (StoreError if the store is down: answer the platform 503, it delivers again)."""
        self.store.inbox_add(item_id, payload, process_owner(), self.lease)

    def done(self, item_id: str) -> None:
        """The event is handled; a store error here is logged (the event may then be answered twice)."""
        try:
            self.store.inbox_done(item_id)
        except StoreError as err:
            log.warning("inbox: could not mark an event done", extra={"error": str(err)})

    def recover_now(self) -> int:
        """Claim orphaned events once and hand them to their adapters; how many were recovered."""
        claimed = self.store.inbox_claim(process_owner(), self.lease)
        for item_id, payload in claimed:
            recover = next((fn for prefix, fn in self._handlers.items() if item_id.startswith(prefix)), None)
            if recover is None:  # an adapter this process does not run: its lease brings it back later
                log.warning("inbox: no adapter for a recovered event", extra={"item": item_id.split(":")[0]})
                continue
            log.info("inbox: recovering an event from a stopped worker", extra={"item": item_id.split(":")[0]})
            try:
                recover(item_id, payload)
            except Exception:  # kept: its lease brings it back for another try
                log.exception("inbox: recovering an event failed")
        return len(claimed)

    def start(self) -> None:
        """Run `recover_now` every `interval` seconds in a daemon thread (once per process)."""
        if self._thread is None and self._handlers:
            self._thread = threading.Thread(target=self._run, name="talklike-inbox", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.recover_now()
            except StoreError as err:
                log.warning("inbox: store unavailable", extra={"error": str(err)})
            except Exception:
                log.exception("inbox: recovery pass failed")
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
