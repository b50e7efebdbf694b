"""`SQLiteStore`: the embedded default — one file, survives restarts, shared by worker processes.

Every write is one SQLite transaction (WAL journal), so a crash mid-write leaves the previous record.
The conversation lock is a row in a `locks` table with an owner token and an expiry, taken with one
atomic upsert; a holder whose process died (one machine: the pid tells) is taken over at once, and any
other holder blocks for at most its lease. Within a process, threads queue on a condition first so only
one of them polls the table. The inbox is a table too; claims are compare-and-set updates.

The file is created readable by its owner only (0600; SQLite gives its `-wal` and `-shm` files the same mode),
deleted rows are overwritten (`secure_delete`), and what is past retention is deleted when the store opens
and about hourly after (`Schedule`); a record past retention reads as absent meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from bot.infra.stores.base import (
    DAY_S,
    DEFAULT_RETENTION_DAYS,
    LockTimeout,
    Schedule,
    Store,
    StoreError,
    StoreUnavailable,
    check_key,
)
from bot.infra.stores.local_locks import LocalKeyLocks
from bot.infra.stores.owner import is_dead, is_stale
from bot.infra.stores.record import ConversationRecord, RecordError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, data BLOB NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, payload BLOB NOT NULL, owner TEXT NOT NULL,
                                  expires REAL NOT NULL, claims INTEGER NOT NULL DEFAULT 0,
                                  added REAL NOT NULL DEFAULT 0);
"""
# Columns later releases added to a table an earlier one created: name -> its definition.
ADDED_COLUMNS = {"inbox": {"claims": "INTEGER NOT NULL DEFAULT 0", "added": "REAL NOT NULL DEFAULT 0"}}
BUSY_TIMEOUT_S = 10.0  # how long one statement waits for another process's write transaction
POLL_S = (0.002, 0.05)  # lock polling interval: first, cap (doubling in between)


class SQLiteStore(Store):
    """Conversation memory in an SQLite file (`path`), or in memory for `:memory:`."""

    def __init__(self, path: str, url: str | None = None, retention: float = DEFAULT_RETENTION_DAYS * DAY_S):
        self.path, self.retention = path, retention
        self.url = url or f"sqlite:///{path}"
        self._mutex = threading.RLock()  # one connection per process, used by one thread at a time
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._locks = LocalKeyLocks()  # threads of this process queue here instead of polling the table
        self._prune = Schedule()
        self._maybe_prune()  # open now: a bad path fails at startup, not on the first message

    # -- connection ---------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross fork(): a worker process opens its own.
        if self._conn is None or self._pid != os.getpid():
            if self.path != ":memory:":
                _create_private(self.path)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA secure_delete=ON")  # a deleted record is overwritten, not left in free pages
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            conn.executescript(SCHEMA)
            _add_columns(conn)
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
        key, oldest = check_key(conversation), time.time() - self.retention
        row = self._run(lambda c: c.execute("SELECT data FROM conversations WHERE key = ? AND updated >= ?",
                                            (key, oldest)).fetchone())
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
        self._maybe_prune()

    def keys(self, prefix: str) -> list[str]:
        oldest = time.time() - self.retention
        rows = self._run(lambda c: c.execute("SELECT key FROM conversations WHERE substr(key, 1, ?) = ? "
                                             "AND updated >= ?", (len(prefix), prefix, oldest)).fetchall())
        return [key for (key,) in rows]

    def delete(self, conversation: str) -> bool:
        key = check_key(conversation)
        cur = self._run(lambda c: c.execute("DELETE FROM conversations WHERE key = ?", (key,)))
        return cur.rowcount > 0

    # -- lock ---------------------------------------------------------------------------------------
    def _try_lock(self, key: str, owner: str, lease: float) -> bool:
        if self._lock_once(key, owner, lease):
            return True
        # Held: by a process of this machine that died? Then free it (only if still that holder's) and retry.
        row = self._run(lambda c: c.execute("SELECT owner FROM locks WHERE key = ?", (key,)).fetchone())
        if row is not None and is_stale(row[0]):
            self._run(lambda c: c.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, row[0])))
            return self._lock_once(key, owner, lease)
        return False

    def _lock_once(self, key: str, owner: str, lease: float) -> bool:
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

    def _acquire(self, conversation: str, timeout: float, lease: float, holder: str) -> object:
        deadline = time.monotonic() + timeout
        self._locks.acquire(conversation, deadline, timeout)
        delay = POLL_S[0]
        try:
            while not self._try_lock(conversation, holder, lease):
                if time.monotonic() + delay > deadline:
                    raise LockTimeout(f"conversation lock not free after {timeout:g} s (held by another process)")
                time.sleep(delay)
                delay = min(delay * 2, POLL_S[1])
        except BaseException:
            self._locks.release(conversation)
            raise
        return holder

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

    # -- retention ----------------------------------------------------------------------------------
    def _maybe_prune(self) -> None:
        """Delete what is past retention, if it is time to (see `Schedule`)."""
        if self._prune.due():
            self.prune()

    def prune(self) -> int:
        """Delete records not written for `retention` seconds and expired duplicate marks (inbox events past
        their age go in `inbox_claim`); how many records went."""
        now = time.time()

        def prune(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM seen WHERE expires < ?", (now,))
            gone = c.execute("DELETE FROM conversations WHERE updated < ?", (now - self.retention,)).rowcount
            if gone and self.path != ":memory:":
                # The write-ahead log still holds the deleted records' pages: copy it into the (overwritten)
                # database and empty it. Best effort: with another process reading just now, it waits for the
                # next prune.
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return gone

        return self._run(prune)

    # -- inbox --------------------------------------------------------------------------------------
    def inbox_add(self, item_id: str, payload: bytes, owner: str, lease: float) -> bool:
        key, now = check_key(item_id), time.time()
        cur = self._run(lambda c: c.execute(
            "INSERT OR IGNORE INTO inbox (id, payload, owner, expires, added) VALUES (?, ?, ?, ?, ?)",
            (key, sqlite3.Binary(payload), owner, now + lease, now)))
        return cur.rowcount == 1

    def inbox_done(self, item_id: str) -> None:
        self._run(lambda c: c.execute("DELETE FROM inbox WHERE id = ?", (item_id,)))

    def inbox_claim(self, owner: str, lease: float, limit: int = 100,
                    abandoned: Callable[[str, str], bool] | None = None) -> list[tuple[str, bytes]]:
        self._maybe_prune()  # every worker's inbox pass comes here every few seconds, traffic or not
        now = time.time()
        rows = self._run(lambda c: c.execute("SELECT id, owner, expires, claims, added FROM inbox").fetchall())
        claimed = []
        for item_id, holder, expires, claims, added in rows:
            if added < now - self.inbox_max_age:
                if self._run(lambda c, i=item_id: c.execute("DELETE FROM inbox WHERE id = ?", (i,)).rowcount):
                    self._dropped(item_id)
                continue
            if len(claimed) >= limit:
                break
            if (expires >= now and (holder == owner or not is_dead(holder))
                    and not (abandoned and abandoned(item_id, holder))):
                continue
            if claims >= self.max_claims:
                if self._run(lambda c, i=item_id, h=holder: c.execute(
                        "DELETE FROM inbox WHERE id = ? AND owner = ?", (i, h)).rowcount):
                    self._dropped(item_id, claims)
                continue
            # Compare-and-set: only one claimant wins an item, whoever else looks at the same time.
            cur = self._run(lambda c, i=item_id, h=holder: c.execute(
                "UPDATE inbox SET owner = ?, expires = ?, claims = claims + 1 WHERE id = ? AND owner = ?",
                (owner, now + lease, i, h)))
            if cur.rowcount == 1:
                row = self._run(lambda c, i=item_id: c.execute("SELECT payload FROM inbox WHERE id = ?", (i,)).fetchone())
                if row is not None:
                    claimed.append((item_id, bytes(row[0])))
        return claimed

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1").fetchone())

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _create_private(path: str) -> None:
    """Create the database file readable and writable by its owner only, whatever the umask (an existing
    file keeps its mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as err:
        raise sqlite3.OperationalError(f"unable to open database file ({err.strerror})") from err


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a table an earlier release created up to `SCHEMA`; an inbox event kept before counts as added now."""
    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if name in have:
                continue
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError as err:  # another process added it first
                if "duplicate column" not in str(err):
                    raise
            if name == "added":
                conn.execute(f"UPDATE {table} SET added = ? WHERE added = 0", (time.time(),))
