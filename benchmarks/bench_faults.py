"""Faults under load: what reaches users when a worker dies, Redis restarts, the platforms fail, or the
server is stopped in the middle of a conversation.

    python benchmarks/bench_faults.py [--json] [--users N] [--messages M] [--only NAME,...]

Each scenario runs on a fresh `Harness` (benchmarks/bench_load.py: gunicorn from the Procfile with 2 workers,
a real redis-server, the fake Graph and Bot APIs, a tiny model). N Messenger users and N Telegram chats each
send M messages, one every 0.1 s without waiting for replies; a call that is not answered 200 (503 while
Redis is down, refused while the server restarts) is delivered again every 0.5 s, as the platforms do.
The fault strikes 0.4 s into the load:
- kill_worker: SIGKILL one gunicorn worker (gunicorn starts another);
- restart_redis: stop redis-server for 2 s, then start it again (append-only file on, as a real deployment);
- platform_errors: the next 30 Send API calls get HTTP 500, 5 stall 3 s, and 10 Bot API sendMessage calls
  get 502 (one 429 with retry_after 1);
- sigterm: SIGTERM the gunicorn master (graceful stop), then start gunicorn again over the same Redis.
Per scenario: messages acknowledged, replies, missing (a message acknowledged but never answered),
doubled (more answers than messages), apologies (a "busy"/"sorry" line instead of a reply), calls that
needed redelivery, and seconds until the last reply. Exit status 1 if any reply is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import (  # noqa: E402
    APP_SECRET,
    FB_HEADER,
    TG_HEADER,
    TG_SECRET,
    Harness,
    Replies,
    facebook_json,
    message,
    message_event,
    private_chat,
    sign,
    user,
    webhook,
)

SCENARIOS = ("kill_worker", "restart_redis", "platform_errors", "sigterm")
APOLOGY_WORDS = ("busy", "Sorry", "too long", "went wrong")


def _calls(users: int, messages: int):
    """(platform, user key, raw body, headers) for every message, in sending order per user."""
    for u in range(users):
        psid, tg = f"faultuser{u}", user(810_000 + u, f"Fault{u}", username=None)
        fb_calls, tg_calls = [], []
        for m in range(messages):
            raw = facebook_json(webhook(message_event(psid, f"user {u} message {m}", mid=f"mid.fault.{u}.{m}")))
            fb_calls.append(("fb", f"fb:{psid}", raw, {FB_HEADER: sign(APP_SECRET, raw)}))
            body = {"update_id": 7_000_000 + u * messages + m,
                    "message": message(private_chat(tg), tg, f"chat {u} message {m}", message_id=10 + m)}
            tg_calls.append(("tg", f"tg:{tg['id']}", json.dumps(body).encode(), {TG_HEADER: TG_SECRET}))
        yield fb_calls
        yield tg_calls


def _restart_gunicorn(h: Harness) -> None:
    os.killpg(h.proc.pid, signal.SIGTERM)
    h.proc.wait(timeout=60)
    h._start_gunicorn()


def run(scenario: str, users: int, messages: int) -> dict:
    with Harness(workers=2, threads=16, store="redis") as h:
        if scenario == "restart_redis":  # the same port, now durable, before any data is written
            h.redis.stop()
            h.redis.durable = True
            h.redis.start()
        replies = Replies(h.graph, h.bot_api)
        conversations = list(_calls(users, messages))
        for calls in conversations:
            replies.register(calls[0][1])
        replies.start()
        acked = {"fb": 0, "tg": 0}
        redelivered = {"fb": 0, "tg": 0}
        lock = threading.Lock()
        stop_sending = time.monotonic() + 90

        def send(calls) -> None:
            with requests.Session() as session:
                for platform, _, raw, headers in calls:
                    tries = 0
                    while time.monotonic() < stop_sending:
                        url = f"{h.base}/{'messenger' if platform == 'fb' else 'telegram'}/webhook"
                        try:
                            status = session.post(url, data=raw, timeout=30,
                                                  headers={"Content-Type": "application/json", **headers}).status_code
                        except requests.RequestException:
                            status = 0
                        if status == 200:
                            break
                        tries += 1
                        time.sleep(0.5)  # the platform delivers it again later
                    with lock:
                        acked[platform] += status == 200
                        redelivered[platform] += tries > 0
                    time.sleep(0.1)

        threads = [threading.Thread(target=send, args=(calls,)) for calls in conversations]
        started = time.monotonic()
        if scenario == "platform_errors":
            h.graph.fail(times=30, status=500)
            h.graph.fail(times=5, stall=3.0)
            h.bot_api.flood("sendMessage", retry_after=1)
            h.bot_api.fail("sendMessage", 502, times=10)
        for t in threads:
            t.start()
        time.sleep(0.4)
        fault_at = time.monotonic()
        if scenario == "kill_worker":
            os.kill(h.worker_pids()[0], signal.SIGKILL)
        elif scenario == "restart_redis":
            h.redis.stop()
            time.sleep(2.0)
            h.redis.start()
        elif scenario == "sigterm":
            _restart_gunicorn(h)
        for t in threads:
            t.join()
        expected = {p: users * messages for p in ("fb", "tg")}
        deadline = time.monotonic() + 150  # long enough for a lease (120 s) to bring back a lost event
        while time.monotonic() < deadline:
            if all(replies.count[c[0][1]] >= messages for c in conversations):
                break
            time.sleep(0.1)
        last_reply = time.monotonic() - started
        time.sleep(3.0)  # doubled replies would arrive now
        replies.stop()
        figures = {"scenario": scenario, "seconds_to_last_reply": round(last_reply, 1)}
        for platform in ("fb", "tg"):
            keys = [c[0][1] for c in conversations if c[0][0] == platform]
            texts = [t for k in keys for t in replies.texts[k]]
            figures[platform] = {
                "messages": expected[platform], "acknowledged": acked[platform],
                "needed_redelivery": redelivered[platform],
                "replies": sum(replies.count[k] for k in keys),
                "missing": sum(max(0, messages - replies.count[k]) for k in keys),
                "doubled": sum(max(0, replies.count[k] - messages) for k in keys),
                "apologies": sum(any(w in t for w in APOLOGY_WORDS) for t in texts),
            }
            doubled = [k for k in keys if replies.count[k] > messages]
            # for a closer look: each reply's text and arrival, in seconds after the fault
            figures[platform]["doubled_users"] = {
                k: [(round(at - fault_at, 3), text) for at, text in zip(replies.times[k], replies.texts[k], strict=True)]
                for k in doubled[:3]}
        figures["worker_restarts"] = h.restarts()
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--users", type=int, default=10, help="users per platform")
    parser.add_argument("--messages", type=int, default=4, help="messages per user")
    parser.add_argument("--only", help=f"comma-separated scenarios (default: all of {', '.join(SCENARIOS)})")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]} (choose from {', '.join(SCENARIOS)})")
    results = [run(s, args.users, args.messages) for s in chosen]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'scenario':16s} {'platform':8s} {'msgs':>5s} {'acked':>6s} {'redeliv':>8s} {'replies':>8s} "
              f"{'missing':>8s} {'doubled':>8s} {'apolog':>7s} {'last s':>7s}")
        for r in results:
            for p in ("fb", "tg"):
                f = r[p]
                print(f"{r['scenario']:16s} {p:8s} {f['messages']:5d} {f['acknowledged']:6d} "
                      f"{f['needed_redelivery']:8d} {f['replies']:8d} {f['missing']:8d} {f['doubled']:8d} "
                      f"{f['apologies']:7d} {r['seconds_to_last_reply']:7.1f}")
    return 1 if any(r[p]["missing"] for r in results for p in ("fb", "tg")) else 0


if __name__ == "__main__":
    raise SystemExit(main())
