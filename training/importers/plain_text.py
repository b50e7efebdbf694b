"""Plain text, one message per line, all by the author named with `--author`."""

from __future__ import annotations

import os
from collections.abc import Iterator

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile

FORMAT = "text"


def sniff(head: str) -> bool:
    # Any text qualifies; detection only offers this format when --author is given and nothing else matched.
    return bool(head.strip())


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    if not options.author:
        raise ParseError("plain text needs --author NAME (who wrote these lines)")
    stem = os.path.splitext(os.path.basename(source.path.split("!")[-1]))[0]
    for line in source.text().splitlines():
        text = line.strip()
        if not text:
            report.skip("blank line")
            continue
        yield Message(f"text:{stem}", "text", options.author, None, None, text)
