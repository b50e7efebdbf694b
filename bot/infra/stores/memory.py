"""`MemoryStore`: conversation memory in this process only (tests, the terminal chat)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot.infra.stores.base import DAY_S, DEFAULT_RETENTION_DAYS, Schedule, Store, check_key
from bot.infra.stores.local_locks import LocalKeyLocks
from bot.infra.stores.owner import is_dead
from bot.infra.stores.record import ConversationRecord


class MemoryStore(Store):
    """A dict behind a mutex. Records are kept as bytes so callers never share mutable state."""

    def __init__(self, url: str = "memory://", retention: float = DEFAULT_RETENTION_DAYS * DAY_S):
        self.url, self.retention = url, retention
        self._mutex = threading.Lock()
        self._records: dict[str, tuple[bytes, float]] = {}  # key -> (record, when written (monotonic))
        self._seen: dict[str, float] = {}  # message id -> expiry (monotonic)
        # item id -> [payload, owner, lease expiry (wall), claims, when added (wall)]
        self._inbox: dict[str, list] = {}
        self._locks = LocalKeyLocks()
        self._prune = Schedule()

    def get(self, conversation: str) -> ConversationRecord | None:
        with self._mutex:
            data, written = self._records.get(check_key(conversation), (None, 0.0))
        if data is None or written < time.monotonic() - self.retention:
            return None
        return ConversationRecord.from_bytes(data)

    def put(self, conversation: str, record: ConversationRecord) -> None:
        data, now = record.to_bytes(), time.monotonic()
        with self._mutex:
            self._records[check_key(conversation)] = (data, now)
            if self._prune.due():  # now and then, forget what is past retention
                self._records = {k: v for k, v in self._records.items() if v[1] >= now - self.retention}

    def keys(self, prefix: str) -> list[str]:
        oldest = time.monotonic() - self.retention
        with self._mutex:
            return [k for k, (_, written) in self._records.items() if k.startswith(prefix) and written >= oldest]

    def delete(self, conversation: str) -> bool:
        with self._mutex:
            return self._records.pop(check_key(conversation), None) is not None

    def _acquire(self, conversation: str, timeout: float, lease: float, holder: str) -> object:
        # One process: a held lock cannot outlive its holder, so the lease is not needed here.
        self._locks.acquire(conversation, time.monotonic() + timeout, timeout)
        return conversation

    def _release(self, conversation: str, token: object) -> None:
        self._locks.release(conversation)

    def seen(self, message_id: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._mutex:
            expiry = self._seen.get(check_key(message_id))
            if expiry is not None and expiry > now:
                return True
            if len(self._seen) > 10_000:  # drop expired ids now and then so the dict stays bounded
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            self._seen[message_id] = now + ttl
            return False

    def inbox_add(self, item_id: str, payload: bytes, owner: str, lease: float) -> bool:
        with self._mutex:
            if check_key(item_id) in self._inbox:
                return False
            now = time.time()
            self._inbox[item_id] = [bytes(payload), owner, now + lease, 0, now]
            return True

    def inbox_done(self, item_id: str) -> None:
        with self._mutex:
            self._inbox.pop(item_id, None)

    def inbox_claim(self, owner: str, lease: float, limit: int = 100,
                    abandoned: Callable[[str, str], bool] | None = None) -> list[tuple[str, bytes]]:
        now, claimed = time.time(), []
        with self._mutex:
            for item_id, item in list(self._inbox.items()):
                payload, holder, expiry, claims, added = item
                if added < now - self.inbox_max_age:
                    del self._inbox[item_id]
                    self._dropped(item_id)
                    continue
                if len(claimed) >= limit or not (
                        expiry < now or (holder != owner and is_dead(holder)) or (abandoned and abandoned(item_id, holder))):
                    continue
                if claims >= self.max_claims:
                    del self._inbox[item_id]
                    self._dropped(item_id, claims)
                    continue
                item[1:4] = [owner, now + lease, claims + 1]
                claimed.append((item_id, payload))
        return claimed

    def ping(self) -> None:
        return None
