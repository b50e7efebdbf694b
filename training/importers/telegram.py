"""Telegram Desktop `result.json`: one chat, or a full-account export holding every chat.

A full-account export also carries `personal_information`, `contacts`, `frequent_contacts`, `sessions`
and `about` (phone numbers, IP addresses). This module reads only `chats.list` and `left_chats.list`
and drops its reference to the root at once, so none of that can ever reach the corpus.

Times come from `date_unixtime`; exports without it give only `date`, the sender's local wall-clock time
without a zone, which is read as if it were UTC (off by the sender's UTC offset, consistent within a chat).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile, paused_gc

FORMAT = "telegram"
PLATFORM = "telegram"

_CHAT_TYPES = (
    "personal_chat|bot_chat|private_group|private_supergroup|public_supergroup|private_channel"
    "|public_channel|saved_messages|replies"
)
_CHAT_TYPE = re.compile(r'"type"\s*:\s*"(?:' + _CHAT_TYPES + ')"')
_MESSAGE_KEY = re.compile(r'"(?:date_unixtime|from_id|text_entities|actor_id)"\s*:')
_ACCOUNT_ROOT = re.compile(r'^\{\s*"about"\s*:')
_ACCOUNT_KEY = re.compile(r'"(?:personal_information|left_chats|frequent_contacts|chats)"\s*:')
# Other JSON formats' own keys: their sniffs claim these files.
_FOREIGN_KEY = re.compile(r'"(?:sender_name|senderName|letters|participants)"\s*:')

# media_type -> corpus kind
_MEDIA_TYPES = {
    "sticker": "sticker",
    "voice_message": "voice",
    "video_message": "video",
    "video_file": "video",
    "animation": "gif",
    "audio_file": "audio",
}
_MAX_EPOCH = 1e12  # larger (or NaN/infinite) values are not times
# What Telegram writes where a file was not exported: never words anyone said.
_PLACEHOLDER = re.compile(r"\(File (?:not included|exceeds maximum size|unavailable)[^()]*\)")


def sniff(head: str) -> bool:
    """A JSON object with Telegram's chat or account keys (and none of the other JSON formats' keys)."""
    head = head.lstrip("\ufeff \t\r\n")
    if not head.startswith("{") or _FOREIGN_KEY.search(head):
        return False
    if '"personal_information"' in head or '"left_chats"' in head:
        return True
    if _ACCOUNT_ROOT.match(head) and _ACCOUNT_KEY.search(head):
        return True
    return bool(_CHAT_TYPE.search(head)) or ('"messages"' in head and bool(_MESSAGE_KEY.search(head)))


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    """Yield the messages of every chat in the export, each chat in its own order."""
    with paused_gc():
        chats = _chats(source.json())  # the root (with the account's personal data) is not kept
        messages = [message for chat in chats for message in _chat_messages(chat, report)]
    yield from messages



def _chats(root: object) -> list[dict]:
    """The chat objects of a single-chat or a full-account export."""
    if not isinstance(root, dict):
        raise ParseError(f"expected a JSON object at the top, got {_type_name(root)}")
    if "chats" in root or "left_chats" in root:
        chats: list[dict] = []
        for section in ("chats", "left_chats"):
            listing = root.get(section)
            if isinstance(listing, dict):
                listing = listing.get("list")
            if listing is None:
                continue
            if not isinstance(listing, list):
                raise ParseError(f"'{section}.list' must be a list, got {_type_name(listing)}")
            chats.extend(chat for chat in listing if isinstance(chat, dict))
        return chats
    if "messages" in root:
        return [root]
    raise ParseError("no 'messages' or 'chats' in this Telegram export")


def _chat_messages(chat: dict, report: FileReport) -> Iterator[Message]:
    messages = chat.get("messages")
    if not isinstance(messages, list):
        if messages is not None:
            raise ParseError(f"'messages' must be a list, got {_type_name(messages)}")
        return
    chat_id = chat.get("id")
    name = chat.get("name")
    if isinstance(chat_id, bool) or not isinstance(chat_id, (int, str)) or chat_id == "":
        chat_id = name if isinstance(name, str) and name else "unknown"
    conversation = f"{PLATFORM}:{chat_id}"
    chat_type = chat.get("type")
    # Channel posts of some exports carry no sender: the channel speaks.
    fallback = name if isinstance(name, str) and name and isinstance(chat_type, str) and "channel" in chat_type else "Unknown"
    for item in messages:
        message = _message(item, conversation, fallback, report)
        if message is not None:
            yield message


def _message(item: object, conversation: str, fallback: str, report: FileReport) -> Message | None:
    """One export message as a corpus message, or None (counted in the report) when it is not speech."""
    if not isinstance(item, dict):
        report.skip("malformed message")
        return None
    kind_of = item.get("type", "message")
    if kind_of == "service":
        action = item.get("action")
        report.skip(f"service: {action}" if isinstance(action, str) and action else "service")
        return None
    if kind_of != "message":
        report.skip("unsupported")
        return None

    text = message_text(item.get("text"))
    if _PLACEHOLDER.fullmatch(text.strip()):
        text = ""
    kind = media_kind(item)
    if kind == "sticker":
        emoji = item.get("sticker_emoji")
        text = emoji if isinstance(emoji, str) else ""
    elif kind == "contact":
        text = ""  # a shared contact is someone's phone number, never speech
    elif kind == "poll" and not text:
        poll = item.get("poll")
        question = poll.get("question") if isinstance(poll, dict) else None
        text = question if isinstance(question, str) else ""
    if kind == "text" and not text.strip():
        report.skip("empty")
        return None

    author, author_id = sender(item, fallback)
    # Someone else's words under the sender's name: a forward (a channel's news forwarded into a group arrives
    # under the forwarder), a message saved from elsewhere, a post an inline bot wrote. They keep their place
    # and their text, under a kind the model does not read as the sender's speech.
    if "forwarded_from" in item or "saved_from" in item:
        kind = "forward"
    elif item.get("via_bot"):
        kind = "via_bot"
    return Message(conversation, PLATFORM, author, author_id, timestamp(item), text, kind)


def message_text(value: object) -> str:
    """`text` as one string: a plain string, or a list of strings and entity objects joined with ''."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    parts = []
    for part in value:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def media_kind(item: dict) -> str:
    """The corpus kind of a message: "text", or the kind of what it carries."""
    media_type = item.get("media_type")
    if isinstance(media_type, str) and media_type in _MEDIA_TYPES:
        return _MEDIA_TYPES[media_type]
    if "photo" in item:
        return "photo"
    if "contact_information" in item or "contact_vcard" in item:
        return "contact"
    if "location_information" in item:
        return "location"
    if "poll" in item:
        return "poll"
    if "file" in item or media_type is not None:
        return "file"
    return "text"


def sender(item: dict, fallback: str) -> tuple[str, str | None]:
    """(author, author_id). A deleted account has `from: null` but keeps its `from_id`."""
    raw_id = item.get("from_id")
    if isinstance(raw_id, str) and raw_id:
        author_id: str | None = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        author_id = f"user{raw_id}"  # old exports wrote the bare user number
    else:
        author_id = None
    if "from" in item and item["from"] is None:
        return "Deleted Account", author_id
    name = item.get("from")
    if isinstance(name, str) and name.strip():
        return name.strip(), author_id
    return fallback, author_id


def timestamp(item: dict) -> float | None:
    """Seconds since the epoch from `date_unixtime`, else from `date` read as UTC; None if neither parses."""
    unix = item.get("date_unixtime")
    if isinstance(unix, str):
        unix = unix.strip()
        if unix.isascii() and unix.isdigit() and len(unix) <= 12:
            return float(unix)
    if isinstance(unix, (int, float)) and not isinstance(unix, bool) and abs(unix) < _MAX_EPOCH:
        return float(unix)
    date = item.get("date")
    if isinstance(date, str):
        try:
            moment = datetime.fromisoformat(date.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return None


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__
