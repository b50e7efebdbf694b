"""Facebook Messenger, "Download Your Information" in JSON: one `message_<N>.json` per thread part.

Files live at `<root>/<section>/<thread>_<hash>/message_<N>.json`, where the root is `messages/`,
`your_activity_across_facebook/messages/` or `your_facebook_activity/messages/` depending on the year,
and the section is one of `SECTIONS` (`e2ee_cutover` holds the history from before a chat switched to
end-to-end encryption). A long thread is split across files; each file is parsed on its own under the
same conversation key and the pipeline merges them by time.

The text rules shared by the three Messenger importers live here too: which lines are system events,
which are media placeholders, how a thread folder becomes a conversation key, and the ordering rule.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile
from training.importers.mojibake import repair_tree

FORMAT = "messenger"
PLATFORM = "messenger"
SECTIONS = ("inbox", "archived_threads", "filtered_threads", "message_requests", "e2ee_cutover")

_OBJECT_START = re.compile(r"^\ufeff?\s*\{")
_PARTICIPANTS_KEY = re.compile(r'"participants"\s*:')
_SNAKE_KEYS = re.compile(r'"(?:sender_name|timestamp_ms|thread_path)"\s*:')
_THREAD_FILE = re.compile(r"^message_(\d+)\.(?:json|html?)$", re.IGNORECASE)

# Media fields in the order they decide a message's kind, with the kind each one gives.
_MEDIA_FIELDS = (
    ("photos", "photo"),
    ("videos", "video"),
    ("gifs", "gif"),
    ("audio_files", "voice"),
    ("files", "file"),
)

# System lines Messenger writes as if someone had said them. Lines with an actor only count when the
# actor is "You" or the sender (so "my cousin named the group chat Bob" stays speech).
_ACTOR = r"(?P<actor>.+?)"
# Names in lines without a checkable actor never hold a sentence break ("You called it! Then ...").
_NAME = r"[^!?\n]+"
_SYSTEM_LINES = tuple(
    (re.compile(pattern + r"\s*[.!]?\s*", re.IGNORECASE | re.DOTALL), reason, pattern.startswith(_ACTOR))
    for pattern, reason in (
        (_ACTOR + r" named the group .+", "system event"),
        (_ACTOR + r" (?:removed|changed) the group name(?: to .+)?", "system event"),
        (_ACTOR + r" added .+ to the group", "system event"),
        (_ACTOR + r" removed .+ from the group", "system event"),
        (_ACTOR + r" left the group", "system event"),
        (_ACTOR + r" joined the group(?: .+)?", "system event"),
        (_ACTOR + r" created the group", "system event"),
        (_ACTOR + r" set the nickname for .+ to .+", "system event"),
        (_ACTOR + r" set (?:his|her|their|your) own nickname to .+", "system event"),
        (_ACTOR + r" cleared (?:the nickname for .+|(?:his|her|their|your) own nickname)", "system event"),
        (_ACTOR + r" changed the group photo", "system event"),
        (_ACTOR + r" (?:changed|set) the (?:chat )?(?:theme|colou?rs?)(?: to .+)?", "system event"),
        (_ACTOR + r" set the (?:quick reaction|emoji) to .+", "system event"),
        (_ACTOR + r" made .+ an? (?:group )?admin", "system event"),
        (_ACTOR + r" removed .+ as an? (?:group )?admin", "system event"),
        (_ACTOR + r" (?:pinned|unpinned) a message", "system event"),
        (_ACTOR + r" reacted .+ to your message", "system event"),
        (_ACTOR + r" unsent a message", "unsent"),
        (r"You are now connected on Messenger", "system event"),
        (
            r"Messages (?:and calls )?(?:are|you send to this chat and calls are) (?:now )?secured with end-to-end "
            r"encryption\b.*",
            "system event",
        ),
        (r"You can now (?:message|call) " + _NAME, "system event"),
        (r"Say hi to your new Facebook friend,? " + _NAME, "system event"),
        (_ACTOR + r" waved at you", "system event"),
        (r"You called " + _NAME, "call event"),
        (_ACTOR + r" called you", "call event"),
        (_NAME + r" missed your (?:video )?call", "call event"),
        (r"You missed a (?:video )?call from " + _NAME, "call event"),
        (r"The (?:video chat|video call|call|audio call) ended", "call event"),
        (_ACTOR + r" (?:started|stopped) sharing video", "call event"),
        (_ACTOR + r" (?:started|joined) (?:a |an |the )?(?:video |audio )?(?:call|chat)", "call event"),
    )
)

# Every system line holds one of these words: a plain substring scan spares most messages the list above
# (much faster than one alternation regex on a large export).
_SYSTEM_HINTS = (
    "group", "nickname", "theme", "colo", "emoji", "reaction", "admin", "pinned", "reacted", "unsent",
    "messenger", "encryption", "you can now", "say hi", "waved", "call", "video", "chat",
)  # fmt: skip

# "Bob sent a photo." stands in for the attachment itself: the kind is kept, the sentence is not speech.
_PLACEHOLDER = re.compile(
    _ACTOR
    + r" sent (?:a|an|\d+) (?P<noun>photo|video|gif|sticker|voice message|audio clip|attachment|link|file)"
    r"s?(?: from .+)?\s*\.?\s*",
    re.IGNORECASE | re.DOTALL,
)
_PLACEHOLDER_KINDS = {
    "photo": "photo",
    "video": "video",
    "gif": "gif",
    "sticker": "sticker",
    "voice message": "voice",
    "audio clip": "voice",
    "attachment": "file",
    "file": "file",
    "link": "link",
}


def sniff(head: str) -> bool:
    """A JSON object with `participants` and snake_case message keys (`sender_name`, `timestamp_ms`)."""
    return bool(_OBJECT_START.match(head) and _PARTICIPANTS_KEY.search(head) and _SNAKE_KEYS.search(head))


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    """Yield one thread file's messages, oldest first, with mojibake repaired everywhere."""
    doc, items = read_thread(source)
    yield from thread_messages(items, f"{PLATFORM}:{_thread_key(doc, source.path)}", report, _message)


def body_kind(text: str, sender: str, media: str | None, report: FileReport) -> tuple[str, str] | None:
    """(kind, text) of a message: its media kind or a placeholder's (the placeholder's words dropped), else
    "text"; or None after counting it as a system event, call or empty message."""
    reason = system_reason(text, sender)
    if reason:
        report.skip(reason)
        return None
    kind = media
    placeholder = placeholder_kind(text, sender)
    if placeholder:
        kind = kind or placeholder
        text = ""
    if kind is None:
        if not text:
            report.skip("empty message")
            return None
        kind = "text"
    return kind, text


def read_thread(source: SourceFile) -> tuple[dict, list]:
    """A thread file's JSON object, mojibake repaired, and its `messages` list; ParseError when it has none."""
    doc = source.json()
    if not isinstance(doc, dict):
        raise ParseError(f"expected a Messenger thread (a JSON object), got a JSON {type(doc).__name__}")
    doc = repair_tree(doc)
    items = doc.get("messages")
    if not isinstance(items, list):
        raise ParseError("field 'messages' is missing or not a list")
    return doc, items


def thread_messages(items: list, conversation: str, report: FileReport,
                    read_one: Callable[[object, str, FileReport], Message | None]) -> Iterator[Message]:
    """The thread's messages that `read_one` keeps, oldest first whatever order the file lists them in."""
    messages = [m for m in (read_one(item, conversation, report) for item in items) if m is not None]
    yield from oldest_first(messages)


def _message(item: object, conversation: str, report: FileReport) -> Message | None:
    """One message, or None after recording why it was dropped."""
    if not isinstance(item, dict):
        report.skip("malformed message")
        return None
    if item.get("is_unsent"):
        report.skip("unsent")
        return None
    sender = item.get("sender_name")
    if not isinstance(sender, str) or not sender.strip():
        report.skip("no sender")
        return None
    sender = sender.strip()
    if item.get("is_taken_down"):
        report.skip("taken down")
        return None
    if item.get("is_geoblocked_for_viewer"):
        report.skip("geoblocked")
        return None
    kind_field = item.get("type")
    if kind_field in ("Subscribe", "Unsubscribe"):
        report.skip("system event")
        return None
    if kind_field == "Call":  # a call happened; nobody said anything
        report.skip("missed call" if item.get("missed") else "call event")
        return None
    content = item.get("content")
    text = content.strip() if isinstance(content, str) else ""
    kept = body_kind(text, sender, _media_kind(item), report)
    if kept is None:
        return None
    kind, text = kept
    # Share previews (share_text, link) describe someone else's page: only the sender's own words are kept.
    return Message(
        conversation, PLATFORM, sender, None, seconds_from_ms(item.get("timestamp_ms")), text, kind
    )


def _media_kind(item: dict) -> str | None:
    for field, kind in _MEDIA_FIELDS:
        value = item.get(field)
        if isinstance(value, list) and value:
            return kind
    if isinstance(item.get("sticker"), dict):
        return "sticker"
    if isinstance(item.get("share"), dict) or item.get("type") == "Share":
        return "link"
    return None


def _thread_key(doc: dict, path: str) -> str:
    """`inbox/bob_123`: the thread's own `thread_path`, else its folder, else whatever names it."""
    thread_path = doc.get("thread_path")
    if isinstance(thread_path, str) and thread_path.strip("/ "):
        parts = [part for part in thread_path.replace("\\", "/").split("/") if part]
        for index in range(len(parts) - 1):
            if parts[index] in SECTIONS:
                return f"{parts[index]}/{parts[index + 1]}"
        return "/".join(parts)
    folder = thread_folder(path)
    if folder:
        return folder
    title = doc.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return file_stem(path)


# ---------------------------------------------------------------- shared by the Messenger importers


def thread_folder(path: str) -> str | None:
    """`<section>/<thread>` from a path like `export.zip!messages/inbox/bob_123/message_2.json`; None when
    the file does not sit in a thread folder under a known section."""
    parts = [part for part in path.split("!")[-1].replace("\\", "/").split("/") if part]
    for index in range(len(parts) - 2, 0, -1):  # the section is never the file itself
        if parts[index - 1] in SECTIONS:
            return f"{parts[index - 1]}/{parts[index]}"
    return None


def file_stem(path: str) -> str:
    """The file's name without folders (zip members included) or extension."""
    name = path.split("!")[-1].replace("\\", "/").rsplit("/", 1)[-1]
    return os.path.splitext(name)[0] or name


def thread_file_number(path: str) -> int:
    """N of `message_N.json` (or `.html`), so a thread's parts sort as numbers: message_10 after message_9.
    Files with other names give 0."""
    match = _THREAD_FILE.match(path.split("!")[-1].replace("\\", "/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else 0


def seconds_from_ms(milliseconds: object) -> float | None:
    """Epoch milliseconds as seconds; None for anything that is not a finite number."""
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, (int, float)):
        return None
    try:
        seconds = milliseconds / 1000.0
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _actor_matches(actor: str, sender: str) -> bool:
    actor = actor.strip()
    return actor.lower() == "you" or actor == sender or sender.startswith(actor + " ")


def system_reason(text: str, sender: str) -> str | None:
    """The skip reason when `text` is a system line Messenger attributes to `sender`, else None."""
    if not text or len(text) > 300:  # system lines are short
        return None
    lowered = text.lower()
    for hint in _SYSTEM_HINTS:
        if hint in lowered:
            break
    else:
        return None
    for pattern, reason, has_actor in _SYSTEM_LINES:
        match = pattern.fullmatch(text)
        if match and (not has_actor or _actor_matches(match.group("actor"), sender)):
            return reason
    return None


def placeholder_kind(text: str, sender: str) -> str | None:
    """The media kind when `text` only stands in for an attachment ("Bob sent a photo."), else None."""
    if not text or len(text) > 300 or " sent " not in text:
        return None
    match = _PLACEHOLDER.fullmatch(text)
    if match and _actor_matches(match.group("actor"), sender):
        return _PLACEHOLDER_KINDS[match.group("noun").lower()]
    return None


def reread(text: str, sender: str) -> tuple[str | None, str]:
    """What today's rules make of a text an earlier import kept as `sender`'s speech: (kind, text), or
    (None, reason) when it is a system line after all."""
    reason = system_reason(text, sender)
    if reason:
        return None, reason
    kind = placeholder_kind(text, sender)
    return (kind, "") if kind else ("text", text)


def oldest_first(messages: list[Message]) -> list[Message]:
    """Messenger writes newest first: reverse document order (unless the known times already rise), then
    sort by time when every message has one. The sort is stable, so equal times keep their order."""
    known = [message.timestamp for message in messages if message.timestamp is not None]
    ordered = list(messages) if len(known) >= 2 and known[0] < known[-1] else messages[::-1]
    if len(known) == len(messages):
        ordered.sort(key=lambda message: message.timestamp)
    return ordered
