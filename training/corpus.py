"""The canonical corpus: JSON Lines, one message per line, each conversation oldest first.

Every importer produces `Message` objects; every later step reads them back with `read_corpus`.
The schema is the contract in DESIGN.md; nothing else from an export (phone numbers, contacts,
profile data) has a field to live in.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from talklike.errors import UserError

TEXT = "text"
# Non-text kinds keep their place in the conversation; their text may be empty.
MEDIA_KINDS = ("photo", "video", "sticker", "voice", "audio", "gif", "file", "link", "call", "location", "contact", "poll")
# Words filed under the author that are not the author's own: kept in place with their text, so the conversation
# reads in its true order, but never read as the author's speech (model/stream.py skips them, as it skips `link`,
# a shared page's preview). `forward`: a forwarded or saved message (someone else wrote it); `via_bot`: a post an
# inline bot wrote; `paste`: a document or data pasted in, or a pasted transcript of another chat (training/pastes.py).
OTHER_WORDS_KINDS = ("forward", "via_bot", "paste")
KINDS = (TEXT, *MEDIA_KINDS, *OTHER_WORDS_KINDS, "other")
FIELDS = ("conversation", "platform", "author", "author_id", "timestamp", "text", "kind")


@dataclass
class Message:
    conversation: str  # "platform:chat id", stable across imports of the same export
    platform: str  # messenger, telegram, whatsapp, facebooklearner, csv, text, ...
    author: str  # display name after aliases
    author_id: str | None  # the platform's id where one exists
    timestamp: float | None  # seconds since the epoch (UTC); None where the export has no time
    text: str
    kind: str = TEXT

    def to_json(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies and costs 4x more, which dominates large imports.
        return _ENCODE(
            {
                "conversation": self.conversation,
                "platform": self.platform,
                "author": self.author,
                "author_id": self.author_id,
                "timestamp": self.timestamp,
                "text": self.text,
                "kind": self.kind,
            }
        )


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def message_from_dict(obj: object, where: str) -> Message:
    """Validate one decoded corpus line; `where` names it in errors ("corpus.jsonl:12")."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - set(FIELDS)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for field in ("conversation", "author", "text"):
        if not isinstance(obj.get(field), str):
            raise UserError(f"{where}: field '{field}' must be a string")
    if not obj["author"].strip():
        raise UserError(f"{where}: field 'author' is empty")
    timestamp = obj.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (int, float))):
        raise UserError(f"{where}: field 'timestamp' must be a number or null")
    author_id = obj.get("author_id")
    if author_id is not None and not isinstance(author_id, str):
        author_id = str(author_id)
    kind = obj.get("kind", TEXT)
    if kind not in KINDS:
        raise UserError(f"{where}: field 'kind' is {kind!r}, expected one of {', '.join(KINDS)}")
    platform = obj.get("platform") or obj["conversation"].split(":", 1)[0]
    if not isinstance(platform, str):
        raise UserError(f"{where}: field 'platform' must be a string")
    return Message(
        conversation=obj["conversation"],
        platform=platform,
        author=obj["author"],
        author_id=author_id,
        timestamp=None if timestamp is None else float(timestamp),
        text=obj["text"],
        kind=kind,
    )


def read_corpus(path: str | os.PathLike) -> Iterator[Message]:
    """Yield the messages of a corpus file; a bad line is a UserError naming file and line."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read corpus ({err.strerror})") from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{number}:{err.colno}: not valid JSON ({err.msg})") from None
                yield message_from_dict(obj, f"{path}:{number}")
        except UnicodeDecodeError as err:
            raise UserError(f"{path}: not UTF-8 text (byte {err.start})") from None


def write_corpus(path: str | os.PathLike, messages: Iterable[Message]) -> int:
    """Write messages atomically (temp file + rename): an interrupted write never leaves half a corpus."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".corpus-", suffix=".tmp", dir=directory)
    except OSError as err:
        raise UserError(f"{path}: cannot write corpus ({err.strerror})") from None
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for message in messages:
                out.write(message.to_json())
                out.write("\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return count
