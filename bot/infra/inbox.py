"""`Inbox`: webhook events kept in the store from the platform's 200 until they are answered.

A platform that got 200 will not deliver an event again, so a worker killed mid-reply would lose it.
Each adapter adds its event here before acknowledging it and marks it done once handled; a thread in
every worker process claims events whose holder died (this machine: at once) or whose lease ran out
(another machine) and hands them to the adapter that registered their prefix. A reply can only be
doubled by a crash in the instant between sending it and marking it done. An event whose handling stops
worker after worker is dropped by the store after a few claims, and one older than a day is dropped too
(`Store.inbox_claim`), each with an error line that names only its platform.

This process also knows which of its own events it is handling (`_handling`, marked before an event can
appear in the store under its name). One kept under its name that nobody here handles is recovered on the
next pass, not a lease later: the store kept it but the reply saying so was lost (a server stopping right
after the write), so the platform heard 503 and its redelivery found the event "kept already"; or a
claim went through while its reply was lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.infra.log_format import quotes_a_secret
from bot.infra.stores import Store, StoreError
from bot.infra.stores.owner import process_owner

log = logging.getLogger(__name__)

Recover = Callable[[str, bytes], None]

# Events some Inbox of this process is handling (shared by all of them), counted: a redelivery that finds
# its event kept already by a thread here must not unmark that thread's hold.
_handling: dict[str, int] = {}
_handling_lock = threading.Lock()
_claiming = threading.Lock()  # one claim pass at a time per process: a claimed event is marked before another


def _mark(item_id: str) -> None:
    with _handling_lock:
        _handling[item_id] = _handling.get(item_id, 0) + 1


def _unmark(item_id: str) -> None:
    with _handling_lock:
        left = _handling.pop(item_id, 0) - 1
        if left > 0:
            _handling[item_id] = left


def _abandoned_here(item_id: str, holder: str) -> bool:
    """Kept under this process's name, and handled by none of its threads?"""
    me = process_owner()
    if holder != me and not holder.startswith(me + "/"):
        return False
    with _handling_lock:
        return item_id not in _handling


class Inbox:
    def __init__(self, store: Store, lease: float, interval: float = 2.0):
        self.store, self.lease, self.interval = store, lease, interval
        self._handlers: dict[str, tuple[Recover, Callable[[str], bool] | None]] = {}
        self._undone: set[str] = set()  # answered, but the store was down when we said so: said again later
        self._abandoned: dict[str, tuple[bytes, Callable[[str], bool]]] = {}  # kept, never handed out
        self._undone_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, prefix: str, recover: Recover, seen: Callable[[str], bool] | None = None) -> None:
        """Events whose id starts with `prefix` are recovered by `recover(item_id, payload)`. `seen` is the
        adapter's answered-before mark (as given to `admit`): a recovered event is marked with it before it
        is handed out, so that a redelivery arriving after it is answered is dropped, even when the worker
        that admitted it never got as far as marking it."""
        self._handlers[prefix] = (recover, seen)

    def add(self, item_id: str, payload: bytes) -> bool:
        """Keep an event; False if it is kept already (a redelivery while it is being answered). StoreError
        if the store is down: answer the platform 503, it delivers again."""
        _mark(item_id)  # before it can be in the store as ours: recovery must not take it for abandoned
        try:
            kept = self.store.inbox_add(item_id, payload, process_owner(), self.lease)
        except StoreError:
            _unmark(item_id)  # kept or not, we do not know: if it was, the next pass finds it abandoned
            raise
        if not kept:
            _unmark(item_id)
        return kept

    def admit(self, item_id: str, payload: bytes, seen: Callable[[str], bool]) -> bool:
        """Should a webhook event be handled? Kept first, then checked against the events answered before
        (`seen`), so that no failure or crash between the two can lose it: a redelivery finds it kept."""
        if not self.add(item_id, payload):
            return False  # kept already: being answered, or left by a dead worker for recovery
        try:
            answered_before = seen(item_id)
        except StoreError:
            # Kept, but the platform hears 503 and its redelivery will find it kept: hand it out ourselves
            # on the next recovery pass (not a lease later).
            with self._undone_lock:
                self._abandoned[item_id] = (payload, seen)
            raise
        if answered_before:
            self.done(item_id)  # answered long ago: a late redelivery
            return False
        return True

    def done(self, item_id: str) -> None:
        """The event is handled. If the store is down, this is said again on the next recovery pass (until
        then the event is never claimed again by this process, so it is not answered twice)."""
        try:
            self.store.inbox_done(item_id)
        except StoreError as err:
            log.warning("inbox: could not mark an event done yet", extra={"error": str(err)})
            with self._undone_lock:
                self._undone.add(item_id)  # still marked handling: never recovered as abandoned meanwhile
            return
        _unmark(item_id)

    def _take_abandoned(self) -> list[tuple[str, bytes]]:
        """Events admission kept but could not finish checking (the store went down): check them now."""
        with self._undone_lock:
            pending = list(self._abandoned.items())
        taken = []
        for item_id, (payload, seen) in pending:
            seen(item_id)  # marks it answered-to-be for later redeliveries; StoreError: next pass
            with self._undone_lock:
                self._abandoned.pop(item_id, None)
            taken.append((item_id, payload))
        return taken

    def _flush_undone(self) -> None:
        with self._undone_lock:
            pending = list(self._undone)
        for item_id in pending:
            self.store.inbox_done(item_id)  # StoreError: still down, try on the next pass
            with self._undone_lock:
                self._undone.discard(item_id)
            _unmark(item_id)

    def recover_now(self) -> int:
        """Claim orphaned events once and hand them to their adapters; how many were recovered."""
        self._flush_undone()  # before claiming: an answered event must not come back as an orphan
        with _claiming:  # until marked, what this pass claims would look abandoned to another Inbox here
            taken = self.store.inbox_claim(process_owner(), self.lease, abandoned=_abandoned_here)
            for item_id, _ in taken:
                _mark(item_id)
        for index, (item_id, _) in enumerate(taken):
            seen = self._handler(item_id)[1]
            try:
                if seen is not None:
                    seen(item_id)  # True or False alike: from now on a redelivery reads as answered
            except StoreError:
                for later, _ in taken[index:]:  # still ours in the store, unmarked: the next pass takes them
                    _unmark(later)
                taken = taken[:index]
                break
        claimed = self._take_abandoned() + taken
        for item_id, payload in claimed:
            recover = self._handler(item_id)[0]
            if recover is None:  # an adapter this process does not run: its lease brings it back later
                log.warning("inbox: no adapter for a recovered event", extra={"item": item_id.split(":")[0]})
                continue
            log.info("inbox: recovering an event from a stopped worker", extra={"item": item_id.split(":")[0]})
            try:
                recover(item_id, payload)
            except Exception as err:  # kept: its lease brings it back for another try
                if quotes_a_secret(err):  # its text (and traceback) would carry the token: a fixed line instead
                    log.error("inbox: recovering an event failed: the platform refused the bot's token",
                              extra={"item": item_id.split(":")[0]})
                else:
                    log.exception("inbox: recovering an event failed")
        return len(claimed)

    def _handler(self, item_id: str) -> tuple[Recover | None, Callable[[str], bool] | None]:
        return next((h for prefix, h in self._handlers.items() if item_id.startswith(prefix)), (None, None))

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
