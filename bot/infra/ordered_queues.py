"""`OrderedQueues`: one FIFO per key (a Messenger user) on top of the shared background pool.

Each key's items are handled one after another in the order they arrived, by at most one pool thread at a
time; different keys run in parallel. (Across gunicorn workers the engine's store lock still keeps one
reply at a time per conversation; Messenger itself delivers a user's messages in order.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class OrderedQueues:
    def __init__(self, background, handle: Callable[[object], None]):
        self._background = background
        self._handle = handle
        self._queues: dict[str, deque] = {}
        self._lock = threading.Lock()

    def put(self, key: str, item: object) -> None:
        """Queue `item` behind the key's earlier items; start a drainer if none runs for the key."""
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:
                queue.append(item)
                return
            self._queues[key] = deque([item])
        self._background.submit(self._drain, key)

    def _drain(self, key: str) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                item = queue.popleft()
            try:
                self._handle(item)
            except Exception:  # one bad event must not strand the events queued behind it
                log.exception("a queued event handler failed")

    @property
    def active(self) -> int:
        """Keys with items queued or being handled."""
        with self._lock:
            return len(self._queues)
