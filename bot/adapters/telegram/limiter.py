"""`FloodLimiter`: paces what the bot sends to stay inside the Bot API's limits, and retries what the
API asks to retry.

Messages (sendMessage, editMessageText, send* media) wait for their turn: one per second per chat, 20 a
minute per group, 30 a second overall. Chat actions (typing), getMe, setWebhook and the like are not paced.
A flood wait (`429` with `retry_after`) is slept off and the call made again; a server error (5xx) or a
refused connection is retried after a short backoff. Timeouts are not retried: the message may have been
delivered, and a retry would send it twice.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dtm
import logging
import time
from typing import Any

from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter

from bot.adapters.telegram.config import TelegramConfig

log = logging.getLogger(__name__)

UNPACED = {"sendChatAction", "answerCallbackQuery", "getMe", "setWebhook", "deleteWebhook", "getWebhookInfo",
           "setMyCommands", "getChat", "getChatMember"}


class _Window:
    """At most `limit` events in any `period` seconds (a sliding window)."""

    def __init__(self, limit: int, period: float):
        self.limit, self.period = limit, period
        self.times: collections.deque[float] = collections.deque()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self.lock:  # FIFO: waiters go in the order they came
            while True:
                now = time.monotonic()
                while self.times and now - self.times[0] >= self.period:
                    self.times.popleft()
                if len(self.times) < self.limit:
                    self.times.append(now)
                    return
                await asyncio.sleep(self.period - (now - self.times[0]))


class FloodLimiter(BaseRateLimiter[None]):
    """A `BaseRateLimiter` after the Bot API's published limits (see the module docstring)."""

    def __init__(self, config: TelegramConfig | None = None):
        self.config = config or TelegramConfig()
        self._windows: dict[tuple[str, int | str], _Window] = {}

    async def initialize(self) -> None:
        self._windows.clear()

    async def shutdown(self) -> None:
        self._windows.clear()

    async def process_request(self, callback, args: Any, kwargs: dict[str, Any], endpoint: str,
                              data: dict[str, Any], rate_limit_args: None) -> Any:
        """Wait for the chat's turn, make the call, retry flood waits and server errors."""
        chat_id = data.get("chat_id")
        if endpoint not in UNPACED and chat_id is not None:
            await self._turn(chat_id)
        failures = 0
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as err:
                failures += 1
                if failures > self.config.retries:
                    raise
                wait = retry_after_seconds(err)
                log.warning("flood wait from the Bot API", extra={"endpoint": endpoint, "retry_after": wait})
                await asyncio.sleep(wait)
            except TimedOut:
                raise
            except NetworkError as err:
                failures += 1
                if failures > self.config.retries:
                    raise
                wait = self.config.retry_backoff * 2 ** (failures - 1)
                log.warning("Bot API call failed; retrying", extra={"endpoint": endpoint, "error": str(err),
                                                                     "in_s": wait})
                await asyncio.sleep(wait)

    async def _turn(self, chat_id: int | str) -> None:
        c = self.config
        await self._window("all", 0, c.global_per_second, 1.0).acquire()
        if _is_group(chat_id):
            await self._window("group", chat_id, c.group_per_minute, 60.0).acquire()
        if c.chat_interval > 0:
            await self._window("chat", chat_id, 1, c.chat_interval).acquire()

    def _window(self, kind: str, key: int | str, limit: int, period: float) -> _Window:
        window = self._windows.get((kind, key))
        if window is None:
            window = self._windows[(kind, key)] = _Window(limit, period)
        return window


def retry_after_seconds(err: RetryAfter) -> float:
    """The wait a RetryAfter asks for, in seconds. PTB 22 keeps it as a timedelta and its `retry_after`
    property warns about a coming type change (and catching warnings is not thread-safe): read the field."""
    value = getattr(err, "_retry_after", None)
    if value is None:
        value = err.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _is_group(chat_id: int | str) -> bool:
    """Group and channel ids are negative; `@channelname` strings are channels too."""
    text = str(chat_id)
    return text.startswith("-") or text.startswith("@")
