"""`TelegramConfig`: the Telegram adapter's own settings, beside the token and URLs that AppConfig reads.

Environment variables (all optional):

- `TELEGRAM_AUTHOR_MAP="alice_tg=Alice,123456789=Bob"`: Telegram usernames (with or without `@`, any case)
  or numeric user ids, mapped to authors of the model, so the model reads those people as themselves;
  everyone else reads as a stranger (⟨other⟩).
- `TELEGRAM_AUTHOR_MATCH=1`: also match people by full name, first name or username against the model's
  authors. Off by default: anyone can rename themselves "Ada".
- `TELEGRAM_ALLOW_CHATS="-1001234,5678"`, `TELEGRAM_ALLOW_USERS="5678"`: only these chats / users (numeric ids)
  are answered; anything else is dropped before it is stored. Unset: everyone.
- `TELEGRAM_ALLOW_GROUPS=0`: the bot leaves any group it is added to (BotFather's /setjoingroups stops
  people adding it in the first place).
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
    "allow_chats": "TELEGRAM_ALLOW_CHATS",
    "allow_users": "TELEGRAM_ALLOW_USERS",
    "allow_groups": "TELEGRAM_ALLOW_GROUPS",
}


@dataclass
class TelegramConfig:
    """How the bot maps people, chimes in and paces what it sends (the Bot API's limits by default)."""

    author_map: dict[str, str] = field(default_factory=dict)  # lower-case username or str(user id) → author
    author_match: bool = False  # also match display names / usernames against the model's authors (opt-in)
    chime_in: float | None = None  # probability threshold for unasked messages in groups; None: never
    chime_gap: float = 600.0  # seconds between two unasked messages in one chat
    allow_chats: frozenset[int] | None = None  # None: every chat
    allow_users: frozenset[int] | None = None  # None: everyone
    allow_groups: bool = True
    admin_cache: float = 60.0  # seconds a group's administrators are remembered (getChatAdministrators)
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
        for name in ("author_match", "allow_groups"):
            if raw[name]:
                values[name] = _flag(ENV[name], raw[name])
        for name in ("allow_chats", "allow_users"):
            if raw[name]:
                values[name] = _ids(ENV[name], raw[name])
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


def _flag(var: str, raw: str) -> bool:
    flag = raw.lower()
    if flag not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{var}={raw!r} must be 1 or 0")
    return flag in ("1", "true", "yes", "on")


def _ids(var: str, raw: str) -> frozenset[int]:
    """Comma-separated numeric Telegram ids (chats of groups are negative)."""
    try:
        return frozenset(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{var} must list numeric Telegram ids separated by commas, got {raw!r}") from None


def _number(var: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number") from None
    if not low < value <= high:
        raise ConfigError(f"{var}={raw!r} must be above {low:g} and at most {high:g}")
    return value
