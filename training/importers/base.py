"""What every importer shares: the file it reads, the report it fills, the errors it raises.

An importer module defines:

    FORMAT = "telegram"                                  # name shown in the report
    def sniff(head: str) -> bool                         # content-based detection on the decoded head
    def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]

`parse` yields messages in conversation order (oldest first) and calls `report.skip(reason)` for every
event or line it drops, so nothing is lost silently. Words filed under someone that are not theirs either
keep their place under a kind of their own (`forward`, `via_bot`; the pipeline adds `paste`) or, when they are
the app's own lines, are dropped under a reason. A file it cannot read raises `ParseError` with a
message that does not repeat the path (the pipeline prefixes it).
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from talklike.errors import UserError


class ParseError(UserError):
    """This file cannot be imported; the text says why (and where, for JSON: line and column)."""


@dataclass
class SourceFile:
    """One input file, possibly inside a zip. `path` is for people: `export.zip!messages/x/message_1.json`."""

    path: str
    data: bytes

    def text(self) -> str:
        """The file decoded as UTF-8 (a byte order mark is dropped); a ParseError if it is not UTF-8."""
        data = self.data
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                return data.decode("utf-16")
            except UnicodeDecodeError:
                raise ParseError("not valid UTF-16 text") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ParseError(f"not UTF-8 text (invalid byte at offset {err.start})") from None

    def json(self) -> object:
        """The file parsed as JSON, tolerating raw control characters inside strings (Telegram writes
        them); a ParseError naming line and column where the document breaks."""
        text = self.text()
        if not text.strip():
            raise ParseError("empty file")
        try:
            return json.loads(text, strict=False)
        except json.JSONDecodeError as err:
            raise ParseError(f"line {err.lineno}, column {err.colno}: invalid JSON ({err.msg})") from None
        except RecursionError:
            raise ParseError("JSON nested too deeply") from None


@dataclass
class ImportOptions:
    """Settings that change how files are read (filters and aliases apply later, in the pipeline)."""

    author: str | None = None  # the author of plain-text files (one message per line)
    day_first: bool | None = None  # WhatsApp: force the date order instead of inferring it per file
    # WhatsApp: the key of the phone-number pseudonyms, asked for once per file (see importers/pseudonyms.py);
    # None: a random key for this process, so names are stable within one import only
    pseudonym_key: Callable[[], bytes] | None = None


# Kinds kept in place whose words are not the author's, with the reason the report counts them under (pastes get
# theirs from training/pastes.py).
SET_ASIDE = {"forward": "forwarded", "via_bot": "via bot", "paste": "paste"}


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    format: str | None = None
    messages: int = 0  # text messages
    media: int = 0  # non-text messages kept with their kind
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    # kept in place but not the author's own words (forwards, bot posts, pastes): reason -> count
    set_aside: Counter = field(default_factory=Counter)
    masked: Counter = field(default_factory=Counter)  # kind of identifier scrubbed ("phone", "url", ...) -> count
    cut: int = 0  # messages cut to the length cap before scrubbing
    conversations: set = field(default_factory=set)
    error: str | None = None

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

    def count(self, message) -> None:
        """Record a kept message (the pipeline calls this, importers need not)."""
        self.conversations.add(message.conversation)
        if message.kind == "text":
            self.messages += 1
        elif message.kind in SET_ASIDE:
            self.set_aside[SET_ASIDE[message.kind]] += 1
        else:
            self.media += 1

    def set_aside_text(self, reason: str) -> None:
        """A text message counted already turned out not to be speech (a paste, decided over the whole import)."""
        self.messages -= 1
        self.set_aside[reason] += 1

    def to_json(self) -> dict:
        out = {
            "path": self.path,
            "format": self.format,
            "conversations": len(self.conversations),
            "messages": self.messages,
            "media": self.media,
            "skipped": dict(sorted(self.skipped.items())),
            "set_aside": dict(sorted(self.set_aside.items())),
            "masked": dict(sorted(self.masked.items())),
            "cut_to_length": self.cut,
        }
        if self.error:
            out["error"] = self.error
        return out


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many long-lived objects.

    Decoding an export allocates millions of containers that all stay alive; the collector would rescan
    them again and again (a quarter to a half of an import) without finding anything to free.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
