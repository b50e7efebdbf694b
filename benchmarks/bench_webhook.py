"""The Messenger webhook under load: gunicorn (2 gthread workers) in front of a tiny model, a fake Graph API.

    python benchmarks/bench_webhook.py [--json] [--users N] [--messages M] [--redeliveries K]

Starts the fake Graph API (tests/fake_graph.py) on loopback, writes a `tiny` random-weight artifact to a
temporary directory, runs `gunicorn --worker-class gthread --threads 8 -w 2 'bot.app:create_app()'` over a
sqlite store there, and lets N users send M signed messages each (a user sends the next message when the
previous one was acknowledged, as a person would not wait for the reply); K of the calls are delivered a second
time, at once and from another thread (Facebook retrying), so usually to the other worker. Figures:
- ack_ms p50/p99/max: how long the webhook took to answer 200 (Facebook gives up at 20 s);
- replies: text messages the fake Graph API received, expected N * M, duplicates (a user got more than M);
- order_kept: users whose stored transcript has their messages in the order they were sent;
- total_s: from the first call to the last reply; replies_per_s over that time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook  # noqa: E402

SECRET, VERIFY, TOKEN = "bench-secret", "bench-verify", "bench-page-token"


def build_artifact(path: Path) -> Path:
    """A `tiny` model with random weights over a small vocabulary (speed does not depend on training)."""
    import torch

    from model.artifact import save_artifact
    from model.config import ModelConfig
    from model.network import CharLSTM
    from model.vocab import AuthorTable, Vocabulary

    vocab = Vocabulary.build(["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?!.,'"])
    authors = AuthorTable(["Alice", "Bob"])
    config = ModelConfig.from_preset("tiny", len(vocab), len(authors))
    torch.manual_seed(0)
    model = CharLSTM(config).eval()
    card = {"authors": {"Alice": {"messages": 10, "chars": 100}, "Bob": {"messages": 5, "chars": 50}}}
    save_artifact(path, model, vocab, authors, config, card, None)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(tmp: Path, model: Path, graph_url: str, port: int, workers: int, threads: int):
    env = {**os.environ, "TALKLIKE_MODEL": str(model), "TALKLIKE_STORE_URL": f"sqlite:///{tmp}/t.db",
           "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": SECRET, "MESSENGER_PAGE_TOKEN": TOKEN,
           "MESSENGER_GRAPH_URL": graph_url, "TALKLIKE_TORCH_THREADS": "1", "TALKLIKE_CONSOLE": "0", "TALKLIKE_KEEP_TRANSCRIPTS": "1",
           "TALKLIKE_DISCLOSURE": "off",
           "TALKLIKE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not (k.startswith("TALKLIKE_") and k not in (
        "TALKLIKE_MODEL", "TALKLIKE_STORE_URL", "TALKLIKE_TORCH_THREADS", "TALKLIKE_CONSOLE", "TALKLIKE_LOG_LEVEL",
        "TALKLIKE_KEEP_TRANSCRIPTS", "TALKLIKE_DISCLOSURE"))}
    log = open(tmp / "gunicorn.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", str(threads),
                             "-w", str(workers), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "30",
                             "bot.app:create_app()"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    ready = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}); see {tmp / 'gunicorn.log'}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                ready += 1
                if ready >= 4 * workers:  # most likely every worker has loaded the model by now
                    return proc, log
                continue
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gunicorn did not become ready within 120 s")


def run(users: int, messages: int, redeliveries: int, workers: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name, FakeGraph(token=TOKEN) as fake:
        tmp = Path(tmp_name)
        model = build_artifact(tmp / "tiny.pt")
        port = free_port()
        proc, log = start_gunicorn(tmp, model, fake.url, port, workers, threads)
        url = f"http://127.0.0.1:{port}/messenger/webhook"
        rng = random.Random(0)
        retried = set(rng.sample([(u, m) for u in range(users) for m in range(messages)], redeliveries))
        acks: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        resend = ThreadPoolExecutor(max_workers=8)

        def post(session: requests.Session, raw: bytes) -> None:
            started = time.perf_counter()
            response = session.post(url, data=raw, timeout=30,
                                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, raw)})
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                acks.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        def user(u: int) -> None:
            with requests.Session() as session:
                for m in range(messages):
                    raw = facebook_json(webhook(message_event(f"user{u}", f"user {u} message {m} é/ok",
                                                              mid=f"m_{u}_{m}")))
                    post(session, raw)
                    if (u, m) in retried:
                        resend.submit(post, requests.Session(), raw)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=users) as pool:
            list(pool.map(user, range(users)))
        resend.shutdown(wait=True)
        expected = users * messages
        fake.wait_for(lambda f: len(f.messages()) >= expected, timeout=600)
        total = time.perf_counter() - started
        time.sleep(1.0)  # anything arriving late would be a duplicate
        per_user = {}
        for call in fake.messages():
            per_user[call.recipient] = per_user.get(call.recipient, 0) + 1
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        order_kept = transcripts_in_order(f"sqlite:///{tmp}/t.db", users, messages)

    acks.sort()
    return {
        "users": users, "messages_per_user": messages, "redeliveries": redeliveries,
        "workers": workers, "threads": threads, "calls": len(acks), "statuses": statuses,
        "ack_ms_p50": round(statistics.median(acks), 1), "ack_ms_p99": round(acks[int(0.99 * (len(acks) - 1))], 1),
        "ack_ms_max": round(acks[-1], 1),
        "replies_expected": expected, "replies": sum(per_user.values()),
        "users_missing_replies": sum(1 for u in range(users) if per_user.get(f"user{u}", 0) < messages),
        "users_with_duplicates": sum(1 for n in per_user.values() if n > messages),
        "order_kept_users": order_kept, "total_s": round(total, 2),
        "replies_per_s": round(sum(per_user.values()) / total, 1),
    }


def transcripts_in_order(store_url: str, users: int, messages: int) -> int:
    """How many users' stored transcripts hold their messages once each, in the order sent (the transcript
    keeps the last 20 messages: 10 of the user's)."""
    from bot.infra.stores import open_store

    kept = 0
    with open_store(store_url) as store:
        for u in range(users):
            record = store.get(f"messenger:user{u}")
            incoming = [m["text"] for m in (record.transcript if record else []) if m["author"] not in ("Alice", "Bob")]
            sent = [f"user {u} message {m} é/ok" for m in range(messages)]
            kept += incoming == sent[-min(messages, 10):]
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--users", type=int, default=50, help="concurrent users (default: %(default)s)")
    parser.add_argument("--messages", type=int, default=5, help="messages per user (default: %(default)s)")
    parser.add_argument("--redeliveries", type=int, default=25, help="calls delivered twice (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.messages < 1 or not 0 <= args.redeliveries <= args.users * args.messages:
        parser.error("need --users >= 1, --messages >= 1 and 0 <= --redeliveries <= users * messages")
    figures = run(args.users, args.messages, args.redeliveries, args.workers, args.threads)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:24s} {value}")
    return 0 if figures["replies"] == figures["replies_expected"] and not figures["users_with_duplicates"] else 1


if __name__ == "__main__":
    sys.exit(main())
