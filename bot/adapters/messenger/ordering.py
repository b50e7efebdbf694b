"""`UserQueues`: per-user FIFO on top of the shared background pool.

Each user's events are handled one after another in the order they arrived, by at most one pool thread at a
time; different users run in parallel. (Across gunicorn workers the engine's store lock still keeps one
reply at a time per conversation; Messenger itself delivers a user's messages in order.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class UserQueues:
    def __init__(self, background, handle: Callable[[object], None]):
        self._background = background
        self._handle = handle
        self._queues: dict[str, deque] = {}
        self._lock = threading.Lock()

    def put(self, user: str, item: object) -> None:
        """Queue `item` behind the user's earlier items; start a drainer if none runs for the user."""
        with self._lock:
            queue = self._queues.get(user)
            if queue is not None:
                queue.append(item)
                return
            self._queues[user] = deque([item])
        self._background.submit(self._drain, user)

    def _drain(self, user: str) -> None:
        while True:
            with self._lock:
                queue = self._queues[user]
                if not queue:
                    del self._queues[user]
                    return
                item = queue.popleft()
            try:
                self._handle(item)
            except Exception:  # one bad event must not strand the events queued behind it
                log.exception("messenger event handler failed")

    @property
    def users(self) -> int:
        with self._lock:
            return len(self._queues)
