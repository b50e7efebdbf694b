"""`SQLiteStore`: the embedded default — one file, survives restarts, shared by worker processes.

Every write is one SQLite transaction (WAL journal), so a crash mid-write leaves the previous record.
The conversation lock is a row in a `locks` table with an owner token and an expiry (a crashed holder
blocks others for at most its lease), taken with one atomic upsert; within a process, threads queue on a
condition first so only one of them polls the table.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from bot.stores.base import LockTimeout, Store, StoreError, StoreUnavailable, check_key
from bot.stores.local_locks import LocalKeyLocks
from bot.stores.record import ConversationRecord, RecordError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, data BLOB NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, expires REAL NOT NULL);
"""
BUSY_TIMEOUT_S = 10.0  # how long one statement waits for another process's write transaction
POLL_S = (0.002, 0.05)  # lock polling interval: first, cap (doubling in between)


class SQLiteStore(Store):
    """Conversation memory in an SQLite file (`path`), or in memory for `:memory:`."""

    def __init__(self, path: str, url: str | None = None):
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self._mutex = threading.RLock()  # one connection per process, used by one thread at a time
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._locks = LocalKeyLocks()  # threads of this process queue here instead of polling the table
        self._run(lambda conn: None)  # open now: a bad path fails at startup, not on the first message

    # -- connection ---------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross fork(): a worker process opens its own.
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            conn.executescript(SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._mutex:
            try:
                return fn(self._connect())
            except sqlite3.OperationalError as err:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.rollback()
                raise StoreUnavailable(f"store {self.url} is unavailable: {err}") from err
            except sqlite3.DatabaseError as err:
                raise StoreError(f"store {self.url}: {err}") from err

    # -- records ------------------------------------------------------------------------------------
    def get(self, conversation: str) -> ConversationRecord | None:
        key = check_key(conversation)
        row = self._run(lambda c: c.execute("SELECT data FROM conversations WHERE key = ?", (key,)).fetchone())
        if row is None:
            return None
        try:
            return ConversationRecord.from_bytes(bytes(row[0]))
        except RecordError as err:
            raise StoreError(f"store {self.url}: conversation record unreadable ({err})") from err

    def put(self, conversation: str, record: ConversationRecord) -> None:
        key, data = check_key(conversation), record.to_bytes()
        self._run(
            lambda c: c.execute(
                "INSERT INTO conversations (key, data, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET data = excluded.data, updated = excluded.updated",
                (key, sqlite3.Binary(data), time.time()),
            )
        )

    def delete(self, conversation: str) -> bool:
        key = check_key(conversation)
        cur = self._run(lambda c: c.execute("DELETE FROM conversations WHERE key = ?", (key,)))
        return cur.rowcount > 0

    # -- lock ---------------------------------------------------------------------------------------
    def _try_lock(self, key: str, owner: str, lease: float) -> bool:
        now = time.time()
        # One statement, hence atomic: insert, or take over a row whose lease has expired.
        cur = self._run(
            lambda c: c.execute(
                "INSERT INTO locks (key, owner, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires "
                "WHERE locks.expires < ?",
                (key, owner, now + lease, now),
            )
        )
        return cur.rowcount == 1

    def _acquire(self, conversation: str, timeout: float, lease: float) -> object:
        deadline = time.monotonic() + timeout
        self._locks.acquire(conversation, deadline, timeout)
        owner = f"{os.getpid()}:{uuid.uuid4().hex}"
        delay = POLL_S[0]
        try:
            while not self._try_lock(conversation, owner, lease):
                if time.monotonic() + delay > deadline:
                    raise LockTimeout(f"conversation lock not free after {timeout:g} s (held by another process)")
                time.sleep(delay)
                delay = min(delay * 2, POLL_S[1])
        except BaseException:
            self._locks.release(conversation)
            raise
        return owner

    def _release(self, conversation: str, token: object) -> None:
        try:
            self._run(lambda c: c.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (conversation, token)))
        finally:
            self._locks.release(conversation)

    # -- dedupe, health -----------------------------------------------------------------------------
    def seen(self, message_id: str, ttl: float) -> bool:
        key, now = check_key(message_id), time.time()

        def mark(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT INTO seen (id, expires) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET expires = excluded.expires WHERE seen.expires < ?",
                (key, now + ttl, now),
            )
            if cur.rowcount == 1 and int.from_bytes(os.urandom(1), "little") < 3:
                c.execute("DELETE FROM seen WHERE expires < ?", (now,))  # now and then, keep the table small
            return cur.rowcount == 0

        return self._run(mark)

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1").fetchone())

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
