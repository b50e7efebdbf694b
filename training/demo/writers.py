"""Write a generated chat in the real export formats, quirks included (see /work/shared/FORMATS.md).

- Telegram Desktop `result.json`: full-account export (personal information, contacts and sessions holding
  fake phone numbers and IPs that an importer must never copy) or a single-chat export; `text` as a plain
  string or as a list mixing strings and entity objects; service messages; photo and sticker placeholders.
- Facebook "Download Your Information" JSON: `message_1.json … message_N.json`, newest first, every string
  mojibaked (UTF-8 bytes as Latin-1 code points) and written with `\\u00c3\\u00a9` escapes; system messages,
  an unsent message, reactions, photos and stickers.
- WhatsApp "Export chat" `.txt`, Android or iOS flavour: encryption notice, multi-line messages, media
  placeholders (iOS with U+200E marks), CRLF line endings on iOS.

Every writer is deterministic: the same messages give the same bytes.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from training.demo.chat import DemoMessage
from training.demo.personas import EMMA_EMOJI, PERSONAS

FILE_NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
OWNER_PHONE = "+1 555 0100"  # the exporting account's (fake) phone number: must never reach a corpus
# What Telegram turns into entities by itself: links, emails, phone numbers, @mentions.
_ENTITY_RE = re.compile(
    r"(?P<link>https?://\S*[^\s.,;:!?])|(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    r"|(?P<phone>\+\d[\d ]{7,}\d)|(?P<mention>(?<![\w.])@[a-z]\w*)"
)
_WORD_RE = re.compile(r"\w{4,}")


def _chronological(messages: Sequence[DemoMessage]) -> list[DemoMessage]:
    return sorted(messages, key=lambda m: (m.timestamp, m.number))


def _members(messages: Sequence[DemoMessage]) -> list[tuple[str, str]]:
    """(name, id) of every author, in order of first appearance."""
    seen: dict[str, str] = {}
    for message in messages:
        seen.setdefault(message.author, message.author_id)
    return list(seen.items())


def _local(timestamp: float, utc_offset_hours: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None) + timedelta(hours=utc_offset_hours)


# ---------------------------------------------------------------------------------------------- Telegram

def _entity_parts(text: str, rng: random.Random) -> list[tuple[str, str]]:
    """Split `text` into (entity type, text) parts: links, emails, phones, mentions; sometimes a bold/italic word."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _ENTITY_RE.finditer(text):
        if match.start() > position:
            parts.append(("plain", text[position:match.start()]))
        parts.append((match.lastgroup, match.group()))
        position = match.end()
    if parts:
        if position < len(text):
            parts.append(("plain", text[position:]))
        return parts
    words = list(_WORD_RE.finditer(text))
    if words and rng.random() < 0.15:
        word = rng.choice(words)
        style = "bold" if rng.random() < 0.6 else "italic"
        parts = [("plain", text[:word.start()]), (style, word.group()), ("plain", text[word.end():])]
        return [(kind, part) for kind, part in parts if part]
    return [("plain", text)]


def _telegram_text(text: str, rng: random.Random) -> tuple[str | list, list[dict]]:
    """`text` and `text_entities` as Telegram Desktop writes them."""
    if not text:
        return "", []
    parts = _entity_parts(text, rng)
    entities = [{"type": kind, "text": part} for kind, part in parts]
    if len(parts) == 1 and parts[0][0] == "plain":
        return text, entities
    mixed = [part if kind == "plain" else {"type": kind, "text": part} for kind, part in parts]
    return mixed, entities


def _telegram_stamp(timestamp: float, utc_offset_hours: float) -> dict[str, str]:
    return {"date": _local(timestamp, utc_offset_hours).isoformat(timespec="seconds"),
            "date_unixtime": str(int(timestamp))}


def _telegram_messages(messages: Sequence[DemoMessage], chat_name: str, utc_offset_hours: float) -> list[dict]:
    rng = random.Random(0x7E1E)  # fixed: the output depends on the input only
    ordered = _chronological(messages)
    if not ordered:
        return []
    members = _members(ordered)
    creator_name, creator_id = members[0]
    # The last member to speak joins by invitation right before their first message; the rest found the group.
    invited = members[-1] if len(members) > 1 else None
    out: list[dict] = []

    def service(timestamp: float, action: str, **extra: object) -> None:
        out.append({"id": len(out) + 1, "type": "service", **_telegram_stamp(timestamp, utc_offset_hours),
                    "actor": creator_name, "actor_id": creator_id, "action": action, **extra,
                    "text": "", "text_entities": []})

    founders = [name for name, _ in members if invited is None or name != invited[0]]
    service(ordered[0].timestamp - 600, "create_group", title=chat_name, members=founders)
    ids: dict[int, int] = {}
    pin_after = len(ordered) // 2
    for index, message in enumerate(ordered):
        if invited is not None and message.author == invited[0] and message.author_id == invited[1]:
            service(message.timestamp, "invite_members", members=[invited[0]])
            invited = None
        record: dict = {"id": len(out) + 1, "type": "message", **_telegram_stamp(message.timestamp, utc_offset_hours)}
        if message.kind == "text" and index % 41 == 7:
            edited = _telegram_stamp(message.timestamp + 45, utc_offset_hours)
            record["edited"], record["edited_unixtime"] = edited["date"], edited["date_unixtime"]
        record["from"], record["from_id"] = message.author, message.author_id
        if message.reply_to is not None and message.reply_to in ids:
            record["reply_to_message_id"] = ids[message.reply_to]
        if message.kind == "photo":
            record.update(photo=FILE_NOT_INCLUDED, width=1280, height=960)
        elif message.kind == "sticker":
            record.update(file=FILE_NOT_INCLUDED, thumbnail=FILE_NOT_INCLUDED, media_type="sticker",
                          sticker_emoji=message.sticker_emoji, width=512, height=512)
        record["text"], record["text_entities"] = _telegram_text(message.text, rng)
        ids[message.number] = record["id"]
        out.append(record)
        if index == pin_after:
            service(message.timestamp, "pin_message", message_id=record["id"])
    return out


def _telegram_account(chat: dict, first_timestamp: float, utc_offset_hours: float) -> dict:
    """A full-account export around `chat`: personal data an importer must leave behind."""
    owner, *others = PERSONAS
    stamp = _telegram_stamp(first_timestamp - 30 * 86400, utc_offset_hours)
    return {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't use your data "
                 "for ad targeting and doesn't sell it to others. Telegram only keeps the information it "
                 "needs to function as a secure and feature-rich cloud service.",
        "personal_information": {
            "user_id": int(owner.user_id.removeprefix("user")), "first_name": owner.name, "last_name": "Lovelace",
            "phone_number": OWNER_PHONE, "username": "@" + owner.username, "bio": "demo account",
        },
        "profile_pictures": [{**stamp, "photo": FILE_NOT_INCLUDED}],
        "contacts": {
            "about": "This is your contact list.",
            "list": [{"user_id": int(p.user_id.removeprefix("user")), "first_name": p.name, "last_name": "",
                      "phone_number": f"+1 555 01{index:02d}", **stamp} for index, p in enumerate(others, 1)],
        },
        "frequent_contacts": {
            "about": "This is a list of the people you frequently contact.",
            "list": [{"id": int(p.user_id.removeprefix("user")), "category": "people", "type": "user",
                      "name": p.name, "rating": round(p.participation * 3, 4)} for p in others],
        },
        "sessions": {
            "about": "We store this to display your connected devices.",
            "list": [{"last_active": stamp["date"], "last_active_unixtime": stamp["date_unixtime"],
                      "last_ip": "203.0.113.42", "last_country": "United Kingdom", "last_region": "London",
                      "application_name": "Telegram Desktop", "application_version": "4.14.9",
                      "device_model": "Desktop", "platform": "Linux", "system_version": "Ubuntu 22.04",
                      "created": stamp["date"], "created_unixtime": stamp["date_unixtime"]}],
        },
        "chats": {"about": "This page lists all chats from this export.", "list": [chat]},
        "left_chats": {"about": "This page lists all supergroups and channels from this export that you've "
                                "left or where you were banned.", "list": []},
    }


def write_telegram_export(messages: Sequence[DemoMessage], out_dir: str | Path, chat_name: str = "Demo group",
                          full_account: bool = True, utc_offset_hours: float = 0.0) -> Path:
    """Write Telegram Desktop's `out_dir/result.json` holding the chat as a private group; return its path.

    `full_account` writes the whole-account layout (personal_information, contacts, sessions, chats.list[]);
    otherwise the root is the chat itself. `date` is local time at `utc_offset_hours`; `date_unixtime` is exact.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chat = {"name": chat_name, "type": "private_group", "id": 4_000_000_000 + zlib.crc32(chat_name.encode()) % 10**8,
            "messages": _telegram_messages(messages, chat_name, utc_offset_hours)}
    root = chat
    if full_account:
        first = min((m.timestamp for m in messages), default=0.0)
        root = _telegram_account(chat, first, utc_offset_hours)
    path = out / "result.json"
    # Telegram Desktop writes real UTF-8 (no escapes) with a one-space indent.
    path.write_text(json.dumps(root, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- Messenger

def mojibake(text: str) -> str:
    """Facebook's export encoding: each UTF-8 byte written as the Latin-1 code point of the same value."""
    return text.encode("utf-8").decode("latin-1")


def write_messenger_export(messages: Sequence[DemoMessage], out_dir: str | Path,
                           root: str = "your_facebook_activity/messages", thread: str = "demogroup_1234567890",
                           per_file: int = 1000, title: str = "Demo") -> Path:
    """Write `out_dir/<root>/inbox/<thread>/message_1.json …` as Facebook does; return the thread folder.

    message_1.json holds the newest `per_file` messages, each file newest first. Captioned photos become a
    photo followed 1 ms later by a text message (Messenger stores them apart). Exports under the pre-2024
    root `messages` give every message a `type`; newer ones only the system messages.
    """
    if per_file < 1:
        raise ValueError(f"per_file must be >= 1, got {per_file}")
    rng = random.Random(0xFACE)
    legacy = root.strip("/").split("/")[0] == "messages"
    folder = Path(out_dir) / root / "inbox" / thread
    folder.mkdir(parents=True, exist_ok=True)
    ordered = _chronological(messages)
    members = [name for name, _ in _members(ordered)]
    records: list[dict] = []  # oldest first; reversed at the end

    def add(sender: str, timestamp_ms: int, kind: str | None = "Generic", **fields: object) -> None:
        record: dict = {"sender_name": mojibake(sender), "timestamp_ms": timestamp_ms, **fields}
        if kind is not None and (legacy or kind != "Generic"):
            record["type"] = kind
        record["is_geoblocked_for_viewer"] = False
        records.append(record)

    if ordered:
        creator, start_ms = members[0], int(ordered[0].timestamp * 1000)
        add(creator, start_ms - 300_000, content=mojibake(f"{creator} named the group {title}."))
    added = members[-1] if len(members) > 1 else None
    unsent_at = len(ordered) // 3
    for index, message in enumerate(ordered):
        ms = int(message.timestamp * 1000)
        if added is not None and message.author == added:
            add(members[0], ms - 1000, "Subscribe", content=mojibake(f"{members[0]} added {added} to the group."),
                users=[{"name": mojibake(added)}])
            added = None
        fields: dict = {}
        if message.kind == "photo":
            fields["photos"] = [{"uri": f"{root}/inbox/{thread}/photos/{message.number}_{ms}_n.jpg",
                                 "creation_timestamp": int(message.timestamp)}]
        elif message.kind == "sticker":
            fields["sticker"] = {"uri": f"{root}/stickers_used/{zlib.crc32(message.sticker_emoji.encode())}_n.png",
                                 "ai_stickers": []}
        else:
            fields["content"] = mojibake(message.text)
        if rng.random() < 0.07 and len(members) > 1:
            actor = rng.choice([name for name in members if name != message.author] or members)
            fields["reactions"] = [{"reaction": mojibake(rng.choice(EMMA_EMOJI[:6] + ("❤", "👍"))),
                                    "actor": mojibake(actor)}]
        add(message.author, ms, **fields)
        if message.kind == "photo" and message.text:
            add(message.author, ms + 1, content=mojibake(message.text))
        if index == unsent_at:
            add(message.author, ms + 2, is_unsent=True)
    records.reverse()  # newest first, as Facebook writes them

    header_names = [{"name": mojibake(name)} for name in members]
    chunks = [records[i:i + per_file] for i in range(0, len(records), per_file)] or [[]]
    for number, chunk in enumerate(chunks, 1):
        document = {
            "participants": header_names,
            "messages": chunk,
            "title": mojibake(title),
            "is_still_participant": True,
            "thread_type": "RegularGroup",
            "thread_path": f"inbox/{thread}",
            "magic_words": [],
            "image": {"uri": f"{root}/inbox/{thread}/photos/group_image.jpg", "creation_timestamp": 0},
            "joinable_mode": {"mode": 1, "link": ""},
        }
        # ensure_ascii: the mojibake then shows as \u00c3\u00a9 escapes, exactly like a real download.
        (folder / f"message_{number}.json").write_text(json.dumps(document, ensure_ascii=True, indent=2),
                                                       encoding="ascii")
    return folder


# ---------------------------------------------------------------------------------------------- WhatsApp

_ENCRYPTION = ("Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, "
               "can read or listen to them.")


def write_whatsapp_export(messages: Sequence[DemoMessage], path: str | Path, style: str = "android",
                          chat_name: str = "Demo group", utc_offset_hours: float = 0.0) -> Path:
    """Write a WhatsApp "Export chat" text file ("without media") at `path`; return it.

    android: `12/28/19, 21:43 - Name: text`, LF, `<Media omitted>`.
    ios: `[28.12.19, 21:43:05] Name: text`, CRLF, media lines marked with U+200E (`‎image omitted`).
    Times are local at `utc_offset_hours`. Photo captions are not written: without media, exports show only
    the placeholder.
    """
    if style not in ("android", "ios"):
        raise ValueError(f"style must be 'android' or 'ios', got {style!r}")
    ios = style == "ios"
    ordered = _chronological(messages)
    members = [name for name, _ in _members(ordered)]
    lines: list[str] = []

    def header(timestamp: float) -> str:
        t = _local(timestamp, utc_offset_hours)
        if ios:
            return f"[{t.day:02d}.{t.month:02d}.{t.year % 100:02d}, {t.hour:02d}:{t.minute:02d}:{t.second:02d}] "
        return f"{t.month}/{t.day}/{t.year % 100:02d}, {t.hour:02d}:{t.minute:02d} - "

    def system(timestamp: float, text: str) -> None:
        # iOS writes system events under the group's name with a U+200E-marked body; Android without a sender.
        lines.append(f"{header(timestamp)}{chat_name}: \u200e{text}" if ios else f"{header(timestamp)}{text}")

    if ordered:
        start = ordered[0].timestamp - 600
        system(start, _encryption_notice(ios))
        system(start, f"{members[0]} created group “{chat_name}”" if ios else f'{members[0]} created group "{chat_name}"')
    added = members[-1] if len(members) > 1 else None
    for message in ordered:
        if added is not None and message.author == added:
            system(message.timestamp, f"{members[0]} added {added}")
            added = None
        if message.kind == "text":
            lines.append(f"{header(message.timestamp)}{message.author}: {message.text}")
        elif ios:
            placeholder = "image omitted" if message.kind == "photo" else "sticker omitted"
            lines.append(f"\u200e{header(message.timestamp)}{message.author}: \u200e{placeholder}")
        else:
            lines.append(f"{header(message.timestamp)}{message.author}: <Media omitted>")
    newline = "\r\n" if ios else "\n"
    # A message's own line breaks become continuation lines, in the file's line ending.
    body = newline.join(lines).replace("\r\n", "\n").replace("\n", newline) + newline if lines else ""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="") as handle:
        handle.write(body)
    return target


def _encryption_notice(ios: bool) -> str:
    return _ENCRYPTION if ios else _ENCRYPTION + " Tap to learn more."
