"""A model file is code: a URL must be https with its checksum, the cached copy is checked at every start,
downloads have a size cap and a total deadline and refuse redirects to plain http (against a real HTTPS
server on loopback, its certificate made here); a model without a memorization guard is refused."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import build_artifact, free_port

from bot.infra.config import AppConfig, ConfigError
from bot.infra.model_source import ModelSourceError, resolve_model

ROOT = Path(__file__).resolve().parent.parent
OPENSSL = shutil.which("openssl")


class Routes(http.server.BaseHTTPRequestHandler):
    """GET answers from `routes`: bytes (a file), ("redirect", url), ("trickle", interval) (a byte at a time,
    for ever), ("slow headers", interval), ("no length", bytes) (the body ends when the connection does)."""

    routes: dict[str, object] = {}
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        route = self.routes.get(self.path.split("?")[0])
        try:
            if isinstance(route, bytes):
                self.send_response(200)
                self.send_header("Content-Length", str(len(route)))
                self.end_headers()
                self.wfile.write(route)
            elif isinstance(route, tuple) and route[0] == "redirect":
                self.send_response(302)
                self.send_header("Location", route[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif isinstance(route, tuple) and route[0] == "trickle":
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                for _ in range(1 << 20):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(route[1])
            elif isinstance(route, tuple) and route[0] == "slow headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for i in range(10_000):
                    self.wfile.write(f"X-Slow-{i}: x\r\n".encode())
                    self.wfile.flush()
                    time.sleep(route[1])
            elif isinstance(route, tuple) and route[0] == "no length":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(route[1])
                self.close_connection = True
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up, as it should

    def log_message(self, *args):
        return None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), trusted by the client through REQUESTS_CA_BUNDLE."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed: no certificate for the HTTPS test server")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def _serve(context: ssl.SSLContext | None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Routes)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def https(certificate, monkeypatch):
    """(https base URL, plain http base URL) of two loopback servers sharing `Routes.routes`."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    secure, plain = _serve(context), _serve(None)
    Routes.routes = {}
    yield f"https://127.0.0.1:{secure.server_address[1]}", f"http://127.0.0.1:{plain.server_address[1]}"
    for server in (secure, plain):
        server.shutdown()
        server.server_close()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("env", "names"), [
    ({"TALKLIKE_MODEL": "http://example.com/m.pt", "TALKLIKE_MODEL_SHA256": "a" * 64}, "https://"),
    ({"MODEL_URL": "ftp://example.com/m.pt", "TALKLIKE_MODEL_UNVERIFIED": "1"}, "https://"),
    ({"TALKLIKE_MODEL": "https://example.com/m.pt"}, "TALKLIKE_MODEL_SHA256.*TALKLIKE_MODEL_UNVERIFIED=1"),
    ({"TALKLIKE_MODEL_UNVERIFIED": "maybe"}, "TALKLIKE_MODEL_UNVERIFIED"),
    ({"TALKLIKE_MODEL_MAX_BYTES": "12"}, "TALKLIKE_MODEL_MAX_BYTES"),
    ({"TALKLIKE_MODEL_MAX_BYTES": "1GB"}, "TALKLIKE_MODEL_MAX_BYTES"),
    ({"TALKLIKE_ALLOW_UNGUARDED": "please"}, "TALKLIKE_ALLOW_UNGUARDED"),
])
def test_a_model_url_must_be_https_and_come_with_its_checksum(env, names):
    with pytest.raises(ConfigError, match=names):
        AppConfig.from_env(env)


def test_the_model_settings_and_their_defaults():
    config = AppConfig.from_env({"TALKLIKE_MODEL": "https://example.com/m.pt", "TALKLIKE_MODEL_UNVERIFIED": "1",
                                 "TALKLIKE_MODEL_MAX_BYTES": "5000000", "TALKLIKE_ALLOW_UNGUARDED": "yes"})
    assert (config.model_unverified, config.model_max_bytes, config.allow_unguarded) == (True, 5_000_000, True)
    default = AppConfig.from_env({"TALKLIKE_MODEL": "m.pt"})
    assert (default.model_unverified, default.model_max_bytes, default.allow_unguarded) == (False, 1 << 30, False)


def test_resolving_refuses_plain_http_and_a_url_without_its_checksum(tmp_path):
    with pytest.raises(ModelSourceError, match="must be https://"):
        resolve_model("http://127.0.0.1:9/m.pt", "a" * 64, cache_dir=tmp_path)
    with pytest.raises(ModelSourceError, match="TALKLIKE_MODEL_SHA256"):
        resolve_model("https://127.0.0.1:9/m.pt", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # refused before anything was fetched


# --- downloads ---------------------------------------------------------------------------------------
def test_a_model_url_is_downloaded_once_and_its_cached_copy_checked_at_every_start(tiny_artifact, https, tmp_path):
    base, _ = https
    data = tiny_artifact.read_bytes()
    Routes.routes = {"/m.pt": data}
    path = resolve_model(f"{base}/m.pt?signature=s3cret", digest(data), cache_dir=tmp_path)
    assert path.read_bytes() == data and oct(path.stat().st_mode & 0o777) == "0o600"
    Routes.routes = {}  # cached: no second download
    assert resolve_model(f"{base}/m.pt?signature=s3cret", digest(data), cache_dir=tmp_path) == path
    path.write_bytes(b"tampered with")  # the next start notices, and fetches it again
    Routes.routes = {"/m.pt": data}
    assert resolve_model(f"{base}/m.pt?signature=s3cret", digest(data), cache_dir=tmp_path).read_bytes() == data
    with pytest.raises(ModelSourceError, match="HTTP 404") as err:
        resolve_model(f"{base}/other.pt?signature=s3cret", "b" * 64, cache_dir=tmp_path)
    assert "s3cret" not in str(err.value)  # a signed URL's credentials stay out of messages
    Routes.routes = {"/bad.pt": b"not the model"}
    with pytest.raises(ModelSourceError, match="does not match"):
        resolve_model(f"{base}/bad.pt", digest(data), cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.name + ".sha256"])


def test_an_unverified_model_url_is_checked_against_what_was_downloaded(tiny_artifact, https, tmp_path):
    base, _ = https
    data = tiny_artifact.read_bytes()
    Routes.routes = {"/m.pt": data}
    path = resolve_model(f"{base}/m.pt", cache_dir=tmp_path, unverified=True)
    Routes.routes = {}
    assert resolve_model(f"{base}/m.pt", cache_dir=tmp_path, unverified=True) == path  # the cache, unchanged
    path.write_bytes(data[:100])  # truncated in the cache: downloaded again
    Routes.routes = {"/m.pt": data}
    assert resolve_model(f"{base}/m.pt", cache_dir=tmp_path, unverified=True).read_bytes() == data


def test_a_redirect_is_followed_over_https_only(tiny_artifact, https, tmp_path):
    base, plain = https
    data = tiny_artifact.read_bytes()
    Routes.routes = {"/m.pt": data, "/moved.pt": ("redirect", f"{base}/m.pt"),
                     "/downgrade.pt": ("redirect", f"{plain}/m.pt"), "/loop.pt": ("redirect", "/loop.pt")}
    assert resolve_model(f"{base}/moved.pt", digest(data), cache_dir=tmp_path).read_bytes() == data
    with pytest.raises(ModelSourceError, match=r"redirects to http://127\.0\.0\.1:\d+/m\.pt: refused"):
        resolve_model(f"{base}/downgrade.pt", digest(data), cache_dir=tmp_path)
    with pytest.raises(ModelSourceError, match="redirects more than"):
        resolve_model(f"{base}/loop.pt", digest(data), cache_dir=tmp_path)


def test_a_download_larger_than_the_cap_is_refused_with_or_without_its_length(https, tmp_path):
    base, _ = https
    Routes.routes = {"/big.pt": b"x" * 5000, "/unsized.pt": ("no length", b"x" * 5000)}
    with pytest.raises(ModelSourceError, match="5000 bytes, more than TALKLIKE_MODEL_MAX_BYTES"):
        resolve_model(f"{base}/big.pt", "a" * 64, cache_dir=tmp_path, max_bytes=4096)
    with pytest.raises(ModelSourceError, match="larger than TALKLIKE_MODEL_MAX_BYTES"):
        resolve_model(f"{base}/unsized.pt", "a" * 64, cache_dir=tmp_path, max_bytes=4096)
    assert list(tmp_path.iterdir()) == []  # no half file left


@pytest.mark.parametrize("how", ["trickle", "slow headers"])
def test_the_deadline_holds_against_a_server_that_trickles(https, tmp_path, how):
    base, _ = https
    Routes.routes = {"/slow.pt": (how, 0.05)}  # each byte (or header) well within any read timeout
    started = time.monotonic()
    with pytest.raises(ModelSourceError, match="took longer than 1 s"):
        resolve_model(f"{base}/slow.pt", "a" * 64, cache_dir=tmp_path, deadline=1.0)
    assert time.monotonic() - started < 4
    assert list(tmp_path.iterdir()) == []


def test_the_download_is_not_fooled_by_a_certificate_it_does_not_trust(tiny_artifact, https, tmp_path, monkeypatch):
    base, _ = https
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    Routes.routes = {"/m.pt": tiny_artifact.read_bytes()}
    with pytest.raises(ModelSourceError, match="failed: SSLError"):
        resolve_model(f"{base}/m.pt", "a" * 64, cache_dir=tmp_path)


# --- the memorization guard --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unguarded(tmp_path_factory) -> Path:
    return build_artifact(tmp_path_factory.mktemp("unguarded") / "unguarded.pt", guard=False)


def test_a_model_without_a_guard_is_refused_unless_allowed(unguarded, tiny_artifact, caplog):
    from bot.app import create_app, services_of

    with pytest.raises(ConfigError, match="no memorization guard.*TALKLIKE_ALLOW_UNGUARDED=1"):
        create_app({"TALKLIKE_MODEL": str(unguarded), "TALKLIKE_STORE_URL": "memory://"})
    for model, allow, guard in ((unguarded, "1", "none: replies may repeat"), (tiny_artifact, "0", "memorization guard: ")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="talklike.app"):
            app = create_app({"TALKLIKE_MODEL": str(model), "TALKLIKE_STORE_URL": "memory://",
                              "TALKLIKE_ALLOW_UNGUARDED": allow})
        services_of(app).close()
        line = next(r for r in caplog.records if r.getMessage() == "model loaded")
        assert line.guard.startswith(guard) and line.levelno == (logging.WARNING if allow == "1" else logging.INFO)


def test_gunicorn_refuses_an_unguarded_model_and_says_why(unguarded, tmp_path):
    import sys

    env = {**os.environ, "PORT": str(free_port()), "PYTHONPATH": str(ROOT), "TALKLIKE_MODEL": str(unguarded),
           "TALKLIKE_STORE_URL": "memory://", "TALKLIKE_TORCH_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["gunicorn", "bot.app:create_app()", "-c", "python:bot.gunicorn_conf"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "TALKLIKE_ALLOW_UNGUARDED=1" in done.stderr
