"""The conversation store interface every backend implements, and its errors.

A store keeps one `ConversationRecord` per conversation key (`platform:chat_id`), serializes replies
within a conversation with `lock()` (across processes where the backend is shared), offers an atomic
`seen()` used to drop retried webhook deliveries, and an *inbox*: webhook events acknowledged to the
platform but not yet answered. An event is added before the platform hears 200 and removed once handled;
if its process dies in between, another one claims it (`inbox_claim`) and answers it, so a crash loses
no reply. An event claimed `max_claims` times (it kills every worker that handles it) is dropped, and so is
one older than `inbox_max_age`, each with an error log line naming only its platform.

Nothing is kept for ever: a record not written for `retention` seconds (TALKLIKE_RETENTION_DAYS) is gone,
and duplicate marks and locks expire on their own.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.infra.stores.owner import hold, holder_token, let_go
from bot.infra.stores.record import ConversationRecord
from talklike.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 30.0  # seconds a caller waits for a conversation's lock
DEFAULT_LOCK_LEASE = 120.0  # seconds after which a lock of a crashed holder expires
MAX_KEY_LENGTH = 512
# 30 days of silence: a conversation picked up within a month keeps its memory (a weekly or monthly chat),
# while what someone said is not kept for ever by a server they may have forgotten about.
DEFAULT_RETENTION_DAYS = 30.0
DAY_S = 86400.0
MAX_INBOX_CLAIMS = 3  # an event whose handling killed this many workers is dropped
MAX_INBOX_AGE_S = DAY_S  # Telegram keeps undelivered updates 24 hours; an answer later than that is no answer
PRUNE_EVERY_S = 3600.0  # how often a store without expiry of its own deletes what is past retention


class StoreError(Exception):
    """A conversation store failed (lock timeout, unreadable record)."""


class StoreUnavailable(StoreError, UserError):
    """The store cannot be reached (server down, file not writable); names the URL without its password."""


class BadStoreURL(StoreError, UserError):
    """The store URL is malformed or names an unknown backend."""


class LockTimeout(StoreError):
    """Waiting for a conversation's lock took longer than allowed (another reply is still running)."""


# `scheme://user:password@host`: the password runs to the last `@` of the URL, so one holding `@` (or a raw
# `/`) is masked whole; a later `@` in the path or query masks more than the password, never less.
URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:\"']*:)[^\s\"']*@")
QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|access_token)=)[^&#\s\"']*")


def redact_url(url: str) -> str:
    """The URL (or any text holding URLs) with passwords, `password=` and `access_token=` query values
    replaced by `***`: safe for logs and error messages."""
    return URL_PASSWORD.sub(r"\1***@", QUERY_SECRET.sub(r"\1***", url))  # the query first: it may hold `@`


def check_key(key: str) -> str:
    """A conversation key or message id, validated: a non-empty string of bounded length."""
    if not isinstance(key, str) or not key:
        raise ValueError("store key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"store key longer than {MAX_KEY_LENGTH} characters")
    return key


class Store(ABC):
    """Conversation memory. Implementations are thread-safe; `lock` also works across processes where
    the backend is shared (sqlite file, redis)."""

    url: str  # redacted
    retention: float = DEFAULT_RETENTION_DAYS * DAY_S  # seconds a record outlives its last write
    max_claims: int = MAX_INBOX_CLAIMS

    @property
    def inbox_max_age(self) -> float:
        """Seconds an inbox event may wait for its answer before it is dropped (never past retention)."""
        return min(self.retention, MAX_INBOX_AGE_S)

    @abstractmethod
    def get(self, conversation: str) -> ConversationRecord | None:
        """The stored record, or None for a conversation never seen (or forgotten)."""

    @abstractmethod
    def put(self, conversation: str, record: ConversationRecord) -> None:
        """Replace the record atomically: a crash mid-write leaves the previous record."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """The keys of the stored conversations that start with `prefix` (forgetting someone everywhere)."""

    @abstractmethod
    def delete(self, conversation: str) -> bool:
        """Forget a conversation; True if something was stored."""

    @abstractmethod
    def _acquire(self, conversation: str, timeout: float, lease: float, holder: str) -> object:
        """Take the conversation's lock as `holder` (a `holder_token`, already marked held), returning a
        token for `_release`; LockTimeout past `timeout`."""

    @abstractmethod
    def _release(self, conversation: str, token: object) -> None:
        """Give back a lock taken by `_acquire` (a no-op if its lease already expired and was taken over)."""

    @abstractmethod
    def seen(self, message_id: str, ttl: float) -> bool:
        """Atomically mark `message_id` as seen for `ttl` seconds; True if it already was (a duplicate)."""

    @abstractmethod
    def inbox_add(self, item_id: str, payload: bytes, owner: str, lease: float) -> bool:
        """Keep an event to be handled by `owner`, who has `lease` seconds before others may claim it;
        False (and nothing changed) if an event with this id is already kept."""

    @abstractmethod
    def inbox_done(self, item_id: str) -> None:
        """The event is handled (answered, or given up on): forget it."""

    @abstractmethod
    def inbox_claim(self, owner: str, lease: float, limit: int = 100,
                    abandoned: Callable[[str, str], bool] | None = None) -> list[tuple[str, bytes]]:
        """Take over, for `owner`, events whose lease expired (its own too: held that long, they were lost),
        whose holder is dead (`bot.infra.stores.owner.is_dead`), or for which `abandoned(item_id, holder)` says
        so (the caller knows nobody handles them); each is handed to one claimant only. An event claimed
        `max_claims` times already is dropped instead (`_dropped`), as is any older than `inbox_max_age`."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be used right now."""

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        return None

    @staticmethod
    def _dropped(item_id: str, claims: int | None = None) -> None:
        """Say that an inbox event was given up on, `claims` times claimed (None: too old): its platform and
        why, never its text."""
        why = "older than the inbox's maximum age" if claims is None else "every worker that handled it stopped"
        extra = {"item": item_id.split(":")[0], "why": why}
        if claims is not None:
            extra["claims"] = claims
        log.error("inbox: dropped an event", extra=extra)

    @contextmanager
    def lock(self, conversation: str, timeout: float = DEFAULT_LOCK_TIMEOUT,
             lease: float = DEFAULT_LOCK_LEASE) -> Iterator[None]:
        """Hold the conversation's lock for the body: one reply at a time per conversation.

        `lease` bounds how long a crashed holder can block others; keep the body shorter than it.
        """
        # Marked held before it can appear in the store: another thread of this process that saw our
        # token there unmarked would take it for a leftover of a failed release, and take the lock over.
        holder = holder_token()
        hold(holder)
        try:
            token = self._acquire(check_key(conversation), timeout, lease, holder)
        except BaseException:
            let_go(holder)
            raise
        try:
            yield
        finally:
            let_go(holder)  # from here on a leftover of this token is stale, even if releasing fails
            try:
                self._release(conversation, token)
            except StoreUnavailable as err:  # the holder is done: others may take the lock over now
                log.warning("lock not released: store unavailable", extra={"error": str(err)})

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class Schedule:
    """Due once every `every` seconds, and at once when made: when to prune a store without expiry."""

    def __init__(self, every: float = PRUNE_EVERY_S):
        self.every, self._next = every, 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every
        return True
