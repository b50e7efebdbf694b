"""Content-based format detection: the file's first bytes decide, never its name.

Importers are tried most specific first (their sniffs are written to be mutually exclusive, the order
is a safety net). Plain text is offered last and only when the user said who wrote it (`--author`).
"""

from __future__ import annotations

from types import ModuleType

from training.importers import (
    corpus_jsonl,
    facebooklearner,
    messenger_e2ee,
    messenger_html,
    messenger_json,
    plain_text,
    tabular,
    telegram,
    whatsapp,
)

IMPORTERS: tuple[ModuleType, ...] = (
    messenger_e2ee,
    messenger_json,
    facebooklearner,
    telegram,
    corpus_jsonl,
    messenger_html,
    whatsapp,
    tabular,
)
FORMATS = tuple(module.FORMAT for module in (*IMPORTERS, plain_text))


def decode_head(head: bytes) -> str | None:
    """The head as text for sniffing, or None for binary data. A cut multi-byte character at the end
    is tolerated; invalid UTF-8 elsewhere means the file is not text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    if b"\x00" in head:
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(head) - 3:
            return head[: err.start].decode("utf-8")
        return None


def detect(head: bytes, plain_text_author: str | None = None) -> ModuleType | None:
    """The importer module for a file starting with `head`, or None if no format matches."""
    text = decode_head(head)
    if text is None or not text.strip():
        return None
    for module in IMPORTERS:
        if module.sniff(text):
            return module
    if plain_text_author and plain_text.sniff(text):
        return plain_text
    return None
