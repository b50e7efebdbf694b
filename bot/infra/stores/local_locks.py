"""Per-conversation locks between the threads of one process.

The memory store uses them as its whole lock; the SQLite store queues its own threads here first so
only one of them polls the shared lock table at a time.
"""

from __future__ import annotations

import threading
import time

from bot.infra.stores.base import LockTimeout


class LocalKeyLocks:
    """At most one holder per key in this process; waiters sleep on a condition instead of polling."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._released = threading.Condition(threading.Lock())

    def acquire(self, key: str, deadline: float, timeout: float) -> None:
        """Take `key`, waiting until the monotonic `deadline`; LockTimeout after that."""
        with self._released:
            while key in self._held:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeout(f"conversation lock not free after {timeout:g} s")
                self._released.wait(remaining)
            self._held.add(key)

    def release(self, key: str) -> None:
        with self._released:
            self._held.discard(key)
            self._released.notify_all()
