"""Deployment files: the Dockerfile (parsed: no Docker engine here), the Procfile, app.json, and the
container's start command run for real outside Docker under gunicorn."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from bot.infra.config import AppConfig

ROOT = Path(__file__).resolve().parent.parent


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, argument) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            steps.append((word.upper(), rest.strip()))
    return steps


def test_the_dockerfile_builds_a_slim_cpu_non_root_image_with_a_health_check():
    steps = dockerfile()
    froms = [arg for word, arg in steps if word == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.\d+-slim", froms[0])
    runs = " ".join(arg for word, arg in steps if word == "RUN")
    assert "download.pytorch.org/whl/cpu" in runs and "torch==2.13.0" in runs  # never the CUDA build
    users = [arg for word, arg in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "RUN" and "useradd" in arg and users[-1] in arg for word, arg in steps)
    env = " ".join(arg for word, arg in steps if word == "ENV")
    assert "PORT=8000" in env and any(word == "EXPOSE" and arg == "8000" for word, arg in steps)
    health = [arg for word, arg in steps if word == "HEALTHCHECK"]
    assert health and "/healthz" in health[0] and "PORT" in health[0]
    cmd = [arg for word, arg in steps if word == "CMD"]
    assert json.loads(cmd[-1]) == ["/app/deploy/start.sh"]
    copied = [arg.split()[0] for word, arg in steps if word == "COPY"]
    for source in copied:  # everything the image copies exists in the repository
        assert (ROOT / source).exists(), source
    assert "tests" in (ROOT / ".dockerignore").read_text().split()


def test_the_procfile_runs_gunicorn_with_threaded_workers_and_the_factory():
    processes = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    web = shlex.split(processes["web"])
    assert web[:2] == ["gunicorn", "bot.app:create_app()"] and "python:bot.app.gunicorn_conf" in web
    assert shlex.split(processes["worker"])[:2] == ["talklike", "telegram"]
    from bot.app import gunicorn_conf

    assert gunicorn_conf.worker_class == "gthread" and gunicorn_conf.threads >= 4
    assert not getattr(gunicorn_conf, "preload_app", False)  # the model is loaded after the fork
    from bot import gunicorn_conf as earlier_name  # `-c python:bot.gunicorn_conf` of earlier releases

    assert earlier_name.worker_class == "gthread" and earlier_name.when_ready is gunicorn_conf.when_ready


def test_heroku_files_install_the_cpu_build_and_name_real_settings():
    requirements = (ROOT / "requirements.txt").read_text().split()
    assert "https://download.pytorch.org/whl/cpu" in requirements and "torch==2.13.0+cpu" in requirements
    assert re.fullmatch(r"3\.\d+\s*", (ROOT / ".python-version").read_text())
    app = json.loads((ROOT / "app.json").read_text())
    known = set(AppConfig.ENV.values()) | {"MODEL_URL", "MODEL_SHA256", "REDIS_URL", "WEB_CONCURRENCY"}
    assert set(app["env"]) <= known
    assert app["env"]["TALKLIKE_CONSOLE"]["value"] == "0"  # a public deployment does not expose the console


def _start(env: dict, cwd: Path) -> subprocess.Popen:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen([str(ROOT / "deploy" / "start.sh")], cwd=cwd, env={**os.environ, "PATH": path, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_the_start_command_binds_at_once_serves_and_stops_gracefully(tiny_artifact, tmp_path):
    port = free_port()
    env = {"PORT": str(port), "TALKLIKE_MODEL": str(tiny_artifact), "PYTHONPATH": str(ROOT),
           "TALKLIKE_STORE_URL": f"sqlite:///{tmp_path / 't.db'}", "TALKLIKE_TORCH_THREADS": "1"}
    started = time.monotonic()
    proc = _start(env, tmp_path)
    try:
        bound = None
        while time.monotonic() - started < 30:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                bound = time.monotonic() - started
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.05)
        assert bound is not None and bound < 10  # Heroku kills a web process that has not bound in 60 s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    assert json.load(response)["status"] == "ready"
                break
            except OSError:
                assert time.monotonic() - started < 60
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_the_start_command_without_a_model_says_what_to_do(tmp_path):
    env = {"PORT": str(free_port()), "TALKLIKE_MODEL": "", "MODEL_URL": ""}
    proc = _start(env, tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "MODEL_URL" in err


@pytest.mark.parametrize("name", ["Dockerfile", "Procfile", "app.json", "requirements.txt", ".python-version"])
def test_the_deployment_files_are_in_the_repository(name):
    assert (ROOT / name).is_file()


def test_the_deploy_button_defaults_boot(tiny_artifact, tmp_path):
    # Exactly what Heroku's button sets (values, and a random string per "generator": "secret"), plus a model.
    import secrets

    from gunicorn_server import GunicornServer

    app_json = json.loads((ROOT / "app.json").read_text())["env"]
    env = {name: spec["value"] for name, spec in app_json.items() if "value" in spec}
    env |= {name: secrets.token_urlsafe(24) for name, spec in app_json.items() if spec.get("generator") == "secret"}
    env |= {"MODEL_URL": str(tiny_artifact), "TALKLIKE_STORE_URL": f"sqlite:///{tmp_path / 't.db'}"}
    config = AppConfig.from_env(env)  # generated secrets alone turn no platform on, so none is half configured
    assert not config.messenger_enabled and not config.telegram_enabled
    with GunicornServer(env, tmp_path).start() as server:
        with urllib.request.urlopen(server.base + "/readyz", timeout=5) as ready:
            assert json.load(ready) == {"status": "ready"}
        for path in ("/", "/api/personas", "/messenger/webhook", "/telegram/webhook"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(server.base + path, timeout=5)
            assert refused.value.code in (404, 405), path  # nothing served that nobody configured
