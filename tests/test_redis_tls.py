"""The redis store over TLS (`rediss://`), as Heroku's Key-Value Store serves it: a self-signed certificate."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from conftest import REDIS_SERVER, free_port

from bot.infra.config import AppConfig
from bot.infra.stores import ConversationRecord, StoreUnavailable, open_store


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    if REDIS_SERVER is None or shutil.which("openssl") is None:
        pytest.skip("redis-server or openssl is not installed; rediss:// not tested")
    pytest.importorskip("redis")
    work = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem")], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(work / "cert.pem"), "--tls-key-file", str(work / "key.pem"),
                             "--tls-ca-cert-file", str(work / "cert.pem"), "--tls-auth-clients", "no",
                             "--save", "", "--appendonly", "no", "--dir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"rediss://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        store = open_store(url + "?ssl_cert_reqs=none")
        try:
            store.ping()
            break
        except StoreUnavailable:
            if proc.poll() is not None:
                pytest.skip(f"redis-server has no TLS here: {proc.stderr.read().decode()[-200:]}")
            assert time.monotonic() < deadline, "TLS redis-server did not start"
            time.sleep(0.05)
        finally:
            store.close()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_a_heroku_style_redis_url_works_over_tls(tls_redis):
    url = AppConfig.from_env({"REDIS_URL": tls_redis}).store_url  # as the add-on sets it
    with open_store(url) as store:
        store.put("c", ConversationRecord(persona="Ada"))
        assert store.get("c").persona == "Ada"
        with store.lock("c"):
            assert not store.seen("m1", ttl=5) and store.seen("m1", ttl=5)


def test_verifying_a_self_signed_certificate_fails_clearly(tls_redis):
    with open_store(tls_redis) as store, pytest.raises(StoreUnavailable, match="127.0.0.1") as err:
        store.ping()
    assert "certificate" in str(err.value).lower()
