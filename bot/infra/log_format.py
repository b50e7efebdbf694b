"""Structured logs: one JSON object per line, with the fields a handler passes in `extra`.

Message text stays out of logs unless the level is DEBUG (`log_text()` tells handlers whether they may).
Secrets never reach a log line: `RedactSecrets`, on every handler `configure_logging` installs (and on
gunicorn's), masks Telegram bot tokens (also inside `/bot<token>/` URLs), Facebook access tokens,
`access_token=` and `password=` query values, URL passwords, and every secret the settings hold
(`register_secrets`), in the message, its extras, and the text of its exception.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable

from bot.infra.stores.base import redact_url

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

TELEGRAM_TOKEN = re.compile(r"(\d{5,}):[A-Za-z0-9_-]{30,}(?![A-Za-z0-9_-])")  # `<bot id>:<35 characters>`
BOT_URL_PATH = re.compile(r"(/bot)[^/\s\"'?#]*:[^/\s\"'?#]*")  # `/bot<token>/getMe`, whatever the token's form
FACEBOOK_TOKEN = re.compile(r"\bEAA[A-Za-z0-9]{20,}")  # Page and user access tokens start so
MIN_SECRET_CHARS = 8  # a shorter configured value would mask ordinary words (real secrets are far longer)
# Exceptions whose text quotes a secret (python-telegram-bot's InvalidToken quotes the token it was given):
# log a fixed line for them instead of their text.
QUOTES_SECRETS = frozenset({"InvalidToken"})

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these values wherever they appear in a log line from now on (the settings' tokens, passwords)."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_CHARS)


def redact(text: str) -> str:
    """`text` with every secret masked as `***` (see the module docstring)."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "***")
    text = BOT_URL_PATH.sub(r"\1***", text)
    text = TELEGRAM_TOKEN.sub(r"\1:***", text)
    text = FACEBOOK_TOKEN.sub("EAA***", text)
    return redact_url(text)


def quotes_a_secret(err: BaseException | None) -> bool:
    """Does `err`, or an exception it was raised from or during, carry a secret in its text?"""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if type(err).__name__ in QUOTES_SECRETS:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class RedactSecrets(logging.Filter):
    """A handler filter: masks secrets in a record's message, string extras, traceback and stack (the record
    is changed in place, so every handler after this one writes the masked text too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


_plain = logging.Formatter()


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info or record.exc_text:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


GUNICORN_LOGGERS = ("gunicorn.error", "gunicorn.access")  # their own handlers: they do not propagate


def install_redaction(names: Iterable[str] = ("", *GUNICORN_LOGGERS)) -> None:
    """Put `RedactSecrets` on every handler of these loggers (the root by default, and gunicorn's); idempotent."""
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process, secrets masked (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h.formatter, JSONFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter())
        root.handlers = [handler]
    install_redaction()
    logging.Formatter.converter = time.gmtime


APP_LOGGERS = ("talklike", "bot")  # the app's own logger trees (modules log as bot.*, the app as talklike.*)


def set_app_level(level: str) -> None:
    """The level of the app's own loggers (TALKLIKE_LOG_LEVEL); libraries keep theirs."""
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(level)


def log_text() -> bool:
    """May message text be logged? Only when debug logging was asked for."""
    return any(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in APP_LOGGERS)
