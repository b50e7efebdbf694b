"""`talklike import` and `talklike stats`: exports in, one clean corpus and a report out."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone

from talklike.errors import UserError
from training.importers.sources import InputLimits
from training.pii import MAX_CHARS

IMPORT_HELP = """\
Read chat exports and write one corpus (JSON Lines, one message per line).

Each PATH may be a file, a folder (walked) or a zip; the format is detected from the content:
Messenger JSON (any root, every section, zipped or not), Messenger end-to-end-encrypted export,
Messenger HTML, Telegram Desktop result.json (single chat or full account), WhatsApp .txt/.zip,
FacebookLearner messages.json, CSV (author,text[,timestamp][,conversation]), a corpus .jsonl, and
plain text (one message per line) with --author.

Links, emails, IBANs, card and phone numbers in message text are replaced by <url>, <email>,
<iban>, <card>, <phone> unless --no-scrub is given (the report counts them by kind); messages longer
than --max-message-chars are cut to it first. Phone numbers, contacts and profile data from an export
never reach the corpus: WhatsApp senders known only by number become "Contact 3fa2c1", a hash under a
secret key kept outside the corpus (TALKLIKE_PSEUDONYM_KEY, else --pseudonym-key-file, else
~/.config/talklike/pseudonym.key, created on first use), so the same number keeps its name in every
import made with that key. A file or zip member over --max-file-mb, or one that inflates like a zip
bomb, is refused; symlinks leading out of a folder are not followed.

Only people's own words are read as theirs: forwards, inline bots' posts and pastes (documents, data,
other chats' transcripts: docs/exporting.md states the rule) keep their place as kind forward, via_bot or
paste, and app lines filed under a person (encryption notices, deletion and view-once placeholders, ...)
are dropped; the report counts each under its reason. Importing a corpus applies these rules again.
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
    parser.add_argument("--no-scrub", action="store_true",
                        help="keep links, emails, IBANs, card and phone numbers in message text")
    parser.add_argument("--max-message-chars", default=str(MAX_CHARS), metavar="N",
                        help="cut longer messages to N characters before scrubbing (default: %(default)s)")
    parser.add_argument("--max-file-mb", default=str(InputLimits.max_bytes >> 20), metavar="MB",
                        help="refuse files and zip members larger than this (default: %(default)s)")
    parser.add_argument("--pseudonym-key-file", metavar="PATH",
                        help="key of the WhatsApp phone-number pseudonyms (created if missing; default: "
                             "~/.config/talklike/pseudonym.key; TALKLIKE_PSEUDONYM_KEY overrides)")
    parser.add_argument("--strict", action="store_true", help="stop at the first file that fails")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_import_command)

    stats = subparsers.add_parser("stats", help="summarize a corpus", description="Print the import summary of an existing corpus: authors, and every conversation key "
                                                 "(for --exclude-conversation) with its message count.")
    stats.add_argument("corpus", help="corpus .jsonl written by talklike import")
    stats.add_argument("--json", action="store_true", help="print the summary as JSON")
    stats.set_defaults(handler=run_stats_command)


def positive(value: str, flag: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise UserError(f"{flag} {value!r}: expected a positive whole number")
    return number


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
    from training.importers.pseudonyms import PseudonymKey

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
        max_chars=positive(args.max_message_chars, "--max-message-chars"),
        strict=args.strict,
        limits=InputLimits(max_bytes=positive(args.max_file_mb, "--max-file-mb") << 20),
        options=ImportOptions(author=args.author, day_first={"auto": None, "yes": True, "no": False}[args.day_first],
                              pseudonym_key=PseudonymKey(args.pseudonym_key_file)),
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
    summary["paste_threshold"] = result.paste_threshold
    if result.messages:
        write_corpus(args.output, result.messages)
    if args.json:
        summary["output"] = args.output if result.messages else None
        summary["ignored"] = dict(result.ignored)
        summary["not_followed"] = [{"path": link.path, "target": link.target} for link in result.not_followed]
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(render(summary, result.ignored, not_followed=result.not_followed))
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
