"""Both webhooks under load, as production runs them: gunicorn from the Procfile over a real redis-server.

    python benchmarks/bench_load.py [--json] [--users N] [--messages M] [--workers W] [--threads T]
                                    [--redeliveries K]

Starts a throwaway `redis-server` (no persistence) on a free loopback port, the fake Graph API
(tests/fake_graph.py) and the fake Telegram Bot API (tests/fake_bot_api.py), writes a `tiny` random-weight
artifact to a temporary directory and runs the Procfile's command,
`gunicorn 'bot.app:create_app()' -c python:bot.app.gunicorn_conf`, with WEB_CONCURRENCY=W, GUNICORN_THREADS=T,
TALKLIKE_STORE_URL=redis://..., both platforms pointed at the fakes, one torch thread per worker.

Then N Messenger users and N Telegram private chats write at once, M messages each. Each user sends its next
message only once the reply to the previous one reached the fake API (a conversation, not a flood), so
every reply belongs to one known message. K calls per platform are delivered a second time (the same mid,
the same update_id): half of them at the same moment as the first delivery (racing it, usually to the other
worker), half after the reply arrived (the platform retrying late). Figures, per platform:
- ack_ms p50/p99/max: webhook POST until its answer (Facebook gives up at 20 s, Telegram at about 60 s);
- reply_ms p50/p99/max: webhook POST until the fake API received that message's reply (Telegram replies
  also wait for the bot's own limit of one message per second per chat); first_reply_ms_p50: the same
  for each user's first message only (nothing to pace against yet);
- replies: expected, delivered, missing (messages never answered), doubled (answers beyond one per
  message), apologies (the bot's "something went wrong" / "busy" lines among them);
- non_200: acknowledgements that were not 200.
And total_s (first call to last reply), worker_restarts (worker processes seen besides the first W, from
/proc/<master>/task/<master>/children sampled through the run, plus gunicorn's own "WORKER TIMEOUT" /
"exited with code" / "was sent" lines) and errors_logged (ERROR lines or tracebacks on gunicorn's stderr).
Exit status 1 when a reply is missing or doubled or a worker restarted.

`Harness` (the servers around one gunicorn) is shared with benchmarks/fuzz_webhooks.py.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shutil
import signal
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

from conftest import RedisServer, build_artifact, free_port  # noqa: E402
from fake_bot_api import TOKEN as TELEGRAM_TOKEN  # noqa: E402
from fake_bot_api import FakeBotAPI, message, private_chat, user  # noqa: E402
from fake_graph import FakeGraph, facebook_json, message_event, sign, webhook  # noqa: E402

APP_SECRET, VERIFY, PAGE_TOKEN, TG_SECRET = "load-app-secret", "load-verify", "load-page-token", "load-tg_secret-1"
CONSOLE_TOKEN = "load-console-token-0123456789"  # a public app's console needs one
TG_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FB_HEADER = "X-Hub-Signature-256"
GUNICORN_TROUBLE = re.compile(r"WORKER TIMEOUT|exited with code|was sent (SIG|code)|Worker exiting")


class Harness:
    """redis-server (or sqlite), the two fake platforms, a tiny model and gunicorn as the Procfile runs it.

    `with Harness(workers=2, store="redis") as h:` ... `h.base` (http://127.0.0.1:PORT), `h.graph`,
    `h.bot_api`, `h.worker_pids()`, `h.restarts()`, `h.log()`. Worker pids are sampled every 0.2 s."""

    def __init__(self, workers: int = 2, threads: int = 16, store: str = "redis", console: bool = False,
                 gunicorn_log_level: str | None = None):
        self.workers, self.threads, self.store_kind, self.console = workers, threads, store, console
        self.gunicorn_log_level = gunicorn_log_level
        self.seen_pids: set[int] = set()
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        self.tmp = Path(tempfile.mkdtemp(prefix="talklike-load-"))
        self.redis: RedisServer | None = None
        self.graph = FakeGraph(token=PAGE_TOKEN).start()
        self.bot_api = FakeBotAPI().start()
        self.proc: subprocess.Popen | None = None
        try:
            if self.store_kind == "redis":
                if shutil.which("redis-server") is None:
                    raise RuntimeError("redis-server is not installed")
                self.redis = RedisServer(self.tmp)
                self.redis.start()
                self.store_url = self.redis.url
            else:
                self.store_url = f"sqlite:///{self.tmp / 'talklike.db'}"
            self.model = build_artifact(self.tmp / "tiny.pt")
            self._start_gunicorn()
        except BaseException:
            self.__exit__()
            raise
        self._sampler = threading.Thread(target=self._sample, name="pid-sampler", daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        self.bot_api.stop()
        self.graph.stop()
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TALKLIKE_", "TELEGRAM_", "MESSENGER_"))}
        env.update({
            "PORT": str(self.port), "WEB_CONCURRENCY": str(self.workers), "GUNICORN_THREADS": str(self.threads),
            "TALKLIKE_MODEL": str(self.model), "TALKLIKE_STORE_URL": self.store_url,
            "TALKLIKE_TORCH_THREADS": "1", "TALKLIKE_LOG_LEVEL": "WARNING",
            "TALKLIKE_DISCLOSURE": "off",  # one reply per message: what the counts below check
            "TALKLIKE_CONSOLE": "1" if self.console else "0",
            **({"TALKLIKE_CONSOLE_TOKEN": CONSOLE_TOKEN, "TALKLIKE_CONSOLE_HOST": "127.0.0.1"} if self.console else {}),
            "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_APP_SECRET": APP_SECRET, "MESSENGER_PAGE_TOKEN": PAGE_TOKEN,
            "MESSENGER_GRAPH_URL": self.graph.url, "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": TG_SECRET, "TELEGRAM_API_URL": self.bot_api.url,
            "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        })
        return env

    def _start_gunicorn(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "gunicorn.stderr"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in __exit__)
        command = ["gunicorn", "bot.app:create_app()", "-c", "python:bot.app.gunicorn_conf"]
        if self.gunicorn_log_level:  # gunicorn's own lines only (worker boots and exits); the app's stay WARNING
            command += ["--log-level", self.gunicorn_log_level]
        self.proc = subprocess.Popen(command, cwd=self.tmp, env=self._env(), stdout=subprocess.DEVNULL,
                                     stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + 120
        ready = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if len(self.worker_pids()) >= self.workers and self.ready():
                ready += 1
                if ready >= 4 * self.workers:  # most likely every worker has loaded the model by now
                    self.initial_pids = set(self.worker_pids())
                    self.seen_pids |= self.initial_pids
                    return
                continue
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not become ready within 120 s:\n{self.log()[-3000:]}")

    # -- observing ----------------------------------------------------------------------------------
    def ready(self) -> bool:
        try:
            return requests.get(f"{self.base}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        """The gunicorn master's child processes, from /proc/<pid>/task/<pid>/children."""
        pid = self.proc.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.seen_pids.update(self.worker_pids())

    def restarts(self) -> int:
        """Workers that replaced one of the first W (sampled pids), or gunicorn's own word for it."""
        self.seen_pids.update(self.worker_pids())
        by_pid = len(self.seen_pids - self.initial_pids)
        by_log = len(GUNICORN_TROUBLE.findall(self.log()))
        return max(by_pid, by_log)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def errors_logged(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks on gunicorn's stderr (the app logs one JSON object a line)."""
        found = []
        for line in self.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line or "[ERROR]" in line or "[CRITICAL]" in line:
                    found.append(line[:300])
                continue
            if isinstance(entry, dict) and (entry.get("level") in ("ERROR", "CRITICAL") or "exc" in entry):
                found.append(line[:20000])
        return found


# --- the load ------------------------------------------------------------------------------------------
class Replies:
    """Watches both fakes and hands each reply's arrival time to the user it went to."""

    def __init__(self, graph: FakeGraph, bot_api: FakeBotAPI):
        self.graph, self.bot_api = graph, bot_api
        self.queues: dict[str, queue.Queue] = {}
        self.count: dict[str, int] = {}
        self.texts: dict[str, list[str]] = {}
        self.times: dict[str, list[float]] = {}  # time.monotonic() of each arrival, as `texts`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="reply-watch", daemon=True)

    def register(self, key: str) -> queue.Queue:
        self.queues[key] = queue.Queue()
        self.count[key] = 0
        self.texts[key] = []
        self.times[key] = []
        return self.queues[key]

    def start(self) -> Replies:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._scan()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._scan()

    _fb_seen = _tg_seen = 0

    def _scan(self) -> None:
        fb = self.graph.calls[self._fb_seen:]  # both lists only grow; a slice is one atomic copy
        self._fb_seen += len(fb)
        for call in fb:
            if call.status == 200 and call.text is not None:
                self._arrived(f"fb:{call.recipient}", call.at, call.text)
        tg = self.bot_api.calls[self._tg_seen:]
        self._tg_seen += len(tg)
        for call in tg:
            if call.method == "sendMessage" and call.get("ok", True):
                self._arrived(f"tg:{int(call['chat_id'])}", call.at, call.get("text"))

    def _arrived(self, key: str, at: float, text: str | None) -> None:
        if key not in self.queues:  # a reply to nobody who wrote: counted as replies_to_strangers
            key = f"other:{key}"
            if key not in self.queues:
                self.register(key)
        self.count[key] += 1
        self.texts[key].append(text or "")
        self.times[key].append(at)
        self.queues[key].put(at)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 1)


def run(users: int, messages: int, redeliveries: int, workers: int, threads: int) -> dict:
    from bot.adapters.messenger.handler import APOLOGY as FB_APOLOGY
    from bot.adapters.messenger.handler import BUSY as FB_BUSY
    from bot.adapters.telegram.handlers import APOLOGY as TG_APOLOGY

    apologies = {FB_APOLOGY, FB_BUSY, TG_APOLOGY, "I'm busy right now; try again in a moment.",
                 "That took me too long; try again?"}
    with Harness(workers=workers, threads=threads, store="redis") as h:
        fb_url, tg_url = f"{h.base}/messenger/webhook", f"{h.base}/telegram/webhook"
        replies = Replies(h.graph, h.bot_api)
        rng = random.Random(0)
        plan = {p: {(u, m): rng.choice(("race", "late"))
                    for u, m in rng.sample([(u, m) for u in range(users) for m in range(messages)], redeliveries)}
                for p in ("fb", "tg")}
        acks: dict[str, list[float]] = {"fb": [], "tg": []}
        reply_ms: dict[str, list[float]] = {"fb": [], "tg": []}
        first_reply_ms: dict[str, list[float]] = {"fb": [], "tg": []}  # each user's first message
        statuses: dict[str, dict[int, int]] = {"fb": {}, "tg": {}}
        missing = {"fb": 0, "tg": 0}
        lock = threading.Lock()
        resend = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resend")

        def post(platform: str, session: requests.Session, raw: bytes, headers: dict) -> None:
            started = time.monotonic()
            try:
                status = session.post(fb_url if platform == "fb" else tg_url, data=raw, timeout=60,
                                      headers={"Content-Type": "application/json", **headers}).status_code
            except requests.RequestException:
                status = 0
            with lock:
                acks[platform].append((time.monotonic() - started) * 1000)
                statuses[platform][status] = statuses[platform].get(status, 0) + 1

        def resend_post(platform: str, raw: bytes, headers: dict) -> None:
            with requests.Session() as session:
                post(platform, session, raw, headers)

        def conversation(platform: str, u: int) -> None:
            if platform == "fb":
                psid = f"loaduser{u}"
                arrivals = replies.queues[f"fb:{psid}"]
            else:
                chat_id = 700_000 + u
                tg_user = user(chat_id, f"Tg{u}", username=None)
                arrivals = replies.queues[f"tg:{chat_id}"]
            with requests.Session() as session:
                for m in range(messages):
                    if platform == "fb":
                        raw = facebook_json(webhook(message_event(psid, f"user {u} says hello {m}",
                                                                  mid=f"mid.load.{u}.{m}")))
                        headers = {FB_HEADER: sign(APP_SECRET, raw)}
                    else:
                        body = {"update_id": 5_000_000 + u * messages + m,
                                "message": message(private_chat(tg_user), tg_user, f"chat {u} says hi {m}",
                                                   message_id=10 + m)}
                        raw = json.dumps(body).encode()
                        headers = {TG_HEADER: TG_SECRET}
                    again = plan[platform].get((u, m))
                    sent = time.monotonic()
                    if again == "race":
                        resend.submit(resend_post, platform, raw, headers)
                    post(platform, session, raw, headers)
                    try:
                        at = arrivals.get(timeout=120)
                    except queue.Empty:
                        with lock:
                            missing[platform] += 1
                        continue
                    with lock:
                        reply_ms[platform].append((at - sent) * 1000)
                        if m == 0:
                            first_reply_ms[platform].append((at - sent) * 1000)
                    if again == "late":
                        resend.submit(resend_post, platform, raw, headers)

        for u in range(users):
            replies.register(f"fb:loaduser{u}")
            replies.register(f"tg:{700_000 + u}")
        replies.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2 * users, thread_name_prefix="user") as pool:
            jobs = [pool.submit(conversation, p, u) for u in range(users) for p in ("fb", "tg")]
            for job in jobs:
                job.result()
        resend.shutdown(wait=True)
        total = time.monotonic() - started
        time.sleep(2.0)  # a doubled reply (a late redelivery answered again) would arrive by now
        replies.stop()
        restarts = h.restarts()
        errors = h.errors_logged()
        alive = h.proc.poll() is None and h.ready()

    figures: dict = {"users_per_platform": users, "messages_per_user": messages,
                     "redeliveries_per_platform": redeliveries, "workers": workers, "threads": threads,
                     "store": "redis", "pacing": "next message after the previous reply arrived"}
    for p, name in (("fb", "messenger"), ("tg", "telegram")):
        keys = [k for k in replies.count if k.startswith(f"{p}:")]
        delivered = sum(replies.count[k] for k in keys)
        expected = users * messages
        figures[name] = {
            "calls": len(acks[p]), "non_200": sum(n for s, n in statuses[p].items() if s != 200),
            "statuses": {str(s): n for s, n in sorted(statuses[p].items())},
            "ack_ms_p50": percentile(acks[p], 0.5), "ack_ms_p99": percentile(acks[p], 0.99),
            "ack_ms_max": percentile(acks[p], 1.0),
            "reply_ms_p50": percentile(reply_ms[p], 0.5), "reply_ms_p99": percentile(reply_ms[p], 0.99),
            "reply_ms_max": percentile(reply_ms[p], 1.0),
            "first_reply_ms_p50": percentile(first_reply_ms[p], 0.5),
            "replies_expected": expected, "replies_delivered": delivered,
            "replies_missing": sum(max(0, messages - replies.count[k]) for k in keys),
            "replies_doubled": sum(max(0, replies.count[k] - messages) for k in keys),
            "apologies": sum(t in apologies for k in keys for t in replies.texts[k]),
        }
    figures["replies_to_strangers"] = sum(n for k, n in replies.count.items() if k.startswith("other:"))
    figures["total_s"] = round(total, 2)
    figures["replies_per_s"] = round((figures["messenger"]["replies_delivered"]
                                      + figures["telegram"]["replies_delivered"]) / total, 1)
    figures["worker_restarts"] = restarts
    figures["errors_logged"] = len(errors)
    figures["error_samples"] = errors[:3]
    figures["alive_after"] = alive
    return figures


def failed(figures: dict) -> bool:
    return (any(figures[p]["replies_missing"] or figures[p]["replies_doubled"] for p in ("messenger", "telegram"))
            or figures["worker_restarts"] > 0 or figures["replies_to_strangers"] > 0)


def print_table(figures: dict) -> None:
    print(f"{figures['users_per_platform']} Messenger users + {figures['users_per_platform']} Telegram chats, "
          f"{figures['messages_per_user']} messages each ({figures['pacing']}), "
          f"{figures['redeliveries_per_platform']} redeliveries per platform; gunicorn {figures['workers']} workers x "
          f"{figures['threads']} threads, {figures['store']} store")
    rows = ["calls", "non_200", "ack_ms_p50", "ack_ms_p99", "ack_ms_max", "reply_ms_p50", "reply_ms_p99",
            "reply_ms_max", "first_reply_ms_p50", "replies_expected", "replies_delivered", "replies_missing", "replies_doubled",
            "apologies"]
    print(f"{'':22s} {'messenger':>12s} {'telegram':>12s}")
    for row in rows:
        print(f"{row:22s} {figures['messenger'][row]!s:>12s} {figures['telegram'][row]!s:>12s}")
    for key in ("replies_to_strangers", "total_s", "replies_per_s", "worker_restarts", "errors_logged", "alive_after"):
        print(f"{key:22s} {figures[key]!s:>12s}")
    for sample in figures["error_samples"]:
        print("  error:", sample[:300])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--users", type=int, default=40, help="Messenger users, and as many Telegram chats "
                        "(default: %(default)s)")
    parser.add_argument("--messages", type=int, default=5, help="messages per user (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=16, help="GUNICORN_THREADS (default: %(default)s)")
    parser.add_argument("--redeliveries", type=int, default=20, help="calls delivered twice, per platform "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.messages < 1 or args.workers < 1 or args.threads < 1:
        parser.error("--users, --messages, --workers and --threads must be at least 1")
    if not 0 <= args.redeliveries <= args.users * args.messages:
        parser.error("need 0 <= --redeliveries <= users * messages")
    figures = run(args.users, args.messages, args.redeliveries, args.workers, args.threads)
    if args.json:
        print(json.dumps(figures))
    else:
        print_table(figures)
    return 1 if failed(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
