"""`TelegramConfig`: the Telegram adapter's own settings, beside the token and URLs that AppConfig reads.

Environment variables (all optional):

- `TELEGRAM_AUTHOR_MAP="alice_tg=Alice,123456789=Bob"`: Telegram usernames (with or without `@`, any case)
  or numeric user ids, mapped to authors of the model, so the model reads those people as themselves.
  People not in the map are matched by full name, first name or username against the model's authors;
  everyone else reads as a stranger (⟨other⟩).
- `TELEGRAM_AUTHOR_MATCH=0`: turn the matching by name off (only the map counts).
- `TELEGRAM_CHIME_IN=0.6`: in groups, speak unasked when the next-speaker head gives the chat's persona at
  least this probability (off when unset).
- `TELEGRAM_CHIME_GAP=600`: at least this many seconds between two unasked messages in one chat.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.infra.config import AppConfig, ConfigError

ENV = {
    "author_map": "TELEGRAM_AUTHOR_MAP",
    "author_match": "TELEGRAM_AUTHOR_MATCH",
    "chime_in": "TELEGRAM_CHIME_IN",
    "chime_gap": "TELEGRAM_CHIME_GAP",
}


@dataclass
class TelegramConfig:
    """How the bot maps people, chimes in and paces what it sends (the Bot API's limits by default)."""

    author_map: dict[str, str] = field(default_factory=dict)  # lower-case username or str(user id) → author
    author_match: bool = True  # match display names / usernames against the model's authors
    chime_in: float | None = None  # probability threshold for unasked messages in groups; None: never
    chime_gap: float = 600.0  # seconds between two unasked messages in one chat
    chat_interval: float = 1.0  # seconds between two messages to one chat
    group_per_minute: int = 20  # messages per minute to one group
    global_per_second: int = 30  # messages per second overall
    retries: int = 3  # tries again after a flood wait (429) or a server error (5xx)
    retry_backoff: float = 1.0  # seconds before the first retry after a 5xx; doubles each time
    typing_interval: float = 4.5  # a typing action lasts 5 s; renew it while a reply takes longer

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelegramConfig:
        """Read TELEGRAM_AUTHOR_MAP and friends; ConfigError names a bad or unknown TELEGRAM_ variable."""
        env = os.environ if env is None else env
        known = set(ENV.values()) | {v for v in AppConfig.ENV.values() if v.startswith("TELEGRAM_")}
        unknown = sorted(k for k in env if k.startswith("TELEGRAM_") and k not in known)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]} (known: {', '.join(sorted(known))})")
        values: dict[str, object] = {}
        raw = {name: env.get(var, "").strip() for name, var in ENV.items()}
        if raw["author_map"]:
            values["author_map"] = parse_author_map(raw["author_map"])
        if raw["author_match"]:
            flag = raw["author_match"].lower()
            if flag not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"TELEGRAM_AUTHOR_MATCH={raw['author_match']!r} must be 1 or 0")
            values["author_match"] = flag in ("1", "true", "yes", "on")
        if raw["chime_in"]:
            values["chime_in"] = _number("TELEGRAM_CHIME_IN", raw["chime_in"], 0.0, 1.0)
        if raw["chime_gap"]:
            values["chime_gap"] = _number("TELEGRAM_CHIME_GAP", raw["chime_gap"], 0.0, 86400.0)
        return cls(**values)


def parse_author_map(raw: str) -> dict[str, str]:
    """`"alice_tg=Alice,@Bob_T=Bob,123=Carol"` → `{"alice_tg": "Alice", "bob_t": "Bob", "123": "Carol"}`."""
    mapping: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, author = item.partition("=")
        key, author = key.strip().lstrip("@").lower(), author.strip()
        if not sep or not key or not author:
            raise ConfigError(f"TELEGRAM_AUTHOR_MAP: {item.strip()!r} is not USERNAME_OR_ID=Author")
        mapping[key] = author
    return mapping


def _number(var: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number") from None
    if not low < value <= high:
        raise ConfigError(f"{var}={raw!r} must be above {low:g} and at most {high:g}")
    return value
