"""`BackgroundTasks`: work that runs after a webhook has already been answered (replies, Send API calls).

A bounded thread pool; a task that raises is logged (without message text) and never kills the pool.
`close` lets tasks in flight finish, so a graceful stop (SIGTERM to gunicorn) does not drop replies.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self, threads: int = 8, name: str = "talklike-bg"):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._pending = 0
        self._closed = False
        self._idle = threading.Condition()

    def submit(self, fn, *args, **kwargs) -> Future | None:
        """Run `fn(*args, **kwargs)` on a pool thread; None once closed (what is left for later, such as a
        delayed retry, stays in the store's inbox for the next process)."""
        with self._idle:
            if self._closed:
                log.warning("background task dropped: shutting down", extra={"task": getattr(fn, "__qualname__", "?")})
                return None
            self._pending += 1
        return self._pool.submit(self._run, fn, args, kwargs)

    def _run(self, fn, args, kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__qualname__", fn))
            raise
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no task is pending; False on timeout (tests, graceful stop)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def pending(self) -> int:
        return self._pending

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is in flight (up to `timeout`), then stop the threads."""
        self.wait_idle(timeout)
        with self._idle:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
