"""Where the server's model comes from: a local path, or an https URL downloaded once and cached.

A model file is code: loading a TorchScript file runs what it holds. So a URL must be `https://` and come
with its sha256 (TALKLIKE_MODEL_SHA256) unless the operator opts out (TALKLIKE_MODEL_UNVERIFIED=1); the
cached copy is checked again at every start (against the checksum, else against the one recorded when it
was downloaded); a redirect to plain http is refused; and a download has a size cap
(TALKLIKE_MODEL_MAX_BYTES) and a total deadline that hold against a server trickling bytes. A download goes
to a temporary file and is renamed into place only when complete and matching, so a crash or a bad download
never leaves a half file that looks usable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests

from bot.infra.config import DEFAULT_MODEL_MAX_BYTES
from bot.infra.stores.base import redact_url
from talklike.errors import UserError

if TYPE_CHECKING:
    from bot.infra.config import AppConfig

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "talklike"
DEADLINE_S = 600.0  # the whole download, redirects included
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 30.0  # per connection attempt, per read
MAX_REDIRECTS = 5
CHUNK = 1 << 16


class ModelSourceError(UserError):
    """The model could not be found, downloaded or verified."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_url(source: str) -> bool:
    return "://" in source


def check_url(url: str) -> None:
    """ModelSourceError unless `url` is an https URL (a model file is code: never fetched in the clear)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ModelSourceError(f"the model URL must be https://, not {safe_url(url)} "
                               "(a model file is code: it runs when it is loaded)")


def safe_url(url: str) -> str:
    """The URL for messages: no query (signed URLs carry credentials there), no password."""
    return redact_url(url.split("?", 1)[0].split("#", 1)[0])


def model_path(config: AppConfig, cache_dir: Path | None = None) -> Path:
    """The model the settings name, as a checked local file (downloaded if it is a URL)."""
    return resolve_model(config.model, config.model_sha256, cache_dir, unverified=config.model_unverified,
                         max_bytes=config.model_max_bytes)


def resolve_model(source: str, sha256: str | None = None, cache_dir: Path | None = None, *,
                  unverified: bool = False, max_bytes: int = DEFAULT_MODEL_MAX_BYTES, deadline: float = DEADLINE_S) -> Path:
    """A local path to the model `source` names (a path or an https URL), verified against `sha256`. A URL
    needs `sha256` unless `unverified`."""
    if is_url(source):
        check_url(source)
        if not sha256 and not unverified:
            raise ModelSourceError("a model URL needs its sha256 (TALKLIKE_MODEL_SHA256), or "
                                   "TALKLIKE_MODEL_UNVERIFIED=1 to run whatever it serves")
        return _cached_download(source, sha256, cache_dir or DEFAULT_CACHE, max_bytes, deadline)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelSourceError(f"model file {source} does not exist (TALKLIKE_MODEL)")
    if sha256 and sha256_of(path) != sha256:
        raise ModelSourceError(f"model file {source} does not match TALKLIKE_MODEL_SHA256")
    return path


def _cached_download(url: str, sha256: str | None, cache_dir: Path, max_bytes: int, deadline: float) -> Path:
    name = hashlib.sha256(url.encode()).hexdigest()[:16] + ".pt"
    target, recorded = cache_dir / name, cache_dir / (name + ".sha256")
    if target.is_file():
        expected = sha256 or (recorded.read_text().strip() if recorded.is_file() else None)
        if expected and sha256_of(target) == expected:
            return target
        log.warning("the cached model does not match its checksum: downloading it again", extra={"file": str(target)})
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log.info("downloading the model from %s", safe_url(url))
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    os.close(fd)
    try:
        digest = _download(url, Path(tmp), max_bytes, deadline)
        if sha256 and digest != sha256:
            raise ModelSourceError(f"the model downloaded from {safe_url(url)} does not match TALKLIKE_MODEL_SHA256")
        recorded.write_text(digest + "\n")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _download(url: str, out: Path, max_bytes: int, deadline: float) -> str:
    """Fetch `url` into `out` within `deadline` seconds in all; its sha256. The fetch runs in a daemon thread
    so that the deadline holds whatever the server does (a read that trickles in a byte at a time, headers
    that never end): past it the thread is told to stop and left to end on its own."""
    stop_at, stop = time.monotonic() + deadline, threading.Event()
    outcome: dict[str, object] = {}

    def fetch() -> None:
        try:
            outcome["digest"] = _fetch(url, out, max_bytes, stop_at, stop, min(READ_TIMEOUT_S, deadline))
        except BaseException as err:  # handed to the caller
            outcome["error"] = err

    thread = threading.Thread(target=fetch, name="talklike-model-download", daemon=True)
    thread.start()
    thread.join(deadline + 1.0)
    if thread.is_alive() or isinstance(outcome.get("error"), _TooSlow):
        stop.set()
        raise ModelSourceError(f"downloading the model from {safe_url(url)} took longer than {deadline:g} s")
    error = outcome.get("error")
    if isinstance(error, requests.RequestException):
        raise ModelSourceError(f"downloading the model from {safe_url(url)} failed: {type(error).__name__}") from None
    if error is not None:
        raise error
    return outcome["digest"]


class _TooSlow(Exception):
    pass


def _fetch(url: str, out: Path, max_bytes: int, stop_at: float, stop: threading.Event, read_timeout: float) -> str:
    digest, size = hashlib.sha256(), 0
    with requests.Session() as session, _get(session, url, read_timeout) as response, open(out, "wb") as f:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise ModelSourceError(f"the model at {safe_url(url)} is {int(length)} bytes, more than "
                                   f"TALKLIKE_MODEL_MAX_BYTES ({max_bytes})")
        while block := response.raw.read1(CHUNK, decode_content=False):  # one read: returns what has come
            size += len(block)
            if size > max_bytes:
                raise ModelSourceError(f"the model at {safe_url(url)} is larger than TALKLIKE_MODEL_MAX_BYTES "
                                       f"({max_bytes} bytes)")
            if stop.is_set() or time.monotonic() > stop_at:
                raise _TooSlow
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


def _get(session: requests.Session, url: str, read_timeout: float) -> requests.Response:
    """The answer to GET `url` (200), following at most MAX_REDIRECTS redirects, each to https only."""
    for _ in range(MAX_REDIRECTS + 1):
        response = session.get(url, stream=True, allow_redirects=False, timeout=(CONNECT_TIMEOUT_S, read_timeout),
                               headers={"Accept-Encoding": "identity"})
        if not response.is_redirect:
            break
        location = urljoin(url, response.headers["Location"])
        response.close()
        if urlsplit(location).scheme.lower() != "https":
            raise ModelSourceError(f"the model URL {safe_url(url)} redirects to {safe_url(location)}: refused, "
                                   "a model is only fetched over https")
        url = location
    else:
        response.close()
        raise ModelSourceError(f"the model URL redirects more than {MAX_REDIRECTS} times")
    if response.status_code != 200:
        response.close()
        raise ModelSourceError(f"downloading the model from {safe_url(url)} failed: HTTP {response.status_code}")
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        response.close()
        raise ModelSourceError(f"the model at {safe_url(url)} is served compressed: serve the file as it is")
    return response
