"""The console fails closed: open on loopback, behind a token and its host name anywhere else, off where
nobody set one; strangers get 401/403/404, under gunicorn too."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from gunicorn_server import GunicornServer

from bot.app import create_app, services_of
from bot.engine.engine import Engine, EngineConfig
from bot.engine.settings import SamplingSettings
from bot.infra.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKEN = "console-token-5b7e0c21d9"
HOST = "bot.example.com"


@pytest.fixture(scope="module")
def engine(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=12))) as e:
        yield e


def public_app(engine, **env):
    app = create_app({"TALKLIKE_STORE_URL": "memory://", **env}, engine=engine)
    app.testing = True
    return app


def post_json(client, path, body, **kwargs):
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


def test_a_public_app_without_a_token_serves_no_console(engine):
    client = public_app(engine).test_client()
    for path in ("/", "/api/personas", "/api/status", "/api/transcript?conversation=a", "/console/login"):
        assert client.get(path).status_code == 404, path
    assert post_json(client, "/api/chat", {"conversation": "a", "message": "hi"}).status_code == 404
    assert client.get("/readyz").get_json() == {"status": "ready"}


@pytest.mark.parametrize("env, named", [
    ({"TALKLIKE_CONSOLE": "1"}, "TALKLIKE_CONSOLE_TOKEN"),
    ({"TALKLIKE_CONSOLE_TOKEN": TOKEN}, "TALKLIKE_CONSOLE_HOST"),
    ({"TALKLIKE_CONSOLE_TOKEN": "short", "TALKLIKE_CONSOLE_HOST": HOST}, "at least 16 characters"),
])
def test_asking_for_a_public_console_without_what_guards_it_stops_the_start(engine, env, named):
    with pytest.raises(ConfigError, match=named) as refused:
        public_app(engine, **env)
    assert "\n" not in str(refused.value)


def test_the_token_is_asked_once_by_the_page_and_taken_as_a_bearer_by_the_api(engine):
    client = public_app(engine, TALKLIKE_CONSOLE_TOKEN=TOKEN, TALKLIKE_CONSOLE_HOST=HOST).test_client()
    base = f"https://{HOST}"
    page = client.get("/", base_url=base)
    assert page.status_code == 303 and page.headers["Location"].endswith("/console/login")
    form = client.get("/console/login", base_url=base)
    assert form.status_code == 200 and b'name="token"' in form.data
    assert "form-action 'self'" in form.headers["Content-Security-Policy"]
    assert client.get("/api/personas", base_url=base).status_code == 401

    wrong = client.post("/console/login", data={"token": "guess"}, base_url=base)
    assert wrong.status_code == 303 and "failed" in wrong.headers["Location"]
    right = client.post("/console/login", data={"token": TOKEN}, base_url=base)
    cookie = right.headers["Set-Cookie"]
    assert right.status_code == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    assert TOKEN not in cookie  # a digest of it, never the token itself
    assert client.get("/", base_url=base).status_code == 200  # the cookie opens the page...
    assert client.get("/api/personas", base_url=base).status_code == 200  # ...and its API

    stranger = public_app(engine, TALKLIKE_CONSOLE_TOKEN=TOKEN, TALKLIKE_CONSOLE_HOST=HOST).test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert stranger.get("/api/status", base_url=base, headers=bearer).get_json()["engine"] == "running"
    assert stranger.get("/api/status", base_url=base).status_code == 401


def test_wrong_tokens_lock_a_client_out_even_from_the_right_one(engine):
    client = public_app(engine, TALKLIKE_CONSOLE_TOKEN=TOKEN, TALKLIKE_CONSOLE_HOST=HOST).test_client()
    base = f"https://{HOST}"
    answers = [client.get("/api/personas", base_url=base, headers={"Authorization": f"Bearer guess-{i}"}).status_code
               for i in range(7)]
    assert answers == [401] * 5 + [429] * 2
    locked = client.get("/api/personas", base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "60"
    assert client.post("/console/login", data={"token": TOKEN}, base_url=base).status_code == 429
    other = client.get("/api/personas", base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                       environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200  # the count is per client


def test_the_local_console_answers_only_loopback_host_names(engine):
    # DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends Host: evil.example.
    client = create_app({"TALKLIKE_STORE_URL": "memory://"}, engine=engine, local=True).test_client()
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "localhost"):
        assert client.get("/api/personas", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example"):
        assert client.get("/api/personas", headers={"Host": host}).status_code == 403, host
        assert client.get("/", headers={"Host": host}).status_code == 403, host


def test_public_paths_keep_a_temperature_floor(tiny_artifact):
    app = create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://",
                      "TALKLIKE_CONSOLE_TOKEN": TOKEN, "TALKLIKE_CONSOLE_HOST": HOST})
    try:
        engine = services_of(app).engine
        client = app.test_client()
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        greedy = post_json(client, "/api/chat", {"conversation": "t", "message": "hi", "temperature": 0},
                           base_url=f"https://{HOST}", headers=bearer)
        assert greedy.status_code == 400 and greedy.get_json()["field"] == "temperature"
        assert "at least 0.3" in greedy.get_json()["message"]
        said = services_of(app).conversations.temperature("telegram:1", "0")
        assert said.problem is not None and "at least 0.3" in said.text
        # a temperature stored before the floor existed is raised to it at reply time
        seen = []
        submit = engine.worker.submit
        engine.worker.submit = lambda job: seen.append(job.settings.temperature) or submit(job)
        from bot.infra.stores import ConversationRecord

        engine.store.put("telegram:2", ConversationRecord(settings={"temperature": 0.0}))
        engine.reply("telegram:2", "Alice", "hello")
        assert seen and min(seen) == pytest.approx(0.3)
    finally:
        services_of(app).close()


def test_a_simulate_request_has_one_deadline_for_all_its_turns(tiny_artifact, monkeypatch):
    app = create_app({"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": "memory://",
                      "TALKLIKE_REPLY_TIMEOUT": "1"}, local=True)
    try:
        engine = services_of(app).engine
        real = engine.speak

        def slow_speak(*args, **kwargs):
            time.sleep(0.4)
            return real(*args, **kwargs)

        monkeypatch.setattr(engine, "speak", slow_speak)
        started = time.monotonic()
        answer = post_json(app.test_client(), "/api/simulate", {"conversation": "s", "personas": ["Alice", "Bob"],
                                                                "turns": 10})
        assert answer.status_code == 504  # 10 turns of 0.4 s do not fit in the request's one second
        assert time.monotonic() - started < 2.5
    finally:
        services_of(app).close()


def test_under_gunicorn_strangers_get_nothing_from_the_console(tiny_artifact, tmp_path):
    env = {"TALKLIKE_MODEL": str(tiny_artifact), "TALKLIKE_STORE_URL": f"sqlite:///{tmp_path / 't.db'}",
           "WEB_CONCURRENCY": "1"}
    with GunicornServer(env, tmp_path).start() as server:  # as the Procfile runs it: no console settings
        for path in ("/", "/api/personas", "/api/status"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(server.base + path, timeout=5)
            assert refused.value.code == 404, path
        with urllib.request.urlopen(server.base + "/readyz", timeout=5) as ready:
            assert json.load(ready) == {"status": "ready"}
    guarded = {**env, "TALKLIKE_CONSOLE_TOKEN": TOKEN, "TALKLIKE_CONSOLE_HOST": "127.0.0.1"}
    with GunicornServer(guarded, tmp_path).start() as server:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.base + "/api/personas", timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(server.base + "/api/personas", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as allowed:
            assert [p["name"] for p in json.load(allowed)["personas"]]
