"""The corpus format itself, so corpora can be merged, filtered and re-scrubbed with `talklike import`.

Re-importing a corpus applies today's rules to it: a WhatsApp or Messenger text an earlier version kept as
speech that is an app line or a placeholder after all is dropped or given its kind (counted in the report),
and the pipeline judges pastes again. What an earlier import did not keep (Telegram's forward markers) cannot
be recovered: import the export itself for that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from talklike.errors import UserError
from training.corpus import Message, message_from_dict
from training.importers import messenger_json, whatsapp
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile

FORMAT = "corpus"


def sniff(head: str) -> bool:
    first = head.lstrip("\ufeff").lstrip().split("\n", 1)[0]
    try:
        obj = json.loads(first)
    except ValueError:
        return False
    return isinstance(obj, dict) and "author" in obj and "text" in obj and "conversation" in obj


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    for number, line in enumerate(source.text().split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ParseError(f"line {number}, column {err.colno}: invalid JSON ({err.msg})") from None
        try:
            message = message_from_dict(obj, f"line {number}")
        except UserError as err:  # validation names the line; re-raise as this file's error
            raise ParseError(str(err)) from None
        if message.kind == "text" and message.platform in _REREAD:
            kind, text = _REREAD[message.platform](message)
            if kind is None:
                report.skip(text)  # the reason
                continue
            if kind == "text" and not text.strip():
                report.skip("empty")
                continue
            message.kind, message.text = kind, text
        yield message


_REREAD = {
    "whatsapp": lambda message: whatsapp.reread(message.text),
    "messenger": lambda message: messenger_json.reread(message.text, message.author),
}
