"""`AppConfig`: the server's settings, read from environment variables (12-factor).

A platform whose settings are all absent is off; one that is half configured, or a setting that does not
parse, is a start-up error naming the variable. Secrets never appear in `repr` or logs (`check` hands them
to the log filter).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from bot.infra.log_format import register_secrets
from bot.infra.stores import DEFAULT_STORE_URL
from bot.infra.stores.base import DEFAULT_RETENTION_DAYS
from talklike.errors import UserError

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v21.0"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Told once in every new conversation (Meta's policy, and some laws, ask bots to say they are automated).
DEFAULT_DISCLOSURE = "This is an automated chat: replies are written by a computer model imitating {persona}, not by {persona}."
DEFAULT_MODEL_MAX_BYTES = 1 << 30  # 1 GiB: ten times the `large` preset, far below what a download should be
SWITCHES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
NUMBERS = {"model_max_bytes": (int, lambda v: v >= 1024), "retention_days": (float, lambda v: 0 < v <= 36500)}


# TALKLIKE_ variables that other commands read (the server ignores them, rather than calling them unknown).
OTHER_COMMANDS_SETTINGS = {"TALKLIKE_PSEUDONYM_KEY"}  # `talklike import`: keys WhatsApp phone pseudonyms


class ConfigError(UserError):
    """A setting is missing, malformed or contradicts another; the message names the variable."""


def _secret() -> object:
    return field(default=None, repr=False)


@dataclass
class AppConfig:
    """Every variable the app reads; `from_env` documents the names (docs/settings.md lists them)."""

    model: str | None = None  # TALKLIKE_MODEL: artifact path or https URL
    model_sha256: str | None = None  # TALKLIKE_MODEL_SHA256: checked after a download and at every start
    store_url: str = DEFAULT_STORE_URL  # TALKLIKE_STORE_URL (or REDIS_URL when that is set and this is not)
    persona: str | None = None  # TALKLIKE_PERSONA: the default persona
    personas: list[str] | None = None  # TALKLIKE_PERSONAS: the allowlist (consent)
    messenger_verify_token: str | None = _secret()
    messenger_app_secret: str | None = _secret()
    messenger_page_token: str | None = _secret()
    messenger_graph_url: str = DEFAULT_GRAPH_URL
    telegram_token: str | None = _secret()
    telegram_webhook_secret: str | None = _secret()
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    port: int = 8000
    torch_threads: int | None = None  # TALKLIKE_TORCH_THREADS: per worker process
    background_threads: int = 8  # TALKLIKE_BACKGROUND_THREADS: replies sent after the webhook answered
    max_body_bytes: int = 1_000_000  # TALKLIKE_MAX_BODY_BYTES: larger requests get 413
    reply_timeout: float = 30.0  # TALKLIKE_REPLY_TIMEOUT: seconds per reply
    log_level: str = "INFO"  # TALKLIKE_LOG_LEVEL; DEBUG also logs message text
    # Who may reach what (bot/app/factory.py `console_access`): the console is open on a loopback bind only; anywhere else
    # it needs a token and the host people open it at. None: decided by the bind (on locally, off publicly).
    console: bool | None = None  # TALKLIKE_CONSOLE: 1 asks for it, 0 turns it off
    console_token: str | None = _secret()  # TALKLIKE_CONSOLE_TOKEN: the console's password on a public address
    console_host: str | None = None  # TALKLIKE_CONSOLE_HOST: the host name the public console is opened at
    min_temperature: float = 0.3  # TALKLIKE_MIN_TEMPERATURE: the floor on public paths (greedy replays memory)
    disclosure: str | None = DEFAULT_DISCLOSURE  # TALKLIKE_DISCLOSURE: told once per conversation; "off": never
    messenger_allow_users: frozenset[str] | None = None  # MESSENGER_ALLOW_USERS: PSIDs; None: everyone
    keep_transcripts: bool = False  # TALKLIKE_KEEP_TRANSCRIPTS: readable transcripts of platform conversations
    log_key: str | None = _secret()  # TALKLIKE_LOG_KEY: keys the tags that stand for people in logs
    # -- a model file is code; what is kept, and for how long --
    model_unverified: bool = False  # TALKLIKE_MODEL_UNVERIFIED=1: run a model URL without TALKLIKE_MODEL_SHA256
    model_max_bytes: int = DEFAULT_MODEL_MAX_BYTES  # TALKLIKE_MODEL_MAX_BYTES: a larger download is refused
    allow_unguarded: bool = False  # TALKLIKE_ALLOW_UNGUARDED=1: serve a model without a memorization guard
    retention_days: float = DEFAULT_RETENTION_DAYS  # TALKLIKE_RETENTION_DAYS: a silent conversation is forgotten

    # name of the variable for every field (docs/settings.md lists the same)
    ENV = {
        "model": "TALKLIKE_MODEL", "model_sha256": "TALKLIKE_MODEL_SHA256", "store_url": "TALKLIKE_STORE_URL",
        "persona": "TALKLIKE_PERSONA", "personas": "TALKLIKE_PERSONAS",
        "messenger_verify_token": "MESSENGER_VERIFY_TOKEN", "messenger_app_secret": "MESSENGER_APP_SECRET",
        "messenger_page_token": "MESSENGER_PAGE_TOKEN", "messenger_graph_url": "MESSENGER_GRAPH_URL",
        "telegram_token": "TELEGRAM_TOKEN", "telegram_webhook_secret": "TELEGRAM_WEBHOOK_SECRET",
        "telegram_api_url": "TELEGRAM_API_URL", "port": "PORT", "torch_threads": "TALKLIKE_TORCH_THREADS",
        "background_threads": "TALKLIKE_BACKGROUND_THREADS", "max_body_bytes": "TALKLIKE_MAX_BODY_BYTES",
        "reply_timeout": "TALKLIKE_REPLY_TIMEOUT", "log_level": "TALKLIKE_LOG_LEVEL", "console": "TALKLIKE_CONSOLE",
        "console_token": "TALKLIKE_CONSOLE_TOKEN", "console_host": "TALKLIKE_CONSOLE_HOST",
        "min_temperature": "TALKLIKE_MIN_TEMPERATURE", "disclosure": "TALKLIKE_DISCLOSURE",
        "messenger_allow_users": "MESSENGER_ALLOW_USERS", "keep_transcripts": "TALKLIKE_KEEP_TRANSCRIPTS",
        "log_key": "TALKLIKE_LOG_KEY",
        "model_unverified": "TALKLIKE_MODEL_UNVERIFIED", "model_max_bytes": "TALKLIKE_MODEL_MAX_BYTES",
        "allow_unguarded": "TALKLIKE_ALLOW_UNGUARDED", "retention_days": "TALKLIKE_RETENTION_DAYS",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppConfig:
        """Read and check every setting; ConfigError names the first bad variable."""
        env = os.environ if env is None else env
        unknown = sorted(k for k in env if k.startswith("TALKLIKE_") and k not in cls.ENV.values()
                         and k not in OTHER_COMMANDS_SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]} (known: {', '.join(sorted(v for v in cls.ENV.values() if v.startswith('TALKLIKE_')))})")
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(cls.ENV[f.name])
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse(f.name, cls.ENV[f.name], raw.strip())
        # Aliases deployments already use: Heroku's Key-Value Store add-on sets REDIS_URL; container
        # platforms often pass MODEL_URL / MODEL_SHA256.
        for name, alias in (("store_url", "REDIS_URL"), ("model", "MODEL_URL"), ("model_sha256", "MODEL_SHA256")):
            if name not in values and env.get(alias, "").strip():
                values[name] = _parse(name, alias, env[alias].strip())
                if alias == "REDIS_URL":
                    values[name] = heroku_redis_url(values[name])
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Cross-field checks. A platform is on when its token is set (MESSENGER_PAGE_TOKEN, TELEGRAM_TOKEN), and
        then needs the rest of its settings; secrets a deploy button generates alone leave it off. A model URL
        is https and has its checksum. Then hands the secrets to the log filter, which masks them from now on."""
        if self.messenger_page_token:
            missing = [var for var, value in (("MESSENGER_APP_SECRET", self.messenger_app_secret),
                                              ("MESSENGER_VERIFY_TOKEN", self.messenger_verify_token)) if not value]
            if missing:
                raise ConfigError(f"MESSENGER_PAGE_TOKEN is set, so Messenger is on: set {' and '.join(missing)} too")
        if self.telegram_webhook_secret is not None and not _valid_telegram_secret(self.telegram_webhook_secret):
            raise ConfigError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if self.persona and self.personas and self.persona not in self.personas:
            raise ConfigError(f"TALKLIKE_PERSONA {self.persona!r} is not in TALKLIKE_PERSONAS")
        self._check_model()
        register_secrets([self.messenger_verify_token, self.messenger_app_secret, self.messenger_page_token,
                          self.telegram_token, self.telegram_webhook_secret, self.console_token, self.log_key,
                          urlsplit(self.store_url).password])

    def _check_model(self) -> None:
        """A model file runs code when it is loaded: one from a URL comes over https, with its checksum."""
        if not self.model or "://" not in self.model:
            return
        scheme = urlsplit(self.model).scheme.lower()
        if scheme != "https":
            raise ConfigError(f"TALKLIKE_MODEL must be a file or an https:// URL, not {scheme}:// "
                              "(a model file is code: it runs when it is loaded)")
        if not self.model_sha256 and not self.model_unverified:
            raise ConfigError("TALKLIKE_MODEL is a URL: set TALKLIKE_MODEL_SHA256 to the file's sha256 "
                              "(`sha256sum model.pt`), or TALKLIKE_MODEL_UNVERIFIED=1 to run whatever it serves")

    @property
    def messenger_enabled(self) -> bool:
        return bool(self.messenger_page_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_token)

    @property
    def telegram_webhook_enabled(self) -> bool:
        return bool(self.telegram_token and self.telegram_webhook_secret)


def heroku_redis_url(url: str) -> str:
    """REDIS_URL as Heroku's Key-Value Store sets it, made usable: its TLS certificate is self-signed, so a
    `rediss://` URL that says nothing about verification gets `ssl_cert_reqs=none` (Heroku's own advice;
    the connection stays encrypted). Set TALKLIKE_STORE_URL to choose otherwise."""
    if url.startswith("rediss://") and "ssl_cert_reqs" not in url:
        return url + ("&" if "?" in url else "?") + "ssl_cert_reqs=none"
    return url


def _valid_telegram_secret(secret: str) -> bool:
    return 1 <= len(secret) <= 256 and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in secret)


def _parse(name: str, var: str, raw: str) -> object:
    """One variable's value, typed; ConfigError names the variable."""
    try:
        if name in ("port", "torch_threads", "background_threads", "max_body_bytes"):
            value = int(raw)
            low = {"port": 1, "torch_threads": 1, "background_threads": 1, "max_body_bytes": 1024}[name]
            if value < low or (name == "port" and value > 65535):
                raise ValueError
            return value
        if name == "reply_timeout":
            value = float(raw)
            if not 0 < value <= 600:
                raise ValueError
            return value
        if name in ("console", "keep_transcripts"):
            lowered = raw.lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            return lowered in ("1", "true", "yes", "on")
        if name == "min_temperature":
            value = float(raw)
            if not 0 <= value <= 2:
                raise ValueError
            return value
        if name in ("model_unverified", "allow_unguarded"):
            if raw.lower() not in SWITCHES:
                raise ValueError
            return SWITCHES[raw.lower()]
        if name in NUMBERS:
            kind, allowed = NUMBERS[name]
            value = kind(raw)
            if not allowed(value):
                raise ValueError
            return value
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid value") from None
    if name == "personas":
        names = [p.strip() for p in raw.split(",") if p.strip()]
        if not names:
            raise ConfigError(f"{var} must list persona names separated by commas")
        return names
    if name == "messenger_allow_users":
        return frozenset(part.strip() for part in raw.split(",") if part.strip())
    if name == "disclosure":
        return None if raw.lower() == "off" else raw
    if name == "console_token" and len(raw) < 16:
        raise ConfigError(f"{var} must be at least 16 characters (e.g. python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))')")
    if name == "console_host":
        if "/" in raw or " " in raw:
            raise ConfigError(f"{var} is a host name (like mybot.herokuapp.com), got {raw!r}")
        return raw.lower()
    if name == "log_level":
        if raw.upper() not in LOG_LEVELS:
            raise ConfigError(f"{var}={raw!r} must be one of {', '.join(LOG_LEVELS)}")
        return raw.upper()
    if name in ("messenger_graph_url", "telegram_api_url"):
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{var} must be an http(s) URL, got {raw!r}")
        return raw.rstrip("/")
    if name == "model_sha256":
        if len(raw) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in raw):
            raise ConfigError(f"{var} must be 64 hexadecimal digits")
        return raw.lower()
    return raw
