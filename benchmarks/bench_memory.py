"""The server's memory and boot time with a given model, as a dyno would run it (Heroku allows 512 MB).

    python benchmarks/bench_memory.py MODEL [--workers 1] [--conversations 32] [--json]

Starts gunicorn exactly as the Procfile does (`-c python:bot.app.gunicorn_conf`, gthread), measures how long
the port takes to accept connections and the app to be ready, runs concurrent chats through the console API
for a while, and reports the peak resident memory (VmHWM) of the master and of each worker, and their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def post(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model file (e.g. demo/model.pt)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--conversations", type=int, default=32, help="concurrent console chats")
    parser.add_argument("--messages", type=int, default=5, help="messages per chat")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PORT": str(port), "TALKLIKE_MODEL": str(Path(args.model).resolve()),
               "TALKLIKE_STORE_URL": f"sqlite:///{tmp}/t.db", "WEB_CONCURRENCY": str(args.workers),
               "TALKLIKE_LOG_LEVEL": "WARNING", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        started = time.monotonic()
        proc = subprocess.Popen(["gunicorn", "bot.app:create_app()", "-c", "python:bot.app.gunicorn_conf"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            bound = ready = None
            while ready is None:
                if proc.poll() is not None:
                    raise SystemExit(f"gunicorn exited: {proc.stderr.read().decode()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                        ready = time.monotonic() - started
                except urllib.error.HTTPError:
                    pass
                except OSError as err:
                    if bound is None and not isinstance(getattr(err, "reason", None), ConnectionRefusedError):
                        bound = time.monotonic() - started
                    time.sleep(0.05)
                    continue
                bound = bound or time.monotonic() - started
            personas = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/personas"))["personas"]
            names = [p["name"] for p in personas]
            errors: list[str] = []

            def chat(k: int) -> None:
                for i in range(args.messages):
                    try:
                        post(port, "/api/chat", {"conversation": f"mem{k}", "persona": names[k % len(names)],
                                                 "message": f"message {i}: how was your day?"})
                    except Exception as err:  # noqa: BLE001 - counted and reported
                        errors.append(type(err).__name__)

            load_start = time.monotonic()
            threads = [threading.Thread(target=chat, args=(k,)) for k in range(args.conversations)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            load_s = time.monotonic() - load_start
            workers = children(proc.pid)
            figures = {
                "bind_s": round(bound, 2), "ready_s": round(ready, 2),
                "master_peak_mb": round(peak_kib(proc.pid) / 1024, 1),
                "worker_peak_mb": [round(peak_kib(w) / 1024, 1) for w in workers],
                "replies": args.conversations * args.messages - len(errors), "errors": len(errors),
                "load_s": round(load_s, 2), "model_bytes": Path(args.model).stat().st_size,
            }
            figures["total_peak_mb"] = round(figures["master_peak_mb"] + sum(figures["worker_peak_mb"]), 1)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:16s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
