"""The corpus format itself, so corpora can be merged, filtered and re-scrubbed with `talklike import`."""

from __future__ import annotations

import json
from collections.abc import Iterator

from talklike.errors import UserError
from training.corpus import Message, message_from_dict
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
        yield message
