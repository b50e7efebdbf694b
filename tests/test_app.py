"""The app factory, its settings, health endpoints, edge limits and `talklike serve` (the model download:
test_model_source.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import free_port

from bot.app import create_app, services_of
from bot.engine.engine import Engine
from bot.infra.config import AppConfig, ConfigError
from bot.infra.model_source import ModelSourceError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine(tiny_artifact):
    with Engine(str(tiny_artifact)) as e:
        yield e


@pytest.fixture
def app(tiny_artifact, engine):
    app = create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://",
                      "TALKLIKE_MAX_BODY_BYTES": "2048"}, engine=engine, local=True)
    yield app
    services_of(app).background.close()


# --- settings ----------------------------------------------------------------------------------------
def test_settings_come_from_the_environment():
    config = AppConfig.from_env({"TALKLIKE_MODEL": "m.pt", "TALKLIKE_PERSONAS": "Ada, Boris", "PORT": "5005",
                                 "TALKLIKE_LOG_LEVEL": "debug", "MESSENGER_GRAPH_URL": "http://127.0.0.1:9/v1/"})
    assert (config.model, config.personas, config.port, config.log_level) == ("m.pt", ["Ada", "Boris"], 5005, "DEBUG")
    assert config.messenger_graph_url == "http://127.0.0.1:9/v1"
    assert config.store_url == "sqlite:///talklike.db"
    assert not config.messenger_enabled and not config.telegram_enabled  # absent settings: the platform is off
    # Heroku's Key-Value Store: TLS with a self-signed certificate
    assert AppConfig.from_env({"REDIS_URL": "rediss://h:6380"}).store_url == "rediss://h:6380?ssl_cert_reqs=none"
    assert AppConfig.from_env({"REDIS_URL": "redis://h:6379"}).store_url == "redis://h:6379"
    both = {"REDIS_URL": "rediss://h:6380", "TALKLIKE_STORE_URL": "rediss://h:6380"}
    assert AppConfig.from_env(both).store_url == "rediss://h:6380"  # an explicit choice is kept
    aliased = AppConfig.from_env({"MODEL_URL": "https://x/m.pt", "MODEL_SHA256": "AB" * 32})
    assert (aliased.model, aliased.model_sha256) == ("https://x/m.pt", "ab" * 32)


def test_secrets_are_not_in_the_repr():
    config = AppConfig.from_env({"MESSENGER_VERIFY_TOKEN": "v-secret", "MESSENGER_APP_SECRET": "a-secret",
                                 "MESSENGER_PAGE_TOKEN": "p-secret", "TELEGRAM_TOKEN": "123:t-secret"})
    assert config.messenger_enabled and config.telegram_enabled and not config.telegram_webhook_enabled
    assert "secret" not in repr(config)


@pytest.mark.parametrize(("env", "names"), [
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"TALKLIKE_TORCH_THREADS": "0"}, "TALKLIKE_TORCH_THREADS"),
    ({"TALKLIKE_LOG_LEVEL": "LOUD"}, "TALKLIKE_LOG_LEVEL"),
    ({"TALKLIKE_PERSONAS": " , "}, "TALKLIKE_PERSONAS"),
    ({"MESSENGER_GRAPH_URL": "graph.facebook.com"}, "MESSENGER_GRAPH_URL"),
    ({"MESSENGER_PAGE_TOKEN": "p"}, "MESSENGER_VERIFY_TOKEN"),
    ({"MESSENGER_PAGE_TOKEN": "p", "MESSENGER_VERIFY_TOKEN": "v"}, "MESSENGER_APP_SECRET"),
    ({"TELEGRAM_TOKEN": "1:x", "TELEGRAM_WEBHOOK_SECRET": "not allowed!"}, "TELEGRAM_WEBHOOK_SECRET"),
    ({"TALKLIKE_MODLE": "m.pt"}, "TALKLIKE_MODLE"),
    ({"TALKLIKE_MODEL_SHA256": "abc"}, "TALKLIKE_MODEL_SHA256"),
    ({"TALKLIKE_PERSONA": "Eve", "TALKLIKE_PERSONAS": "Ada"}, "TALKLIKE_PERSONA"),
])
def test_a_bad_setting_is_an_error_naming_it(env, names):
    with pytest.raises(ConfigError, match=names):
        AppConfig.from_env(env)


def test_the_app_refuses_to_start_without_a_usable_model(tmp_path):
    with pytest.raises(ConfigError, match="TALKLIKE_MODEL is not set"):
        create_app({"TALKLIKE_STORE_URL": "memory://"})
    with pytest.raises(ModelSourceError, match="does not exist"):
        create_app({"TALKLIKE_MODEL": str(tmp_path / "missing.pt"), "TALKLIKE_STORE_URL": "memory://"})


def test_a_default_persona_outside_the_model_is_refused_before_anything_is_written(tiny_artifact, tmp_path):
    db = tmp_path / "t.db"
    with pytest.raises(ConfigError, match="TALKLIKE_PERSONA 'Zed'.*Alice, Bob"):
        create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": f"sqlite:///{db}",
                    "TALKLIKE_PERSONA": "Zed"})
    assert not db.exists()
    with pytest.raises(ConfigError, match="TALKLIKE_PERSONA 'Bob' is not in TALKLIKE_PERSONAS"):
        create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://",
                    "TALKLIKE_PERSONAS": "Alice", "TALKLIKE_PERSONA": "Bob"})


def test_an_unknown_telegram_setting_stops_the_start_even_with_telegram_off(tiny_artifact):
    with pytest.raises(ConfigError, match="TELEGRAM_AUTHOR_MAPP"):
        create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://",
                    "TELEGRAM_AUTHOR_MAPP": "a=Alice"})


def test_debug_logging_lets_the_adapters_log_text(tiny_artifact, engine):
    from bot.infra.log_format import log_text

    try:
        create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_LOG_LEVEL": "DEBUG"}, engine=engine)
        assert log_text() and logging.getLogger("bot.adapters.messenger.handler").isEnabledFor(logging.DEBUG)
        create_app({"TALKLIKE_MODEL": str(tiny_artifact)}, engine=engine)
        assert not log_text()
    finally:
        from bot.infra.log_format import set_app_level

        set_app_level("INFO")


# --- health and the edge -----------------------------------------------------------------------------
def test_health_and_readiness(app):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ready"}  # nothing more for strangers
    assert client.get("/api/status").get_json()["persona_names"] == ["Alice", "Bob"]  # the (local) console knows more


def test_readiness_fails_when_the_store_is_down(tiny_artifact, own_redis_server):
    app = create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": own_redis_server.url})
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        own_redis_server.stop()
        down = client.get("/readyz")
        assert down.status_code == 503 and down.get_json() == {"status": "unavailable"}
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        own_redis_server.start()
        assert client.get("/readyz").status_code == 200
    finally:
        services_of(app).close()


def test_errors_at_the_edge_are_json_with_their_status(app):
    client = app.test_client()
    assert client.post("/healthz").status_code == 405
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and missing.get_json()["error"] == "Not Found"


def test_request_logs_leave_bodies_out(app, caplog):
    with caplog.at_level(logging.INFO, logger="talklike"):
        app.test_client().get("/healthz?q=private-words")
    lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert lines and lines[-1].path == "/healthz" and lines[-1].status == 200
    assert "private-words" not in caplog.text


# --- talklike serve ----------------------------------------------------------------------------------
def test_talklike_serve_answers_until_interrupted(tiny_artifact, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "talklike", "serve", str(tiny_artifact), "--port", str(port),
                             "--store", f"sqlite:///{tmp_path / 't.db'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert f"http://localhost:{port}/" in line and "Alice, Bob" in line
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    assert json.load(response)["status"] == "ready"
                break
            except OSError:
                assert time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
    finally:
        proc.send_signal(2)  # Ctrl-C
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_talklike_serve_explains_a_busy_port(tiny_artifact, tmp_path):
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "talklike", "serve", str(tiny_artifact), "--port", str(port),
                               "--store", "memory://"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_settings_of_other_commands_do_not_stop_the_server():
    # `talklike import` reads TALKLIKE_PSEUDONYM_KEY; one environment may serve both commands.
    assert AppConfig.from_env({"TALKLIKE_PSEUDONYM_KEY": "k" * 32}).model is None
