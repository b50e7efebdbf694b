"""Who administers a Telegram group: asked of the Bot API (getChatAdministrators) and remembered briefly,
so a burst of commands costs one call."""

from __future__ import annotations

import time

from telegram import Message
from telegram.error import TelegramError

ANONYMOUS_ADMIN = 1087968824  # @GroupAnonymousBot: an administrator posting as the group itself


class GroupAdmins:
    def __init__(self, ttl: float = 60.0):
        self.ttl = ttl
        self._known: dict[int, tuple[float, frozenset[int]]] = {}  # chat → (when asked, administrator ids)

    async def is_admin(self, bot, message: Message) -> bool:
        """Did an administrator of the message's group write it? (False when the Bot API cannot say.)"""
        chat_id = message.chat.id
        if message.sender_chat is not None and message.sender_chat.id == chat_id:
            return True  # an anonymous administrator writes as the group
        if message.from_user is None or message.from_user.id == ANONYMOUS_ADMIN:
            return False
        return message.from_user.id in await self.of(bot, chat_id)

    async def of(self, bot, chat_id: int) -> frozenset[int]:
        known = self._known.get(chat_id)
        if known is not None and time.monotonic() - known[0] < self.ttl:
            return known[1]
        try:
            admins = frozenset(member.user.id for member in await bot.get_chat_administrators(chat_id))
        except TelegramError:  # cannot tell: treat nobody as an administrator (the command is refused)
            return frozenset()
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[chat_id] = (time.monotonic(), admins)
        return admins

    def forget(self, chat_id: int) -> None:
        self._known.pop(chat_id, None)
