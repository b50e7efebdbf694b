"""Facebook Messenger end-to-end-encrypted chats, from the secure-storage export.

A separate download from "Download Your Information": flat `messages/<Name>_<N>.json` files with
camelCase keys, `{"participants": ["Ada", "Bob"], "threadName": "Bob", "messages": [{"senderName",
"text", "timestamp" (ms), "type", "isUnsent", "media": [{"uri"}], "reactions"}]}`. Some of these files
carry the same Latin-1 mojibake as the classic export and some do not, so the repair stays conditional.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, SourceFile
from training.importers.messenger_json import (
    PLATFORM,
    file_stem,
    placeholder_kind,
    read_thread,
    seconds_from_ms,
    system_reason,
    thread_messages,
)

FORMAT = "messenger-e2ee"

_OBJECT_START = re.compile(r"^\ufeff?\s*\{")
_CONTAINER_KEYS = re.compile(r'"(?:participants|messages)"\s*:')
_CAMEL_KEYS = re.compile(r'"(?:senderName|threadName)"\s*:')
# The classic export's keys: a file with these belongs to messenger_json, never here.
_SNAKE_KEYS = re.compile(r'"(?:sender_name|timestamp_ms|thread_path)"\s*:')

_MEDIA_EXTENSIONS = {
    **dict.fromkeys((".jpg", ".jpeg", ".png", ".webp", ".heic", ".bmp"), "photo"),
    **dict.fromkeys((".mp4", ".mov", ".webm", ".mkv", ".avi", ".3gp"), "video"),
    ".gif": "gif",
    **dict.fromkeys((".m4a", ".aac", ".mp3", ".ogg", ".opus", ".wav", ".amr"), "voice"),
}


def sniff(head: str) -> bool:
    """A JSON object with camelCase Messenger keys (`senderName`, `threadName`) and no snake_case ones."""
    return bool(
        _OBJECT_START.match(head)
        and _CONTAINER_KEYS.search(head)
        and _CAMEL_KEYS.search(head)
        and not _SNAKE_KEYS.search(head)
    )


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    """Yield one secure-storage thread's messages, oldest first."""
    doc, items = read_thread(source)
    name = doc.get("threadName")
    name = name.strip() if isinstance(name, str) and name.strip() else file_stem(source.path)
    yield from thread_messages(items, f"{PLATFORM}:e2ee/{name}", report, _message)


def _message(item: object, conversation: str, report: FileReport) -> Message | None:
    if not isinstance(item, dict):
        report.skip("malformed message")
        return None
    if item.get("isUnsent"):
        report.skip("unsent")
        return None
    sender = item.get("senderName")
    if not isinstance(sender, str) or not sender.strip():
        report.skip("no sender")
        return None
    sender = sender.strip()
    text = item.get("text")
    text = text.strip() if isinstance(text, str) else ""
    reason = system_reason(text, sender)
    if reason:
        report.skip(reason)
        return None
    kind = _media_kind(item.get("media"))
    placeholder = placeholder_kind(text, sender)
    if placeholder:
        kind = kind or placeholder
        text = ""
    if kind is None and str(item.get("type", "")).lower() == "link":
        kind = "link"
    if kind is None:
        if not text:
            report.skip("empty message")
            return None
        kind = "text"
    return Message(conversation, PLATFORM, sender, None, seconds_from_ms(item.get("timestamp")), text, kind)


def _media_kind(media: object) -> str | None:
    """The kind of the first attachment, told by its file extension; "file" when it names none we know."""
    if not isinstance(media, list) or not media:
        return None
    first = media[0]
    uri = first.get("uri") if isinstance(first, dict) else None
    extension = os.path.splitext(uri)[1].lower() if isinstance(uri, str) else ""
    return _MEDIA_EXTENSIONS.get(extension, "file")
