"""Where the server's model comes from: a local path, or an http(s) URL downloaded once and cached.

A download goes to a temporary file and is renamed into place only when complete (and, with a checksum
given, only when it matches), so a crash or a bad download never leaves a half file that looks usable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

from talklike.errors import UserError

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "talklike"


class ModelSourceError(UserError):
    """The model could not be found, downloaded or verified."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(source: str, sha256: str | None = None, cache_dir: Path | None = None,
                  timeout: float = 60.0) -> Path:
    """A local path to the model `source` names (a path or an http(s) URL), verified against `sha256`."""
    if urlsplit(source).scheme in ("http", "https"):
        return _download(source, sha256, cache_dir or DEFAULT_CACHE, timeout)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelSourceError(f"model file {source} does not exist (TALKLIKE_MODEL)")
    if sha256 and sha256_of(path) != sha256:
        raise ModelSourceError(f"model file {source} does not match TALKLIKE_MODEL_SHA256")
    return path


def _download(url: str, sha256: str | None, cache_dir: Path, timeout: float) -> Path:
    name = hashlib.sha256(url.encode()).hexdigest()[:16] + ".pt"
    target = cache_dir / name
    if target.is_file() and (sha256 is None or sha256_of(target) == sha256):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    safe_url = url.split("?", 1)[0]  # signed URLs carry credentials in the query
    log.info("downloading the model from %s", safe_url)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise ModelSourceError(f"downloading the model from {safe_url} failed: HTTP {response.status_code}")
            for block in response.iter_content(1 << 20):
                out.write(block)
                digest.update(block)
        if sha256 and digest.hexdigest() != sha256:
            raise ModelSourceError(f"the model downloaded from {safe_url} does not match TALKLIKE_MODEL_SHA256")
        os.replace(tmp, target)
    except requests.RequestException as err:
        raise ModelSourceError(f"downloading the model from {safe_url} failed: {type(err).__name__}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
