"""From the user's inputs to one clean corpus: walk, detect, parse, then aliases, filters and scrubbing.

Every message that does not reach the corpus is counted under a reason in its file's report, so the
report always adds up: nothing is lost silently.
"""

from __future__ import annotations

import fnmatch
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from talklike.errors import UserError
from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile, paused_gc
from training.importers.detect import detect
from training.importers.sources import Candidate, InputLimits, NotFollowed, iter_candidates
from training.pastes import LONG, PasteRule
from training.pii import MAX_CHARS, scrub_counted

log = logging.getLogger(__name__)


@dataclass
class ImportSettings:
    """Everything `talklike import` can be told, as data (the command line only fills this in)."""

    aliases: dict[str, str] = field(default_factory=dict)  # variant name or author id -> canonical name
    exclude_authors: set[str] = field(default_factory=set)
    exclude_conversations: list[str] = field(default_factory=list)  # keys or glob patterns
    since: float | None = None
    until: float | None = None
    scrub: bool = True
    max_chars: int = MAX_CHARS  # longer messages are cut to this length before scrubbing
    strict: bool = False
    limits: InputLimits = field(default_factory=InputLimits)
    options: ImportOptions = field(default_factory=ImportOptions)
    pastes: PasteRule = field(default_factory=PasteRule)


@dataclass
class ImportResult:
    messages: list[Message]
    files: list[FileReport]
    ignored: Counter  # input path -> files inside it that hold no chat (profile data, media, ...)
    not_followed: list[NotFollowed] = field(default_factory=list)  # symlinks leading out of a folder
    paste_threshold: int | None = None  # characters above which a message of this import was a paste by length

    @property
    def failed(self) -> list[FileReport]:
        return [report for report in self.files if report.error]


def parse_alias(spec: str) -> dict[str, str]:
    """`"Tim=Timothy Smith,Timmy"` -> {"Timothy Smith": "Tim", "Timmy": "Tim"}."""
    canonical, sep, variants = spec.partition("=")
    canonical = canonical.strip()
    names = [name.strip() for name in variants.split(",") if name.strip()]
    if not sep or not canonical or not names:
        raise UserError(f"--alias {spec!r}: expected NAME=OTHER NAME[,OTHER NAME...]")
    return {name: canonical for name in names}


def run_import(
    paths: list[str],
    settings: ImportSettings,
    on_file: Callable[[Candidate], None] | None = None,
) -> ImportResult:
    """Import every input; a failing file is recorded (or raised with `strict`) and the rest carry on."""
    with paused_gc():
        return _run_import(paths, settings, on_file)


def _run_import(paths: list[str], settings: ImportSettings, on_file: Callable[[Candidate], None] | None) -> ImportResult:
    files: list[FileReport] = []
    ignored: Counter = Counter()
    # conversation -> messages, in first-seen order; sorted by time once all files are read
    conversations: dict[str, list[Message]] = {}
    seen: dict[tuple, int] = {}  # message identity -> index of the file it came from (cross-file dedupe)
    not_followed: list[NotFollowed] = []
    pending: list[tuple[Message, FileReport, int, str | None]] = []  # text messages, for the paste rule

    for item in iter_candidates(paths, settings.limits):
        if isinstance(item, NotFollowed):
            not_followed.append(item)
            continue
        if isinstance(item, tuple):
            path, error = item
            report = FileReport(path=path, error=error)
            files.append(report)
            if settings.strict:
                raise UserError(f"{path}: {error}")
            continue
        if on_file is not None:
            on_file(item)
        report = _import_file(item, settings, conversations, seen, len(files), pending)
        if report is None:
            ignored[_input_root(item.path, paths)] += 1
            continue
        files.append(report)
        if report.error and settings.strict:
            raise UserError(f"{report.path}: {report.error}")

    threshold = _mark_pastes(pending, settings.pastes)
    messages: list[Message] = []
    for group in conversations.values():
        if all(message.timestamp is not None for message in group):
            group.sort(key=lambda message: message.timestamp)  # stable: ties keep file order
        messages.extend(group)
    return ImportResult(messages, files, ignored, not_followed, threshold)


def _mark_pastes(pending: list[tuple[Message, FileReport, int, str | None]], rule: PasteRule) -> int:
    """Turn the text messages that are pastes into `kind: paste`, each counted under its reason in its file's
    report; the length above which a message was a paste by length alone. `pending` holds every text message
    kept, with its report, its length as imported and its own reason (code or data, a transcript) if any."""
    threshold = rule.long_threshold([length for _, _, length, _ in pending])
    for message, report, length, reason in pending:
        reason = reason or (LONG if length > threshold else None)
        if reason:
            message.kind = "paste"
            report.set_aside_text(reason)
    return threshold


def _import_file(
    candidate: Candidate,
    settings: ImportSettings,
    conversations: dict[str, list[Message]],
    seen: dict[tuple, int],
    file_index: int,
    pending: list[tuple[Message, FileReport, int, str | None]],
) -> FileReport | None:
    """Parse one candidate into `conversations` (its text messages also into `pending`, for the paste rule);
    None when it is not a chat file (inside a folder)."""
    report = FileReport(path=candidate.path)
    try:
        head = candidate.read_head()
    except OSError as err:
        report.error = f"cannot read ({err.strerror or err})"
        return report
    except ParseError as err:
        report.error = str(err)
        return report
    importer = detect(head, settings.options.author)
    if importer is None:
        if not candidate.explicit:
            return None
        report.error = "empty file" if not head.strip() else "unrecognised format (not a chat export talklike knows)"
        return report
    report.format = importer.FORMAT
    try:
        source = SourceFile(candidate.path, candidate.read_all())
        kept: list[tuple[Message, bool, list[str], tuple | None]] = []  # cut to the cap?, kinds scrubbed, paste
        for message in importer.parse(source, report, settings.options):
            reason = _filter(message, settings)
            if reason:
                report.skip(reason)
                continue
            paste = None
            if message.kind in ("text", "paste"):  # a corpus imported before is judged again, by today's rule
                message.kind = "text"
                paste = (len(message.text), settings.pastes.own_reason(message.text))  # as imported, before scrubbing
            cut, masked = _scrub(message, settings) if settings.scrub and message.text else _UNTOUCHED
            identity = (message.conversation, message.author, message.timestamp, message.kind, message.text)
            if message.timestamp is not None:
                first = seen.setdefault(identity, file_index)
                if first != file_index:
                    report.skip("duplicate of another input")
                    continue
            kept.append((message, cut, masked, paste))
    except ParseError as err:
        report.error = str(err)
        return report
    except UserError:
        raise  # not about this file (the pseudonym key): the import stops, nothing is written
    except OSError as err:
        report.error = f"cannot read ({err.strerror or err})"
        return report
    except (RecursionError, MemoryError) as err:
        report.error = f"cannot parse ({type(err).__name__})"
        return report
    except Exception as err:  # an importer bug must not lose the other inputs; the log keeps the traceback
        log.debug("importer %s failed on %s", importer.FORMAT, candidate.path, exc_info=True)
        report.error = f"internal error while parsing ({type(err).__name__}: {err}); please report it"
        return report
    # A file counts only once it parsed completely: a half-read file adds nothing to the corpus.
    for message, cut, masked, paste in kept:
        report.count(message)
        report.cut += cut
        if masked:
            report.masked.update(masked)
        conversations.setdefault(message.conversation, []).append(message)
        if paste is not None:
            pending.append((message, report, *paste))
    return report


_UNTOUCHED: tuple[bool, list[str]] = (False, [])


def _scrub(message: Message, settings: ImportSettings) -> tuple[bool, list[str]]:
    """Scrub the message's text in place, cut to the length cap first (a pasted log, a spam wall: no chat
    message is that long); whether it was cut, and the kind of each identifier masked."""
    cut = len(message.text) > settings.max_chars
    if cut:
        message.text = message.text[: settings.max_chars]
    message.text, kinds = scrub_counted(message.text)
    return cut, kinds


def _filter(message: Message, settings: ImportSettings) -> str | None:
    """Apply aliases in place; return the reason to drop the message, if any."""
    original = message.author
    alias = settings.aliases.get(original) or (settings.aliases.get(message.author_id) if message.author_id else None)
    if alias:
        message.author = alias
    if message.author in settings.exclude_authors or original in settings.exclude_authors:
        return "excluded author"
    if settings.exclude_conversations and any(
        fnmatch.fnmatchcase(message.conversation, pattern) for pattern in settings.exclude_conversations
    ):
        return "excluded conversation"
    if settings.since is not None or settings.until is not None:
        if message.timestamp is None:
            return "no timestamp (with --since/--until)"
        if settings.since is not None and message.timestamp < settings.since:
            return "before --since"
        if settings.until is not None and message.timestamp >= settings.until:
            return "after --until"
    return None


def _input_root(path: str, inputs: list[str]) -> str:
    for root in inputs:
        if path.startswith(root):
            return root
    return path.split("!")[0]


def progress_printer():
    """A tqdm bar over files on a terminal; nothing when output is piped (scripts stay quiet)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(unit=" files", desc="importing", leave=False, file=sys.stderr)
    return (lambda candidate: bar.update(1)), bar.close
