"""`talklike import` and `talklike stats`: exports in, one clean corpus and a report out."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone

from talklike.errors import UserError

IMPORT_HELP = """\
Read chat exports and write one corpus (JSON Lines, one message per line).

Each PATH may be a file, a folder (walked) or a zip; the format is detected from the content:
Messenger JSON (any root, every section, zipped or not), Messenger end-to-end-encrypted export,
Messenger HTML, Telegram Desktop result.json (single chat or full account), WhatsApp .txt/.zip,
FacebookLearner messages.json, CSV (author,text[,timestamp][,conversation]), a corpus .jsonl, and
plain text (one message per line) with --author.

Emails, phone numbers, card numbers and URLs are replaced by <email>, <phone>, <card>, <url>
unless --no-scrub is given. Phone numbers, contacts and profile data from an export never reach
the corpus.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import chat exports into a corpus",
        description=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="export file, folder or zip")
    parser.add_argument("-o", "--output", default="corpus.jsonl", help="corpus to write (default: %(default)s)")
    parser.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="NAME=OTHER[,OTHER]",
        help='merge identities: "Tim=Timothy Smith,Timmy" (repeatable; OTHER may be a platform id like user123)',
    )
    parser.add_argument("--exclude-author", action="append", default=[], metavar="NAME", help="drop this author's messages (repeatable)")
    parser.add_argument(
        "--exclude-conversation",
        action="append",
        default=[],
        metavar="KEY",
        help='drop a conversation by key or pattern, e.g. "telegram:4815162342" or "whatsapp:*" (repeatable)',
    )
    parser.add_argument("--since", metavar="DATE", help="keep messages from this date on (YYYY-MM-DD[THH:MM], UTC)")
    parser.add_argument("--until", metavar="DATE", help="keep messages before this date (YYYY-MM-DD[THH:MM], UTC)")
    parser.add_argument("--author", metavar="NAME", help="author of plain-text inputs (one message per line)")
    parser.add_argument(
        "--day-first",
        choices=("auto", "yes", "no"),
        default="auto",
        help="WhatsApp date order; auto infers it per file (default: %(default)s)",
    )
    parser.add_argument("--no-scrub", action="store_true", help="keep emails, phone numbers, card numbers and URLs")
    parser.add_argument("--strict", action="store_true", help="stop at the first file that fails")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_import_command)

    stats = subparsers.add_parser("stats", help="summarize a corpus", description="Print the import summary of an existing corpus: authors, and every conversation key "
                                                 "(for --exclude-conversation) with its message count.")
    stats.add_argument("corpus", help="corpus .jsonl written by talklike import")
    stats.add_argument("--json", action="store_true", help="print the summary as JSON")
    stats.set_defaults(handler=run_stats_command)


def parse_date(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{flag} {value!r}: expected a date like 2023-01-31 or 2023-01-31T18:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def run_import_command(args) -> int:
    from training.corpus import write_corpus
    from training.import_pipeline import ImportSettings, parse_alias, progress_printer, run_import
    from training.import_report import render, summarize
    from training.importers.base import ImportOptions
    from training.importers.detect import FORMATS

    aliases: dict[str, str] = {}
    for spec in args.alias:
        aliases.update(parse_alias(spec))
    settings = ImportSettings(
        aliases=aliases,
        exclude_authors=set(args.exclude_author),
        exclude_conversations=list(args.exclude_conversation),
        since=parse_date(args.since, "--since"),
        until=parse_date(args.until, "--until"),
        scrub=not args.no_scrub,
        strict=args.strict,
        options=ImportOptions(author=args.author, day_first={"auto": None, "yes": True, "no": False}[args.day_first]),
    )
    if settings.since is not None and settings.until is not None and settings.since >= settings.until:
        raise UserError("--since must be before --until")
    output = os.path.abspath(args.output)
    for path in args.paths:
        if os.path.abspath(path) == output:
            raise UserError(f"{args.output}: the output is also an input; write the corpus somewhere else")

    on_file, close_bar = progress_printer()
    try:
        result = run_import(args.paths, settings, on_file=on_file)
    finally:
        close_bar()
    summary = summarize(result.messages, result.files)
    if result.messages:
        write_corpus(args.output, result.messages)
    if args.json:
        summary["output"] = args.output if result.messages else None
        summary["ignored"] = dict(result.ignored)
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(render(summary, result.ignored))
        if result.messages:
            print(f"wrote {args.output}")
    if not result.messages:
        known = ", ".join(FORMATS)
        raise UserError(f"no messages imported, nothing written (formats talklike reads: {known})")
    return 1 if result.failed else 0


def run_stats_command(args) -> int:
    from training.corpus import read_corpus
    from training.import_report import render, summarize
    from training.importers.base import FileReport

    messages = list(read_corpus(args.corpus))
    report = FileReport(path=args.corpus, format="corpus")
    for message in messages:
        report.count(message)
    summary = summarize(messages, [report])
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(render(summary, conversations=True))
    return 0
