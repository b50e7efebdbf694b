"""Structured logs: one JSON object per line, with the fields a handler passes in `extra`.

Message text stays out of logs unless the level is DEBUG (`log_text()` tells handlers whether they may).
"""

from __future__ import annotations

import json
import logging
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h.formatter, JSONFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter())
        root.handlers = [handler]
    logging.Formatter.converter = time.gmtime


APP_LOGGERS = ("talklike", "bot")  # the app's own logger trees (modules log as bot.*, the app as talklike.*)


def set_app_level(level: str) -> None:
    """The level of the app's own loggers (TALKLIKE_LOG_LEVEL); libraries keep theirs."""
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(level)


def log_text() -> bool:
    """May message text be logged? Only when debug logging was asked for."""
    return any(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in APP_LOGGERS)
