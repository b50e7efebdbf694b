"""Conversation stores, selected by URL: `memory://`, `sqlite:///path.db`, `redis://host:port/db`.

`sqlite:///talklike.db` is a path relative to the working directory, `sqlite:////var/lib/t.db` an
absolute one, `sqlite:///:memory:` a private in-memory database; `rediss://` is Redis over TLS.
Every store forgets a conversation `retention` seconds after its last write (TALKLIKE_RETENTION_DAYS).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.infra.stores.base import (
    DAY_S,
    DEFAULT_RETENTION_DAYS,
    BadStoreURL,
    LockTimeout,
    Store,
    StoreError,
    StoreUnavailable,
    redact_url,
)
from bot.infra.stores.record import ConversationRecord

DEFAULT_STORE_URL = "sqlite:///talklike.db"

__all__ = [
    "DEFAULT_STORE_URL",
    "BadStoreURL",
    "ConversationRecord",
    "LockTimeout",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def open_store(url: str, retention: float = DEFAULT_RETENTION_DAYS * DAY_S) -> Store:
    """The store a URL names, keeping records `retention` seconds after their last write; BadStoreURL for an
    unknown scheme or a malformed URL."""
    if not isinstance(url, str) or "://" not in url:
        raise BadStoreURL(f"store URL {url!r} must look like memory://, sqlite:///path.db or redis://host:port/0")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from bot.infra.stores.memory import MemoryStore

        return MemoryStore(url, retention)
    if scheme == "sqlite":
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise BadStoreURL(f"sqlite store URL {url!r} must be sqlite:///relative.db or sqlite:////absolute.db")
        from bot.infra.stores.sqlite import SQLiteStore

        return SQLiteStore(url[len(prefix) :], url=url, retention=retention)
    if scheme in ("redis", "rediss"):
        try:
            from bot.infra.stores.redis import RedisStore
        except ImportError as err:
            if err.name != "redis":
                raise
            raise BadStoreURL("the redis store needs the `redis` package (pip install redis)") from None

        return RedisStore(url, retention)
    raise BadStoreURL(f"unknown store {redact_url(url)!r} (use memory://, sqlite:///path.db or redis://host:port/0)")
