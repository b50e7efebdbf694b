"""Pastes: documents, data and other chats' transcripts pasted into a message are not the sender's speech.

A drawing tool's JSON clipboard, a generated answer, an article, a log: a few such messages can outweigh
months of chat in characters, and the model then learns to write them. The import keeps them in place as
`kind: paste` (their text stays in the corpus, the stream does not read it) by one rule, stated in docs/exporting.md:

    A text message is a paste when it is longer than max(2,000, 10 x the import's 90th-percentile message
    length) characters ("paste: long"); or when it is over 300 characters and more than half of its
    non-space characters are URLs or code/data tokens ("paste: code or data"); or when one of its lines is a
    chat-export header with a sender, like "[12/03/2024, 10:15:22] Bob: ..." ("paste: transcript").

Lengths are measured on the text as imported, before scrubbing and the length cap, over every text message of
one `talklike import` run (all its inputs together), so the rule adapts to how long people in that corpus write;
the 90th percentile, not a higher one, so that a few pastes in a small import cannot raise the bar themselves.
A token (a run without spaces) is code or data when it holds a bracket, brace, `=`, `|`, `\\`, backtick, `$`,
`^`, `~`, a quoted key (`"x":`), a call (`name(`), a dotted name (`a.bc`), a snake_case name, commas without
spaces (`1,2,3`), a path (`/usr/`), or is longer than 30 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from training.importers.whatsapp import HEADER_PATTERN

LONG = "paste: long"
CODE_OR_DATA = "paste: code or data"
TRANSCRIPT = "paste: transcript"

_TOKEN = re.compile(r"\S+")
# What makes a token code, data or a link (see the module docstring); tokens over 30 characters count whole.
_STRUCTURE = re.compile(r"://|^www\.|^<(?:url|email|phone|card|iban)>|[{}\[\]<>=|\\`$^~]|\"\s*:|\w\(|\w\.[^\W\d_]{2}"
                        r"|[^\W\d_]_\w|\w,\w|/\w+/")
# Lines of other chats' exports: WhatsApp's header with a sender, an IRC log ("[10:15] <bob> "), both starting
# with a digit or a bracket; Telegram Desktop's copy ("Bob, [12.03.24 10:15]"), ending with a bracket.
_EXPORT_LINE = re.compile(HEADER_PATTERN + r"[^\n:]{1,60}: |\[?\d{1,2}:\d\d(?::\d\d)?\]? <[^<>\s]{1,32}> ")
_TELEGRAM_COPY = re.compile(r"[^\n,\[\]]{1,60}, \[\d{1,2}[./]\d{1,2}[./]\d{2,4},? \d{1,2}:\d\d(?::\d\d)?\]")
_LINE_STARTS = frozenset("0123456789[\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


@dataclass(frozen=True)
class PasteRule:
    """The paste rule's constants (see the module docstring)."""

    min_long: int = 2000  # never call a message long below this many characters
    factor: float = 10.0  # ... nor below this many times the corpus's percentile length
    percentile: float = 0.90
    structure_min_chars: int = 300
    structure_share: float = 0.5

    def long_threshold(self, lengths: Sequence[int]) -> int:
        """Characters above which a message of this corpus is a paste by length alone."""
        if not lengths:
            return self.min_long
        ordered = sorted(lengths)
        at = ordered[min(len(ordered) - 1, int(self.percentile * len(ordered)))]
        return max(self.min_long, int(self.factor * at))

    def own_reason(self, text: str) -> str | None:
        """The reason `text` is a paste whatever the corpus (code or data, a transcript), or None."""
        if len(text) > self.structure_min_chars and structure_share(text) > self.structure_share:
            return CODE_OR_DATA
        if ":" in text:  # every header holds a time
            for line in text.split("\n") if "\n" in text else (text,):
                if (line[:1] in _LINE_STARTS and _EXPORT_LINE.match(line)) or (
                        line.endswith("]") and _TELEGRAM_COPY.fullmatch(line)):
                    return TRANSCRIPT
        return None


def structure_share(text: str) -> float:
    """The share of `text`'s non-space characters that are in URLs or in code/data tokens."""
    total = structure = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        total += len(token)
        if len(token) > 30 or _STRUCTURE.search(token):
            structure += len(token)
    return structure / total if total else 0.0
