"""Telegram messages → neutral incoming messages: conversation key, author, text, and whether the bot
was addressed. Also the outgoing side's one rule: a message holds at most 4096 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import Message, MessageEntity, User
from telegram.constants import ChatType, MessageLimit

from bot.adapters.telegram.config import TelegramConfig
from bot.infra.config import ConfigError

MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted in UTF-16 code units as Telegram does


@dataclass
class Incoming:
    """What the engine needs from one Telegram message."""

    conversation: str  # telegram:<chat_id>, or telegram:<chat_id>:<thread_id> in a forum topic
    chat_id: int
    thread_id: int | None  # forum topic to answer in
    message_id: int
    private: bool
    author: str | None  # the model's author for the sender; None reads as a stranger
    text: str  # the text or caption (a sticker's emoji), the bot's own @mention taken out
    kind: str  # text | photo | sticker | other
    addressed: bool  # private chat, @mention of the bot, or a reply to one of its messages
    sender: str | None = None  # "telegram:<user id>": whose words these are, for /forget


def conversation_key(chat_id: int, thread_id: int | None = None) -> str:
    return f"telegram:{chat_id}" if thread_id is None else f"telegram:{chat_id}:{thread_id}"


def topic_of(message: Message) -> int | None:
    """The forum topic a message belongs to (None outside forums: a reply chain also has a thread id)."""
    return message.message_thread_id if message.is_topic_message else None


class AuthorMatcher:
    """Which author of the model a Telegram user is: TELEGRAM_AUTHOR_MAP first, then names."""

    def __init__(self, authors: list[str], config: TelegramConfig):
        unknown = sorted({a for a in config.author_map.values() if a not in authors})
        if unknown:
            raise ConfigError(f"TELEGRAM_AUTHOR_MAP names {', '.join(unknown)}, not an author of the model "
                              f"(it has: {', '.join(authors)})")
        self.mapping = dict(config.author_map)
        self.by_name = {a.casefold(): a for a in authors} if config.author_match else {}

    def author_of(self, who: User | None) -> str | None:
        if who is None:
            return None
        for key in (str(who.id), (who.username or "").lower()):
            if key and key in self.mapping:
                return self.mapping[key]
        for name in (who.full_name, who.first_name, who.username):
            if name and name.casefold() in self.by_name:
                return self.by_name[name.casefold()]
        return None


def read_message(message: Message, bot: User, authors: AuthorMatcher) -> Incoming:
    """The neutral form of `message`, as `bot` (the bot's own User from getMe) sees it."""
    private = message.chat.type == ChatType.PRIVATE
    text = message.text or message.caption or ""
    entities = (message.entities if message.text else message.caption_entities) or ()
    if message.text:
        kind = "text"
    elif message.photo:
        kind = "photo"
    elif message.sticker:
        kind, text = "sticker", message.sticker.emoji or ""
    else:
        kind = "other"
    mentions = [e for e in entities if _mentions(e, text, bot)]
    reply = message.reply_to_message
    replied_to_bot = (reply is not None and reply.from_user is not None and reply.from_user.id == bot.id
                      and reply.forum_topic_created is None)  # in topics, every message "replies" to the topic
    thread = topic_of(message)
    return Incoming(conversation=conversation_key(message.chat.id, thread), chat_id=message.chat.id,
                    thread_id=thread, message_id=message.message_id, private=private,
                    author=authors.author_of(message.from_user), text=_without(text, mentions).strip(),
                    kind=kind, addressed=private or bool(mentions) or replied_to_bot,
                    sender=None if message.from_user is None else f"telegram:{message.from_user.id}")


def _mentions(entity: MessageEntity, text: str, bot: User) -> bool:
    if entity.type == MessageEntity.TEXT_MENTION:
        return entity.user is not None and entity.user.id == bot.id
    if entity.type == MessageEntity.MENTION and bot.username:
        return _slice(text, entity.offset, entity.length).lower() == f"@{bot.username.lower()}"
    return False


def _slice(text: str, offset: int, length: int) -> str:
    """Entity offsets count UTF-16 code units."""
    units = text.encode("utf-16-le")
    return units[2 * offset : 2 * (offset + length)].decode("utf-16-le", errors="replace")


def _without(text: str, entities: list[MessageEntity]) -> str:
    units = text.encode("utf-16-le")
    for e in sorted(entities, key=lambda e: -e.offset):
        if e.type == MessageEntity.MENTION:  # a text_mention is a name inside the sentence: keep it
            units = units[: 2 * e.offset] + units[2 * (e.offset + e.length) :]
    return re.sub(r"[ \t]{2,}", " ", units.decode("utf-16-le", errors="replace"))


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """`text` in pieces of at most `limit` UTF-16 code units, cut at whitespace where there is some."""
    pieces: list[str] = []
    while len(text.encode("utf-16-le")) // 2 > limit:
        cut = _fit(text, limit)
        space = text.rfind(" ", 0, cut + 1)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text or not pieces:
        pieces.append(text)
    return [p for p in pieces if p] or [text]


def _fit(text: str, limit: int) -> int:
    """The most characters of `text` that fit in `limit` UTF-16 code units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)
