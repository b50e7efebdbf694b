"""`RedisStore`: conversation memory shared by several processes or machines (`redis://`, `rediss://`).

The conversation lock is `SET key token NX PX lease`, released by a Lua compare-and-delete so a holder
whose lease expired cannot free someone else's lock; a holder on this machine whose process died is
freed at once (same compare-and-delete). The inbox is a hash of payloads, a hash of holders, a sorted
set of lease expiries, a hash of claim counts and a sorted set of when each event came; a claim is a Lua
compare-and-set on the holder. Records expire `retention` seconds after their last write (`SET ... PX`), the
inbox's keys an inbox age after the last event came. Connection failures surface as `StoreUnavailable`
naming the URL without its password; the client reconnects by itself once the server is back.

The client also sends a command again when its connection broke before the reply came (a restarting
server), so a command may run twice. Every write here tells its own second run apart from someone else's
by a token of that one call: the lock's token, a `seen` mark's value, an inbox holder. Without that, a
message whose `seen` ran twice reads as answered before and is dropped, and an event whose add or claim
ran twice sits unclaimed until its lease ends.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from bot.infra.stores.base import (
    DAY_S,
    DEFAULT_RETENTION_DAYS,
    BadStoreURL,
    LockTimeout,
    Store,
    StoreError,
    StoreUnavailable,
    check_key,
    redact_url,
)
from bot.infra.stores.owner import is_dead, is_stale
from bot.infra.stores.record import ConversationRecord, RecordError

T = TypeVar("T")

PREFIX = "talklike:"
SOCKET_TIMEOUT_S = 5.0
POLL_S = (0.002, 0.05)
# Delete the lock only if it still holds our token (atomic on the server).
RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


# The inbox's keys: payloads, holders, lease expiries, claim counts, when each event came (KEYS[1..5]).
INBOX = (PREFIX + "inbox:payload", PREFIX + "inbox:owner", PREFIX + "inbox:lease", PREFIX + "inbox:claims",
         PREFIX + "inbox:added")
_FORGET_LUA = """
local function forget(id)
  redis.call('hdel', KEYS[1], id) redis.call('hdel', KEYS[2], id) redis.call('hdel', KEYS[4], id)
  redis.call('zrem', KEYS[3], id) redis.call('zrem', KEYS[5], id)
end
local function keep(ttl)
  for i = 1, #KEYS do redis.call('expire', KEYS[i], ttl) end
end
"""
# Reassign an inbox item if its holder is still the one we saw (or already us: this call running again);
# returns the payload, nil if we lost, or the claim count if it was claimed ARGV[5] times and is dropped.
CLAIM_LUA = _FORGET_LUA + """
local holder = redis.call('hget', KEYS[2], ARGV[1])
if holder == ARGV[3] then return redis.call('hget', KEYS[1], ARGV[1]) end
if holder ~= ARGV[2] then return false end
local claims = tonumber(redis.call('hget', KEYS[4], ARGV[1]) or '0')
if claims >= tonumber(ARGV[5]) then
  forget(ARGV[1])
  return claims
end
redis.call('hset', KEYS[2], ARGV[1], ARGV[3])
redis.call('zadd', KEYS[3], ARGV[4], ARGV[1])
redis.call('hincrby', KEYS[4], ARGV[1], 1)
keep(ARGV[6])
return redis.call('hget', KEYS[1], ARGV[1])
"""
# Keep an inbox item unless one with its id is kept already; 1 if added (or added by this call before).
ADD_LUA = _FORGET_LUA + """
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  if redis.call('hget', KEYS[2], ARGV[1]) == ARGV[3] then return 1 end
  return 0
end
redis.call('hset', KEYS[2], ARGV[1], ARGV[3])
redis.call('zadd', KEYS[3], ARGV[4], ARGV[1])
redis.call('zadd', KEYS[5], ARGV[5], ARGV[1])
keep(ARGV[6])
return 1
"""
# Drop the items that came before ARGV[1]; returns their ids.
DROP_OLD_LUA = _FORGET_LUA + """
local ids = redis.call('zrangebyscore', KEYS[5], '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do forget(id) end
return ids
"""
DONE_LUA = _FORGET_LUA + "forget(ARGV[1]) return 1"


class RedisStore(Store):
    """Conversation memory in Redis; keys are prefixed `talklike:conv:`, `talklike:lock:`, `talklike:seen:`."""

    def __init__(self, url: str, retention: float = DEFAULT_RETENTION_DAYS * DAY_S):
        self.url, self.retention = redact_url(url), retention
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_S,
                socket_connect_timeout=SOCKET_TIMEOUT_S,
                # A restarted server drops our connections: retry a few times, briefly, then report.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                health_check_interval=30,
            )
        except ValueError as err:
            raise BadStoreURL(f"bad redis URL {self.url}: {err}") from err
        self._release_script = self._client.register_script(RELEASE_LUA)
        self._claim_script = self._client.register_script(CLAIM_LUA)
        self._add_script = self._client.register_script(ADD_LUA)
        self._drop_old_script = self._client.register_script(DROP_OLD_LUA)
        self._done_script = self._client.register_script(DONE_LUA)

    def _run(self, fn: Callable[[redis.Redis], T]) -> T:
        try:
            return fn(self._client)
        except (RedisConnectionError, RedisTimeoutError) as err:
            raise StoreUnavailable(f"store {self.url} is unavailable: {err}") from err
        except RedisError as err:
            raise StoreError(f"store {self.url}: {err}") from err

    def get(self, conversation: str) -> ConversationRecord | None:
        key = PREFIX + "conv:" + check_key(conversation)
        data = self._run(lambda r: r.get(key))
        if data is None:
            return None
        try:
            return ConversationRecord.from_bytes(data)
        except RecordError as err:
            raise StoreError(f"store {self.url}: conversation record unreadable ({err})") from err

    def put(self, conversation: str, record: ConversationRecord) -> None:
        key, data = PREFIX + "conv:" + check_key(conversation), record.to_bytes()
        ttl = max(1, int(self.retention * 1000))
        self._run(lambda r: r.set(key, data, px=ttl))  # one SET: readers see the old value or the new one

    def keys(self, prefix: str) -> list[str]:
        head = PREFIX + "conv:"
        pattern = head + "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix) + "*"
        found = self._run(lambda r: list(r.scan_iter(match=pattern, count=500)))
        return [key.decode("utf-8")[len(head):] for key in found]

    def delete(self, conversation: str) -> bool:
        key = PREFIX + "conv:" + check_key(conversation)
        return bool(self._run(lambda r: r.delete(key)))

    def _acquire(self, conversation: str, timeout: float, lease: float, holder: str) -> object:
        key, token = PREFIX + "lock:" + conversation, holder
        deadline = time.monotonic() + timeout
        delay = POLL_S[0]
        while not self._run(lambda r: r.set(key, token, nx=True, px=max(1, int(lease * 1000)))):
            current = self._run(lambda r: r.get(key))
            if current == token.encode():  # our SET ran before its reply was lost: ours
                break
            if current is not None and is_stale(current.decode("utf-8", "replace")):
                self._run(lambda r, h=current: self._release_script(keys=[key], args=[h], client=r))
                continue
            if time.monotonic() + delay > deadline:
                raise LockTimeout(f"conversation lock not free after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, POLL_S[1])
        return token

    def _release(self, conversation: str, token: object) -> None:
        key = PREFIX + "lock:" + conversation
        self._run(lambda r: self._release_script(keys=[key], args=[token], client=r))

    def seen(self, message_id: str, ttl: float) -> bool:
        key, mark = PREFIX + "seen:" + check_key(message_id), uuid.uuid4().hex.encode()
        if self._run(lambda r: r.set(key, mark, nx=True, px=max(1, int(ttl * 1000)))):
            return False
        return self._run(lambda r: r.get(key)) != mark  # ours: this SET ran before its reply was lost

    def inbox_add(self, item_id: str, payload: bytes, owner: str, lease: float) -> bool:
        item, holder, now = check_key(item_id), _one_call(owner), time.time()
        return bool(self._run(lambda r: self._add_script(
            keys=list(INBOX), args=[item, payload, holder, now + lease, now, self._inbox_ttl()], client=r)))

    def inbox_done(self, item_id: str) -> None:
        self._run(lambda r: self._done_script(keys=list(INBOX), args=[item_id], client=r))

    def inbox_claim(self, owner: str, lease: float, limit: int = 100,
                    abandoned: Callable[[str, str], bool] | None = None) -> list[tuple[str, bytes]]:
        now = time.time()
        for old in self._run(lambda r: self._drop_old_script(keys=list(INBOX), args=[now - self.inbox_max_age],
                                                             client=r)):
            self._dropped(old.decode("utf-8", "replace"))
        holders = self._run(lambda r: r.hgetall(INBOX[1]))
        expiries = dict(self._run(lambda r: r.zrange(INBOX[2], 0, -1, withscores=True)))
        claimed = []
        for raw_id, raw_holder in holders.items():
            if len(claimed) >= limit:
                break
            holder, item = raw_holder.decode("utf-8", "replace"), raw_id.decode("utf-8", "replace")
            if (expiries.get(raw_id, 0.0) >= now and (holder == owner or not is_dead(holder))
                    and not (abandoned and abandoned(item, holder))):
                continue
            answer = self._run(lambda r, i=raw_id, h=raw_holder: self._claim_script(
                keys=list(INBOX), args=[i, h, _one_call(owner), now + lease, self.max_claims, self._inbox_ttl()],
                client=r))
            if isinstance(answer, int):
                self._dropped(item, answer)
            elif answer is not None:
                claimed.append((item, bytes(answer)))
        return claimed

    def _inbox_ttl(self) -> int:
        """Seconds the inbox's keys outlive the last event added (or claimed): all of it is past its age then."""
        return max(1, math.ceil(self.inbox_max_age))

    def ping(self) -> None:
        self._run(lambda r: r.ping())

    def close(self) -> None:
        self._client.close()


def _one_call(owner: str) -> str:
    """`owner` as the holder of one add or claim: still `host/pid/…` for `is_dead`, and unique to the call."""
    return f"{owner}/{uuid.uuid4().hex[:16]}"
