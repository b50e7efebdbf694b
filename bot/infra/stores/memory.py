"""`MemoryStore`: conversation memory in this process only (tests, the terminal chat)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot.infra.stores.base import Store, check_key
from bot.infra.stores.local_locks import LocalKeyLocks
from bot.infra.stores.owner import is_dead
from bot.infra.stores.record import ConversationRecord


class MemoryStore(Store):
    """A dict behind a mutex. Records are kept as bytes so callers never share mutable state."""

    def __init__(self, url: str = "memory://"):
        self.url = url
        self._mutex = threading.Lock()
        self._records: dict[str, bytes] = {}
        self._seen: dict[str, float] = {}  # message id -> expiry (monotonic)
        self._inbox: dict[str, tuple[bytes, str, float]] = {}  # item id -> (payload, owner, expiry (wall))
        self._locks = LocalKeyLocks()

    def get(self, conversation: str) -> ConversationRecord | None:
        with self._mutex:
            data = self._records.get(check_key(conversation))
        return None if data is None else ConversationRecord.from_bytes(data)

    def put(self, conversation: str, record: ConversationRecord) -> None:
        data = record.to_bytes()
        with self._mutex:
            self._records[check_key(conversation)] = data

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
            self._inbox[item_id] = (bytes(payload), owner, time.time() + lease)
            return True

    def inbox_done(self, item_id: str) -> None:
        with self._mutex:
            self._inbox.pop(item_id, None)

    def inbox_claim(self, owner: str, lease: float, limit: int = 100,
                    abandoned: Callable[[str, str], bool] | None = None) -> list[tuple[str, bytes]]:
        now, claimed = time.time(), []
        with self._mutex:
            for item_id, (payload, holder, expiry) in list(self._inbox.items()):
                if len(claimed) >= limit:
                    break
                if expiry < now or (holder != owner and is_dead(holder)) or (abandoned and abandoned(item_id, holder)):
                    self._inbox[item_id] = (payload, owner, now + lease)
                    claimed.append((item_id, payload))
        return claimed

    def ping(self) -> None:
        return None
