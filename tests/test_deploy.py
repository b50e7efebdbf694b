"""Deployment files: the Dockerfile (parsed: no Docker engine here), the Procfile, app.json, the hash-pinned
lock file both install from, and the container's start command run for real outside Docker under gunicorn."""

from __future__ import annotations

import hashlib
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
    runs = [arg for word, arg in steps if word == "RUN"]
    installs = [arg for arg in runs if "pip install" in arg]
    # the locked packages, hash-checked (torch among them: the CPU build), then this package without deps
    assert installs[0] == "pip install --require-hashes --no-deps -r requirements.lock"
    assert all("--no-deps" in arg for arg in installs) and "--index-url" not in " ".join(runs)
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


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, command in (line.split(":", 1) for line in lines if line.strip())}


def test_the_procfile_runs_gunicorn_with_threaded_workers_and_the_factory():
    web = procfile()["web"]
    # Heroku installs requirements.txt only (hash-checked: this package is not in it), so the commands run
    # from the checkout: the settings as a file, the worker as a module.
    assert web[:2] == ["gunicorn", "bot.app:create_app()"] and web[web.index("-c") + 1] == "bot/app/gunicorn_conf.py"
    assert procfile()["worker"][:4] == ["python", "-m", "talklike", "telegram"]
    from bot.app import gunicorn_conf

    assert gunicorn_conf.worker_class == "gthread" and gunicorn_conf.threads >= 4
    assert not getattr(gunicorn_conf, "preload_app", False)  # the model is loaded after the fork
    from bot import gunicorn_conf as earlier_name  # `-c python:bot.gunicorn_conf` of earlier releases

    assert earlier_name.worker_class == "gthread" and earlier_name.when_ready is gunicorn_conf.when_ready


def test_heroku_files_install_the_lock_and_name_real_settings():
    requirements = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert requirements == ["--require-hashes", "-r requirements.lock"]
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


@pytest.mark.parametrize("name", ["Dockerfile", "Procfile", "app.json", "requirements.txt", "requirements.lock",
                                  ".python-version"])
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


# --- the lock file -----------------------------------------------------------------------------------
def locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {name: (version or URL, hashes)}."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "requirements.lock").read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        name, _, pin = re.split(r"\s*(==| @ )\s*", spec, maxsplit=1)
        entries[name.lower()] = (pin.strip(), options)
    return entries


def test_the_lock_pins_every_server_package_with_its_hashes():
    entries = locked()
    for name, (pin, hashes) in entries.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h.strip()) for h in hashes), name
        assert re.fullmatch(r"[\w.+!]+|https://\S+", pin), name  # an exact version (or torch's URL)
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in declared}
    assert names <= set(entries) and "setuptools" in entries  # setuptools: the image builds this package with it
    options = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line.startswith("-")]
    assert options == []  # no index or link of its own: PyPI, and torch's one URL


def test_torch_comes_from_the_cpu_index_by_url_and_hash():
    url, hashes = locked()["torch"]
    assert url.startswith("https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-") and len(hashes) == 1
    assert (ROOT / ".python-version").read_text().strip() == "3.11"  # the wheel's Python
    wheel = Path("/opt/wheels") / url.rsplit("/", 1)[1].replace("%2B", "+")
    if wheel.is_file():  # the local copy its hash was taken from
        assert hashes[0].strip() == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.mark.parametrize(("name", "floor"), [("torch", "2.6"), ("gunicorn", "23.0"), ("requests", "2.32.4"),
                                             ("tqdm", "4.66.3"), ("urllib3", "2.5")])
def test_dependency_floors_sit_above_known_advisories(name, floor):
    import tomllib
    from packaging.requirements import Requirement
    from packaging.version import Version

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirement = next(Requirement(d) for d in declared if Requirement(d).name == name)
    assert any(s.operator == ">=" and Version(s.version) >= Version(floor) for s in requirement.specifier)
    pin = locked()[name][0]
    version = Version(re.search(r"torch-([\w.]+)%2B", pin).group(1)) if name == "torch" else Version(pin)
    assert version >= Version(floor)


def test_the_procfile_web_command_loads_the_app_from_the_checkout(tiny_artifact, tmp_path):
    env = {**os.environ, "TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://",
           "TALKLIKE_TORCH_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([*procfile()["web"], "--check-config"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
