"""Generic CSV exports: a header naming `author` and `text`, optionally `timestamp` and `conversation`."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import datetime, timezone

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile

FORMAT = "csv"
REQUIRED = ("author", "text")


def _header(line: str) -> list[str]:
    try:
        return [cell.strip().lower() for cell in next(csv.reader([line]))]
    except (csv.Error, StopIteration):
        return []


def sniff(head: str) -> bool:
    first = head.lstrip("\ufeff").split("\n", 1)[0].strip("\r")
    columns = _header(first)
    return all(name in columns for name in REQUIRED)


def parse_timestamp(value: str) -> float | None:
    """Epoch seconds (or milliseconds) or an ISO 8601 date; naive times are taken as UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        return number / 1000.0 if number > 1e11 else number
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParseError(f"timestamp {value[:40]!r} is neither epoch seconds nor an ISO 8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    stem = os.path.splitext(os.path.basename(source.path.split("!")[-1]))[0]
    reader = csv.DictReader(io.StringIO(source.text(), newline=""))
    if reader.fieldnames is None:
        raise ParseError("empty file")
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
    missing = [name for name in REQUIRED if name not in reader.fieldnames]
    if missing:
        raise ParseError(f"CSV header lacks column(s) {', '.join(missing)}")
    try:
        for row in reader:
            author = (row.get("author") or "").strip()
            text = row.get("text") or ""
            if not author:
                report.skip("no author")
                continue
            if not text.strip():
                report.skip("empty text")
                continue
            try:
                timestamp = parse_timestamp(row.get("timestamp") or "")
            except ParseError as err:
                raise ParseError(f"line {reader.line_num}: {err}") from None
            conversation = (row.get("conversation") or "").strip() or stem
            yield Message(f"csv:{conversation}", "csv", author, None, timestamp, text)
    except csv.Error as err:
        raise ParseError(f"line {reader.line_num}: bad CSV ({err})") from None
