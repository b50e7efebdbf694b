"""FacebookLearner `messages.json`: one group conversation, in order, without timestamps.

    {"letters": "...", "authors": [{"email": id, "name": display}], "messages": [{"email": id, "message": text}]}

Emails are personal data: they never reach the corpus. Authors are identified by a pseudonym derived
from the email ("fbl:" + 8 hex digits of its SHA-256), and the conversation key hashes the author list.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile, paused_gc

FORMAT = "facebooklearner"
PLATFORM = "facebooklearner"
UNKNOWN = "Unknown"

_KEY = re.compile(r'"(letters|authors|email)"\s*:')


def sniff(head: str) -> bool:
    """A JSON object with FacebookLearner's "letters", "authors" and "email" keys."""
    if not head.lstrip("\ufeff \t\r\n").startswith("{"):
        return False
    return {"letters", "authors", "email"} <= set(_KEY.findall(head))


def author_id(email: str) -> str:
    """The stable pseudonymous id of an author: the email itself is never kept."""
    return "fbl:" + hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    """Yield the conversation's messages in file order (timestamps are None: the format has none)."""
    with paused_gc():
        messages = list(_messages(source, report))
    yield from messages



def _messages(source: SourceFile, report: FileReport) -> Iterator[Message]:
    root = source.json()
    if not isinstance(root, dict):
        raise ParseError("expected a JSON object with 'authors' and 'messages'")
    authors = root.get("authors")
    messages = root.get("messages")
    if not isinstance(authors, list):
        raise ParseError("'authors' must be a list of {email, name}")
    if not isinstance(messages, list):
        raise ParseError("'messages' must be a list of {email, message}")

    names: dict[str, str] = {}
    for entry in authors:
        if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
            report.skip("malformed author")
            continue
        name = entry.get("name")
        name = name.strip() if isinstance(name, str) else ""
        names.setdefault(entry["email"], name or UNKNOWN)
    digest = hashlib.sha256("\n".join(sorted(names)).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    conversation = f"{PLATFORM}:{digest}"

    senders: dict[str, tuple[str, str]] = {}  # email -> (name, pseudonymous id), hashed once per author
    for item in messages:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            report.skip("malformed message")
            continue
        text = item["message"]
        if not text.strip():
            report.skip("empty")
            continue
        email = item.get("email")
        if not isinstance(email, str):
            yield Message(conversation, PLATFORM, UNKNOWN, None, None, text)
            continue
        sender = senders.get(email)
        if sender is None:
            # A sender missing from the author list is kept, as "Unknown", under its own pseudonym.
            sender = senders[email] = (names.get(email, UNKNOWN), author_id(email))
        yield Message(conversation, PLATFORM, sender[0], sender[1], None, text)
