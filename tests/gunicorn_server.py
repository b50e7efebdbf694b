"""`GunicornServer`: the app under gunicorn exactly as the Procfile runs it, for tests that need real
worker processes (several workers, a worker killed, SIGTERM). Started and stopped by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port
from fake_bot_api import wait_until

ROOT = Path(__file__).resolve().parent.parent


class GunicornServer:
    """`log`: a file that gets everything gunicorn and the app write on stderr (else a pipe, read when the
    start fails: a chatty server would fill it)."""

    def __init__(self, env: dict[str, str], workdir: Path, log: Path | None = None):
        self.port = free_port()
        self.env = {**os.environ, "PORT": str(self.port), "PYTHONPATH": str(ROOT), "TALKLIKE_TORCH_THREADS": "1",
                    "TALKLIKE_LOG_LEVEL": "WARNING",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
        self.workdir, self.log = workdir, log
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GunicornServer:
        stderr = subprocess.PIPE if self.log is None else open(self.log, "w")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(["gunicorn", "bot.app:create_app()", "-c", "python:bot.app.gunicorn_conf"],
                                     cwd=self.workdir, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=stderr, text=True, start_new_session=True)
        if self.log is not None:
            stderr.close()
        wait_until(lambda: self.proc.poll() is not None or self.ready(), timeout=60, what="gunicorn ready")
        assert self.proc.poll() is None, self.log.read_text() if self.log else self.proc.stderr.read()
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def workers(self) -> list[int]:
        return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]

    def post(self, path: str, raw: bytes, headers: dict) -> int:
        request = urllib.request.Request(f"{self.base}{path}", data=raw,
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    def stop(self) -> int:
        """SIGTERM (a graceful stop) and the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def __enter__(self) -> GunicornServer:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.stop()
