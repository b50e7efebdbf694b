"""Conversation stores: memory, sqlite and a real redis-server behave the same."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import uuid

import numpy as np
import pytest

from bot.infra.stores import (
    BadStoreURL,
    ConversationRecord,
    LockTimeout,
    StoreError,
    StoreUnavailable,
    open_store,
)
from bot.infra.stores.owner import this_machine
from bot.infra.stores.record import RecordError
from talklike.errors import UserError


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'talk.db'}"
    else:
        url = request.getfixturevalue("redis_server").url
    s = open_store(url)
    yield s
    s.close()


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


def record(seed: int = 0) -> ConversationRecord:
    rng = np.random.default_rng(seed)
    return ConversationRecord(
        persona="Ana",
        settings={"temperature": 0.5},
        state=rng.standard_normal((2, 2, 8)).astype(np.float32),
        speaker=rng.random(3).astype(np.float32),
        transcript=[{"author": "Bob", "text": "ça va? 😂\nsecond line", "ts": 1.5}],
        last_timestamp=1.5,
        messages=7,
    )


def test_round_trip_is_exact(store):
    k, r = key(), record()
    assert store.get(k) is None
    store.put(k, r)
    back = store.get(k)
    assert back.persona == "Ana" and back.settings == {"temperature": 0.5} and back.messages == 7
    assert back.transcript == r.transcript and back.last_timestamp == 1.5
    np.testing.assert_array_equal(back.state, r.state)
    np.testing.assert_array_equal(back.speaker, r.speaker)
    store.put(k, record(1))  # replace
    np.testing.assert_array_equal(store.get(k).state, record(1).state)


def test_forget(store):
    k = key()
    store.put(k, record())
    assert store.delete(k) is True
    assert store.get(k) is None
    assert store.delete(k) is False


def test_lock_serializes_threads(store):
    k, inside, overlaps = key(), [], []

    def worker():
        for _ in range(5):
            with store.lock(k):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.002)
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


def test_lock_timeout_and_other_conversations_free(store):
    k = key()
    with store.lock(k):
        with pytest.raises(LockTimeout):
            with store.lock(k, timeout=0.1):
                pass
        with store.lock(key(), timeout=1):  # a different conversation is not blocked
            pass
    with store.lock(k, timeout=1):  # released
        pass


def test_seen_is_atomic(store):
    mid, results = key(), []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(store.seen(mid, ttl=60))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] + [True] * 7


def test_seen_expires(store):
    mid = key()
    assert store.seen(mid, ttl=0.05) is False
    assert store.seen(mid, ttl=0.05) is True
    time.sleep(0.1)
    assert store.seen(mid, ttl=60) is False


def test_ping(store):
    store.ping()


# --- URLs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["postgres://x/y", "talklike.db", "sqlite://", "", "redis://host:notaport/0"])
def test_bad_url_is_a_user_error(url):
    with pytest.raises(BadStoreURL) as info:
        open_store(url).ping()
    assert isinstance(info.value, UserError)


def test_sqlite_in_memory_and_relative_path(tmp_path, monkeypatch):
    s = open_store("sqlite:///:memory:")
    s.put("a", record())
    assert s.get("a").messages == 7
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///rel.db").put("a", record())
    assert (tmp_path / "rel.db").exists()


def test_sqlite_survives_reopen(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    open_store(url).put("c", record())
    assert open_store(url).get("c").persona == "Ana"


def test_corrupt_record_is_a_store_error(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 't.db'}")
    s._connect().execute("INSERT INTO conversations VALUES ('x', ?, ?)", (b"garbage", time.time()))
    with pytest.raises(StoreError, match="unreadable"):
        s.get("x")
    with pytest.raises(RecordError):
        ConversationRecord.from_bytes(record().to_bytes()[:-3])


def test_sqlite_unwritable_path_is_unavailable(tmp_path):
    with pytest.raises(StoreUnavailable, match="sqlite:///"):
        open_store(f"sqlite:///{tmp_path / 'missing-dir' / 't.db'}")


# --- sqlite across processes -------------------------------------------------------------------------
def _locked_appender(url: str, path: str, tag: str, n: int) -> None:
    s = open_store(url)
    for i in range(n):
        with s.lock("shared", timeout=30):
            # Two writes with a pause between: interleaving would split a pair.
            with open(path, "a") as f:
                f.write(f"{tag}{i}a\n")
            time.sleep(0.003)
            with open(path, "a") as f:
                f.write(f"{tag}{i}b\n")


def test_sqlite_lock_serializes_processes(tmp_path):
    url, log = f"sqlite:///{tmp_path / 't.db'}", str(tmp_path / "log.txt")
    open_store(url)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_locked_appender, args=(url, log, tag, 8)) for tag in "xyz"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = open(log).read().split()
    assert len(lines) == 48
    for a, b in zip(lines[::2], lines[1::2], strict=True):
        assert a[:-1] == b[:-1] and a.endswith("a") and b.endswith("b")


def _crash_mid_write(url: str) -> None:
    s = open_store(url)
    conn = s._connect()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE conversations SET data = ? WHERE key = 'c'", (b"half-written",))
    conn.execute("INSERT INTO conversations VALUES ('d', ?, ?)", (record(2).to_bytes(), time.time()))
    os._exit(9)  # dies inside the transaction, like a killed worker


def test_sqlite_crash_mid_write_keeps_previous_record(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    s = open_store(url)
    s.put("c", record())
    p = multiprocessing.get_context("spawn").Process(target=_crash_mid_write, args=(url,))
    p.start()
    p.join(30)
    assert p.exitcode == 9
    again = open_store(url)
    np.testing.assert_array_equal(again.get("c").state, record().state)
    assert again.get("d") is None
    again.put("c", record(3))  # the file is still writable: the dead writer's lock is gone
    np.testing.assert_array_equal(again.get("c").state, record(3).state)


def test_sqlite_lock_of_crashed_process_expires(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    s = open_store(url)
    # A lock row left by a process that died holding it, with a short lease.
    s._connect().execute("INSERT INTO locks VALUES ('c', 'dead:1', ?)", (time.time() + 0.2,))
    with pytest.raises(LockTimeout, match="another process"):
        with s.lock("c", timeout=0.05):
            pass
    with s.lock("c", timeout=5):
        pass


# --- redis failures ----------------------------------------------------------------------------------
def test_redis_down_is_unavailable_without_password():
    from conftest import free_port

    pytest.importorskip("redis", reason="the redis client package is not installed")
    s = open_store(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as info:
        s.get("x")
    assert "hunter2" not in str(info.value) and "127.0.0.1" in str(info.value)
    with pytest.raises(StoreUnavailable):
        s.ping()


def test_redis_restart_recovers(own_redis_server):
    s = open_store(own_redis_server.url)
    s.put("c", record())
    assert s.get("c").messages == 7
    own_redis_server.stop()
    with pytest.raises(StoreUnavailable):
        s.put("c", record(1))
    own_redis_server.start()  # same port, empty (no persistence)
    s.ping()
    assert s.get("c") is None
    s.put("c", record(1))
    np.testing.assert_array_equal(s.get("c").state, record(1).state)
    with s.lock("c", timeout=1):
        pass


# --- the inbox, and holders that died ----------------------------------------------------------------
def _dead_holder() -> str:
    """The holder name a process of this machine had before it died (a killed gunicorn worker)."""
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=time.sleep, args=(0,))
    p.start()
    p.join(30)
    return f"{this_machine()}/{p.pid}/deadbeef"


def test_inbox_items_are_claimed_once_after_their_holder_dies_or_its_lease_ends(store):
    from bot.infra.stores.owner import process_owner

    me, dead = process_owner(), _dead_holder()
    a, b, c = key(), key(), key()
    store.inbox_add(a, b"mine", me, lease=60)
    store.inbox_add(b, b"orphan \xff", dead, lease=60)  # its holder was killed mid-reply
    store.inbox_add(c, b"late", "elsewhere/1/x", lease=0.05)  # another machine's, lease about to end
    assert store.inbox_claim(me, lease=60) == [(b, b"orphan \xff")]  # at once: the holder is dead
    time.sleep(0.1)
    assert store.inbox_claim(me, lease=60) == [(c, b"late")]  # after the lease
    assert store.inbox_claim(me, lease=60) == []  # nothing claimed twice, own items not "recovered"
    assert store.inbox_claim("other/2/y", lease=60) == []  # all held by a live holder now
    for item in (a, b, c):
        store.inbox_done(item)
    time.sleep(0.01)
    assert store.inbox_claim("other/2/y", lease=0) == []


def test_concurrent_claims_hand_each_item_to_one_claimant(store):
    dead = _dead_holder()
    items = {key() for _ in range(20)}
    for item in items:
        store.inbox_add(item, item.encode(), dead, lease=60)
    got: list[list] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda k: got[k].extend(store.inbox_claim(f"c/{k}/z", 60)), args=(k,))
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [item for g in got for item, _ in g]
    assert sorted(claimed) == sorted(items)  # every item, once
    for item in items:
        store.inbox_done(item)


def test_a_lock_held_by_a_dead_process_of_this_machine_is_taken_at_once(store, tmp_path):
    if store.url.startswith("memory"):
        pytest.skip("the memory store lives in one process: its locks die with it")
    k, dead = key(), _dead_holder() + "/token"
    if store.url.startswith("sqlite"):
        store._connect().execute("INSERT INTO locks VALUES (?, ?, ?)", (k, dead, time.time() + 600))
    else:
        store._client.set("talklike:lock:" + k, dead, px=600_000)
    started = time.monotonic()
    with store.lock(k, timeout=5):
        pass
    assert time.monotonic() - started < 1  # not the 600 s lease


def test_an_inbox_item_is_kept_once_and_a_lost_own_item_comes_back_after_its_lease(store):
    from bot.infra.inbox import Inbox
    from bot.infra.stores.owner import process_owner

    me, k = process_owner(), key()
    assert store.inbox_add(k, b"first", me, lease=0.05) is True
    assert store.inbox_add(k, b"again", "other/1/x", lease=60) is False  # a redelivery in flight: unchanged
    time.sleep(0.1)  # held past its lease by this very process: lost here, so it comes back
    assert store.inbox_claim(me, lease=60) == [(k, b"first")]
    store.inbox_done(k)
    # Admission: kept first, then checked against what was answered before.
    inbox, answered = Inbox(store, lease=60), {k}
    assert inbox.admit(k, b"late redelivery", lambda i: i in answered) is False
    assert store.inbox_claim("other/2/y", lease=0) == []  # and not left behind
    fresh = key()
    assert inbox.admit(fresh, b"new", lambda i: i in answered) is True
    assert inbox.admit(fresh, b"new", lambda i: i in answered) is False  # while it is being answered
    inbox.done(fresh)


def test_a_lock_this_process_failed_to_release_is_taken_at_once(store):
    from bot.infra.stores.owner import holder_token

    if store.url.startswith("memory"):
        pytest.skip("the memory store's locks cannot fail to release")
    k, leftover = key(), holder_token()  # ours, but nobody holds it any more (the store was down at release)
    if store.url.startswith("sqlite"):
        store._connect().execute("INSERT INTO locks VALUES (?, ?, ?)", (k, leftover, time.time() + 600))
    else:
        store._client.set("talklike:lock:" + k, leftover, px=600_000)
    started = time.monotonic()
    with store.lock(k, timeout=5):
        # while it is held, a second taker in this process waits: a live hold is never stale
        with pytest.raises(LockTimeout):
            with open_store(store.url).lock(k, timeout=0.2):
                pass
    assert time.monotonic() - started < 2


def test_a_lock_just_taken_is_never_taken_for_a_failed_release(store):
    # The gap between the store accepting our token and the hold being marked in this process: another
    # thread looking at the lock in that gap must see a live hold, not a leftover to take over.
    if store.url.startswith("memory"):
        pytest.skip("the memory store's locks cannot fail to release")
    k, in_gap, done = key(), threading.Event(), threading.Event()
    taken = type(store)._acquire

    def acquire_then_pause(*args):
        token = taken(store, *args)
        in_gap.set()
        done.wait(10)
        return token

    store._acquire = acquire_then_pause
    def hold_it() -> None:
        with store.lock(k, timeout=5):
            pass

    holder = threading.Thread(target=hold_it)
    holder.start()
    assert in_gap.wait(10)
    try:
        with pytest.raises(LockTimeout):
            with open_store(store.url).lock(k, timeout=0.3):
                pass
    finally:
        done.set()
        holder.join()


def _lose_the_next_reply(store, command: str) -> dict:
    """The next `command` runs on the server but its reply is lost (the connection breaks, as when Redis
    restarts): redis-py reconnects and sends it again."""
    import redis

    client, lost = store._client, {"count": 0}
    send = client._send_command_parse_response

    def send_and_lose(conn, command_name, *args, **options):
        result = send(conn, command_name, *args, **options)
        if command_name == command and not lost["count"]:
            lost["count"] += 1
            raise redis.exceptions.ConnectionError("connection lost before the reply")
        return result

    client._send_command_parse_response = send_and_lose
    return lost


@pytest.mark.parametrize("operation", ["lock", "seen", "inbox_add", "inbox_claim"])
def test_a_redis_write_sent_again_after_a_lost_reply_still_reads_as_ours(redis_server, operation):
    from bot.infra.stores.owner import process_owner

    store, k = open_store(redis_server.url), key()
    if operation == "inbox_claim":
        store.inbox_add(k, b"orphan", _dead_holder() + "/x", lease=60)
    lost = _lose_the_next_reply(store, "EVALSHA" if operation.startswith("inbox") else "SET")
    if operation == "lock":
        started = time.monotonic()
        with store.lock(k, timeout=2):  # not LockTimeout: the lock that SET took is ours
            pass
        assert time.monotonic() - started < 1
    elif operation == "seen":
        assert store.seen(k, ttl=60) is False  # the mark is ours: this message was not seen before
        assert store.seen(k, ttl=60) is True
    elif operation == "inbox_add":
        assert store.inbox_add(k, b"event", process_owner(), lease=60) is True  # kept by us: handle it
        assert store.inbox_add(k, b"event", process_owner(), lease=60) is False
        store.inbox_done(k)
    else:
        assert [item for item, _ in store.inbox_claim(process_owner(), lease=60)] == [k]
        store.inbox_done(k)
    assert lost["count"] == 1  # the reply really was lost, and the command sent again
    store.close()


def test_an_event_kept_while_its_admission_failed_is_recovered_on_the_next_pass(store):
    # The store kept the event, but the reply saying so was lost (a server stopping right after the
    # write): the platform heard 503, and its redelivery finds the event kept already. Nobody here handles
    # it, so the next recovery pass hands it out: not a lease (here 600 s) later.
    from bot.infra.inbox import Inbox

    k, got = key(), []
    inbox, other = Inbox(store, lease=600), Inbox(open_store(store.url) if "memory" not in store.url else store, 600)
    for box in (inbox, other):
        box.register("test:", lambda item, payload: got.append((item, payload)), lambda item: store.seen(item, 60))
    real_add = store.inbox_add

    def kept_but_the_reply_lost(*args, **kwargs):
        real_add(*args, **kwargs)
        raise StoreUnavailable("connection lost before the reply")

    store.inbox_add = kept_but_the_reply_lost
    seen = lambda item: store.seen(item, 60)  # noqa: E731
    with pytest.raises(StoreUnavailable):
        inbox.admit(k, b"event", seen)
    store.inbox_add = real_add
    assert inbox.admit(k, b"event", seen) is False  # the redelivery: kept already
    assert inbox.recover_now() == 1 and got == [(k, b"event")]
    assert inbox.recover_now() == 0 and other.recover_now() == 0  # handed out once, and now being handled
    inbox.done(k)
    # the platform, which heard 503 before, delivers it once more after it was answered: dropped
    assert inbox.admit(k, b"event", seen) is False
    # an event being handled is never taken for abandoned, by any Inbox of the process
    fresh = key()
    assert inbox.admit(fresh, b"new", lambda item: False) is True
    assert inbox.recover_now() == 0 and other.recover_now() == 0
    inbox.done(fresh)
    assert got == [(k, b"event")]
    if other.store is not store:
        other.store.close()


def test_a_redelivery_while_its_event_is_answered_here_leaves_it_held(store):
    from bot.infra.inbox import Inbox

    inbox, k, got = Inbox(store, lease=600), key(), []
    inbox.register("test:", lambda item, payload: got.append(item))
    assert inbox.admit(k, b"event", lambda item: False) is True  # being answered by a thread here
    assert inbox.admit(k, b"event", lambda item: False) is False  # the platform's copy, meanwhile
    assert inbox.recover_now() == 0 and got == []  # still held: not handed out a second time
    inbox.done(k)


# --- liveness: replicas that share a hostname ---------------------------------------------------------
def test_a_holder_with_this_hostname_in_another_pid_space_is_never_judged_dead():
    import socket

    from bot.infra.stores.owner import is_dead, is_stale

    host, gone = socket.gethostname(), _dead_holder().split("/")[1]  # a pid no process has here
    assert this_machine().startswith(host + "~")
    assert is_dead(f"{this_machine()}/{gone}/x")  # this boot and pid namespace, its process gone: dead at once
    for other in (f"{host}~0123456789ab/{gone}/x",  # another container on this host (host networking)
                  f"{host}/{gone}/x"):  # an earlier release's holder name: no pid space in it
        assert not is_dead(other) and not is_stale(other + "/token")


def _hold_as_a_replica_and_die(url: str, conversation: str, item: str) -> None:
    """A replica in another container of this host: same hostname, another boot id or pid namespace. It takes
    a lock and keeps an event, then dies holding both."""
    import socket

    from bot.infra.stores import owner

    owner._machine, owner._owner = f"{socket.gethostname()}~feedfacecafe", None
    s = open_store(url)
    s.inbox_add(item, b"replica's", owner.process_owner(), lease=600)
    with s.lock(conversation, timeout=5, lease=600):
        os._exit(7)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_live_lock_or_event_of_a_replica_sharing_the_hostname_is_not_taken(kind, tmp_path, request):
    from bot.infra.stores.owner import process_owner

    url = f"sqlite:///{tmp_path / 't.db'}" if kind == "sqlite" else request.getfixturevalue("redis_server").url
    s, k, item = open_store(url), key(), key()
    p = multiprocessing.get_context("spawn").Process(target=_hold_as_a_replica_and_die, args=(url, k, item))
    p.start()
    p.join(60)
    assert p.exitcode == 7  # its pid is gone here, but it names another pid space: its lease decides
    with pytest.raises(LockTimeout):
        with s.lock(k, timeout=0.3):
            pass
    assert s.inbox_claim(process_owner(), lease=60) == []
    s.inbox_done(item)
    s.close()


# --- poison events -----------------------------------------------------------------------------------
def test_an_event_claimed_too_often_is_dropped_with_an_error_line(store, caplog):
    from bot.infra.stores.owner import process_owner

    k, dead = key(), _dead_holder()
    store.inbox_add(k, b"the text that kills", dead, lease=60)
    for attempt in range(store.max_claims):  # each claimant dies handling it
        assert store.inbox_claim(f"{dead}-{attempt}", lease=60) == [(k, b"the text that kills")]
    with caplog.at_level(logging.ERROR, logger="bot.infra.stores.base"):
        assert store.inbox_claim(process_owner(), lease=60) == []
    line = next(r for r in caplog.records if r.getMessage() == "inbox: dropped an event")
    assert (line.item, line.claims) == ("test", store.max_claims) and "kills" not in caplog.text
    assert store.inbox_claim(process_owner(), lease=0) == []  # gone


def _claim_and_die(url: str) -> None:
    """A worker whose recovery pass picks up the poison event, and dies handling it."""
    from bot.infra.inbox import Inbox

    inbox = Inbox(open_store(url), lease=600)
    inbox.register("test:", lambda item_id, payload: os._exit(5))
    inbox.recover_now()
    os._exit(0)  # nothing claimed


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_an_event_that_kills_worker_after_worker_is_dropped(kind, tmp_path, request, caplog):
    from bot.infra.inbox import Inbox

    url = f"sqlite:///{tmp_path / 't.db'}" if kind == "sqlite" else request.getfixturevalue("redis_server").url
    s, k = open_store(url), key()
    s.inbox_add(k, b"poison", _dead_holder(), lease=600)
    ctx = multiprocessing.get_context("spawn")
    for _ in range(s.max_claims):
        p = ctx.Process(target=_claim_and_die, args=(url,))
        p.start()
        p.join(60)
        assert p.exitcode == 5  # claimed it, and died of it
    got = []
    inbox = Inbox(s, lease=600)
    inbox.register("test:", lambda item_id, payload: got.append(item_id))
    with caplog.at_level(logging.ERROR, logger="bot.infra.stores.base"):
        assert inbox.recover_now() == 0
    assert got == [] and "inbox: dropped an event" in caplog.text and "poison" not in caplog.text
    s.close()


# --- retention ---------------------------------------------------------------------------------------
def _url_of(store) -> str:
    return store.url if "redis" in store.url or "memory" in store.url else f"sqlite:///{store.path}"


def test_a_record_not_written_for_the_retention_is_gone(store):
    s = open_store(_url_of(store), retention=0.6) if "memory" not in store.url else type(store)(retention=0.6)
    k = key()
    s.put(k, record())
    time.sleep(0.4)
    s.put(k, record(1))  # written again: the silence starts over
    time.sleep(0.4)
    assert s.get(k) is not None
    time.sleep(0.4)
    assert s.get(k) is None


def test_inbox_events_have_a_maximum_age(store, caplog):
    from bot.infra.stores.owner import process_owner

    s = open_store(_url_of(store), retention=0.3) if "memory" not in store.url else type(store)(retention=0.3)
    k = key()
    assert s.inbox_max_age == 0.3
    s.inbox_add(k, b"old words", process_owner(), lease=600)  # held by a live worker, for long
    time.sleep(0.4)
    with caplog.at_level(logging.ERROR, logger="bot.infra.stores.base"):
        assert s.inbox_claim(process_owner(), lease=60, abandoned=lambda *_: True) == []
    line = next(r for r in caplog.records if r.getMessage() == "inbox: dropped an event")
    assert line.why == "older than the inbox's maximum age" and "old words" not in caplog.text
    assert s.inbox_add(k, b"again", process_owner(), lease=60) is True  # gone: its id is free again
    s.inbox_done(k)


def test_redis_records_and_the_inbox_expire_on_the_server(redis_server):
    from bot.infra.stores.base import DAY_S, DEFAULT_RETENTION_DAYS
    from bot.infra.stores.owner import process_owner
    from bot.infra.stores.redis import INBOX

    s, k = open_store(redis_server.url), key()
    s.put(k, record())
    assert DEFAULT_RETENTION_DAYS * DAY_S - 60 < s._client.ttl("talklike:conv:" + k) <= DEFAULT_RETENTION_DAYS * DAY_S
    s.inbox_add(k, b"e", process_owner(), lease=60)
    assert 0 < s._client.ttl(INBOX[0]) <= s.inbox_max_age
    s.inbox_done(k)
    s.close()


def test_sqlite_prunes_on_open_and_overwrites_what_it_deletes(tmp_path):
    path = tmp_path / "t.db"
    s = open_store(f"sqlite:///{path}", retention=0.2)
    words = "a sentence nobody should find on the disk later"
    r = record()
    r.transcript = [{"author": "Bob", "text": words, "ts": 1.0}]
    s.put("old", r)
    assert s._connect().execute("PRAGMA secure_delete").fetchone() == (1,)
    time.sleep(0.3)
    s.put("kept", record())
    running = open_store(f"sqlite:///{path}", retention=0.2)  # another worker starts: the prune on open
    assert [row[0] for row in running._connect().execute("SELECT key FROM conversations")] == ["kept"]
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("t.db"))
    assert words.encode() not in on_disk  # overwritten, in the database and in its write-ahead log
    s.close()
    running.close()


def test_sqlite_prunes_now_and_then_while_it_runs(tmp_path, monkeypatch):
    from bot.infra.stores import sqlite

    s = open_store(f"sqlite:///{tmp_path / 't.db'}", retention=0.2)
    s.put("old", record())
    time.sleep(0.3)
    s._prune = sqlite.Schedule(every=0.0)  # due at every write
    s.put("new", record())
    assert [row[0] for row in s._connect().execute("SELECT key FROM conversations")] == ["new"]


def test_the_sqlite_file_is_private_to_its_owner(tmp_path):
    old = os.umask(0o022)
    try:
        s = open_store(f"sqlite:///{tmp_path / 't.db'}")
        s.put("c", record())
    finally:
        os.umask(old)
    for name in ("t.db", "t.db-wal", "t.db-shm"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o600", name
    s.close()


def test_an_sqlite_file_of_an_earlier_release_is_brought_up_to_date(tmp_path):
    import sqlite3

    from bot.infra.stores.owner import process_owner

    path = tmp_path / "t.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE inbox (id TEXT PRIMARY KEY, payload BLOB NOT NULL, owner TEXT NOT NULL,"
                      " expires REAL NOT NULL);")
    old.execute("INSERT INTO inbox VALUES ('test:kept', x'00', 'gone/1/x', 0)")
    old.commit()
    old.close()
    s = open_store(f"sqlite:///{path}")
    assert s.inbox_claim(process_owner(), lease=60) == [("test:kept", b"\x00")]  # not dropped as ancient
    assert s._connect().execute("SELECT claims FROM inbox").fetchone() == (1,)


@pytest.mark.parametrize(("raw", "days"), [(None, 30.0), ("7", 7.0), ("0.5", 0.5)])
def test_the_retention_setting_reaches_the_store(tiny_artifact, raw, days):
    from bot.app import build_engine
    from bot.infra.config import AppConfig

    env = {"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://"}
    config = AppConfig.from_env({**env, **({"TALKLIKE_RETENTION_DAYS": raw} if raw else {})})
    with build_engine(config) as engine:
        assert config.retention_days == days and engine.store.retention == days * 86400


@pytest.mark.parametrize("raw", ["0", "-1", "forever", "100000"])
def test_a_bad_retention_is_an_error_naming_it(raw):
    from bot.infra.config import AppConfig, ConfigError

    with pytest.raises(ConfigError, match="TALKLIKE_RETENTION_DAYS"):
        AppConfig.from_env({"TALKLIKE_RETENTION_DAYS": raw})


def test_keys_lists_the_conversations_under_a_prefix(store):
    mark = key()  # a fresh prefix: the redis server is shared by the tests
    for suffix in ("-1001", "-1002", "42"):
        store.put(f"{mark}:telegram:{suffix}", ConversationRecord(persona="Ada"))
    store.put(f"{mark}:messenger:42", ConversationRecord())
    store.put(f"{mark}:telegram%:x_y*", ConversationRecord())  # characters LIKE and SCAN give meaning to
    assert sorted(store.keys(f"{mark}:telegram:-")) == [f"{mark}:telegram:-1001", f"{mark}:telegram:-1002"]
    assert sorted(store.keys(f"{mark}:telegram%:x_y*")) == [f"{mark}:telegram%:x_y*"]
    assert store.keys(f"{mark}:TELEGRAM:") == []  # exact, not case-folded
    store.delete(f"{mark}:telegram:-1001")
    assert store.keys(f"{mark}:telegram:-") == [f"{mark}:telegram:-1002"]
