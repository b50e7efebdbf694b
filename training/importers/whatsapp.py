"""WhatsApp "Export chat" text (`WhatsApp Chat with Bob.txt`, or `_chat.txt` inside the export's zip).

Every message starts with a header line (date, time, then `Name: text`); lines without a header continue
the message above. Headers vary by platform and locale, so one pattern covers them all:

    12/28/19, 21:43 - Bob: hi                 Android, 24 h
    2/4/23, 10:35 PM - Bob: hi                Android, 12 h (newer versions put U+202F before PM)
    [20.06.19, 15:58:57] Bob: hi              iOS (lines may start with U+200E)
    13.6.2018 klo 21.25.15 - Bob: hi          Finnish
    13. 6. 2018. 21:25:15 Bob: hi             Croatian / Serbian
    [3/6/18 1:55:00 p. m.] Bob: hi            Spanish
    03-06-2018, 01.55 PM - Bob: hi            Indian English
    [2018/06/13, 21:25:15] Bob: hi            year first

Times are local wall-clock times without a zone; they are read as if they were UTC. Whether `3/6/18`
is March or June is decided per file and per header style from the values themselves (a first field
above 12 means day first, a second field above 12 means month first), else by the style's custom.

Privacy: senders known only by phone number become "Contact <keyed hash>" (see `pseudonyms`: the number
itself never reaches the corpus, not even inside a conversation key or an @mention, and without the key
nobody can tell which number a pseudonym stands for); system lines are dropped.

Whose words: placeholders, deletion notices and the app's notices filed under a person (`app_lines`, in every
language it holds) are media without text or dropped lines counted under their reason, never speech; a header
line inside a message that someone pasted stays part of that message (see `_read`).

What a body is (speech, media, an app line) is decided in `whatsapp_bodies`; dates and times in `whatsapp_dates`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from training.corpus import Message
from training.importers import app_lines
from training.importers.base import FileReport, ImportOptions, SourceFile, paused_gc
from training.importers.pseudonyms import Key, pseudonym
from training.importers.whatsapp_bodies import classify_clean
from training.importers.whatsapp_dates import Calendar, seconds_of_day

FORMAT = "whatsapp"
PLATFORM = "whatsapp"

_MARKS = "\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
_HEADER_BODY = (
    "[" + _MARKS + "]*"
    r"(?P<bracket>\[)?"  # iOS bracket
    r"(\d{1,4}[./-] ?\d{1,2}[./-] ?\d{1,4})(?P<dot>\.)?"  # date, trailing dot ("13. 6. 2018.")
    r",? (?:[^\W\d_]{1,5} )?"  # optional comma, optional word ("klo")
    r"(\d{1,2}[.:]\d\d(?:[.:]\d\d)?)"  # time
    "(?:[ \u00a0\u202f]?([AaPp])\\.?[ \u00a0\u202f]?[Mm]\\.?)?"  # a/p of AM, PM, p.m., p. m.
    # The separator depends on the style: "] " after a bracket, else " - ", ": ", or a bare space
    # only after a dotted date (a bare space alone would turn continuation lines into headers).
    r"(?(bracket)\] |(?: - |: |(?(dot) |(?!))))"
)
# Matched against the whole text with a "\n" put in front: a literal first character lets the regex
# engine jump from line start to line start instead of trying every position.
# Groups: the whole date-and-time part, bracket, date, dot, time, a/p, then the sender, up to the first ": "
# of the line (absent on system lines).
_HEADER = re.compile("\n(" + _HEADER_BODY + r")(?:([^\n]{1,100}?):(?: |(?=\n)))?")
_LINE_HEADER = re.compile(_HEADER_BODY)
HEADER_PATTERN = _HEADER_BODY  # a header's date and time, for finding pasted transcripts elsewhere
_DIGITS = re.compile(r"\d+")

# Names and headers lose invisible direction marks; no-break spaces become spaces.
_NAME_CLEAN = str.maketrans({**{chr(c): None for c in (0x200E, 0x200F, 0x2066, 0x2067, 0x2068, 0x2069, 0xFEFF)},
                             **{chr(c): None for c in range(0x202A, 0x202F)},
                             "\u00a0": " ", "\u202f": " ", "\u2007": " "})
_PHONE_NAME = re.compile(r"\+?[\d\s\-\u2010\u2011().]{6,}")
_PHONE_IN_NAME = re.compile(r"\+?\d[\d\s\-\u2010\u2011().]{5,}\d")
# "@\u2068+1 555 123 4567\u2069" (isolated: a saved name or a number) or "@15551234567".
_MENTION = re.compile("@(?:\u2068([^\u2069\n]{1,40})\u2069|(\\+?\\d{6,15})(?!\\d))")


_FILE_PREFIXES = re.compile(
    r"^(?:WhatsApp[ -]Chat(?: with| mit| met| con| avec| com)?|WhatsApp Chat -|Chat de WhatsApp con"
    r"|Conversa do WhatsApp com|Discussion WhatsApp avec|Chat WhatsApp con|WhatsApp-chat met)[ -]*",
    re.IGNORECASE,
)


def sniff(head: str) -> bool:
    """True when one of the first non-empty lines is a WhatsApp message header."""
    seen = 0
    for line in head.lstrip("\ufeff").split("\n", 12)[:12]:
        if not line.strip():
            continue
        if _LINE_HEADER.match(line):
            return True
        seen += 1
        if seen >= 3:
            break
    return False


def clean_name(raw: str, key: Key = None) -> str:
    """A sender or chat name without direction marks, no-break spaces, "~ " prefix or phone number (a
    phone number becomes its pseudonym under `key`)."""
    name = raw.translate(_NAME_CLEAN).strip()
    if name.startswith("~"):
        name = name[1:].strip()
    if _PHONE_NAME.fullmatch(name) and sum(char.isdigit() for char in name) >= 6:
        return pseudonym(name, key)
    if _PHONE_IN_NAME.search(name):  # "Plumber 0171 2345678": the number goes, the word stays
        name = _PHONE_IN_NAME.sub(lambda match: _number_in_name(match, key), name)
    return name


def _number_in_name(match: re.Match, key: Key) -> str:
    number = match.group(0)
    return pseudonym(number, key) if sum(char.isdigit() for char in number) >= 7 else number


def chat_name(path: str, key: Key = None) -> str:
    """The conversation's name from the file name: "WhatsApp Chat with Bob.txt" or "...Bob.zip!_chat.txt"."""
    parts = [part for part in path.replace("\\", "/").split("!") if part]
    stem = os.path.splitext(os.path.basename(parts[-1]))[0] if parts else ""
    if stem.lower() in ("_chat", "chat", ""):
        # The generic name inside an export: the chat is named by the zip, or by the unpacked folder.
        if len(parts) > 1:
            stem = os.path.splitext(os.path.basename(parts[-2]))[0]
        elif parts:
            stem = os.path.basename(os.path.dirname(parts[-1])) or stem
    name = clean_name(_FILE_PREFIXES.sub("", stem.translate(_NAME_CLEAN)).strip(), key)
    return name or "chat"


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    """Yield the chat's messages in file order; system lines, deletions and stray text are counted."""
    text = source.text()
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    key = options.pseudonym_key  # fetched (or created) only when a phone number needs a pseudonym
    conversation = f"{PLATFORM}:{chat_name(source.path, key)}"
    with paused_gc():  # a message per line, none freed: see paused_gc
        messages, dates, seconds, stats, names, midnights = _read(text, conversation, report, options.day_first, key)

    if midnights.changed:  # a date late in the file settled the order: redo the times read before it
        days = midnights.days
        for message, key, second in zip(messages, dates, seconds, strict=True):
            day = days[key]
            message.timestamp = None if day is None or second is None else float(day + second)
    colon_names = {names[raw]: clean_name(f"{raw}: {state[0]}", key) for raw, state in stats.items()
                   if state is not _MIXED and state[1] >= 3 and raw in names}
    if colon_names:
        messages = [message for message in messages
                    if message.author not in colon_names
                    or _rename(message, colon_names[message.author], report, key)]
    yield from messages


def _read(text: str, conversation: str, report: FileReport, day_first: bool | None, key: Key) -> tuple:
    """Messages with their date texts and seconds into the day (to redo the times if the date order
    changes midway), the sender statistics that reveal names holding ": ", and the dates seen.

    Someone may paste another chat's transcript into a message; its lines look like headers. A header written
    in another style than the file's own (the style of its first header: WhatsApp's copy format brackets the
    time, its Android export does not; another phone writes other dates) is a line of the message above it,
    when it is not later than that message and the file's own headers resume within `_MAX_PASTED` lines (a
    file that really changes style, two exports joined, keeps its messages and adopts the new style). Time
    order alone cannot tell: real exports put late deliveries, missed calls and whole stretches out of order."""
    midnights = Calendar(day_first)
    days = midnights.days
    messages: list[Message] = []
    dates: list[str] = []  # per message: its date ("[" first for iOS), to redo its time if the order changes
    seconds: list[int | None] = []  # per message: seconds into the day
    stats: dict[str, object] = {}  # sender -> ("X", count) while all its bodies start with "X: ", else _MIXED
    times: dict[str, int | None] = {}
    names: dict[str, str] = {}
    own_style: re.Pattern | None = None  # matches headers written like the file's first one
    opened: Message | None = None  # the message the last header opened (None when that header kept none)
    opened_raw = ""  # its body as written, to classify again with pasted lines
    pasted: list[tuple] = []  # foreign-style header lines, waiting for the file's own headers to resume
    first = True
    for chunk in _chunks("\n" + text):
        # split() runs the header regex in C: [before, 8 groups, body, 8 groups, body, ...]
        parts = _HEADER.split(chunk)
        if first:
            _count_preamble(parts[0], report)
            own_style = _style_pattern(parts[1]) if len(parts) > 1 else None
            first = False
        fields = iter(parts)
        next(fields)
        for prefix, bracket, date_text, _dot, time_text, half, raw_name, body in zip(*[fields] * 8, strict=False):
            time_key = time_text if half is None else time_text + half
            second = times.get(time_key, -1)
            if second == -1:
                second = times[time_key] = seconds_of_day(time_text, half)
            if bracket is not None:
                date_text = "[" + date_text
            day = days.get(date_text, -1)  # midnights are multiples of 86400: never -1
            if day == -1:
                day = midnights.midnight(date_text)
            timestamp = None if day is None or second is None else float(day + second)
            line = (prefix, raw_name, body, date_text, second, timestamp)
            batch: tuple | list = (line,)
            if opened is not None and (pasted or opened.timestamp is None or timestamp is None
                                       or timestamp <= opened.timestamp) and own_style.fullmatch(prefix) is None:
                pasted.append(line)
                if len(pasted) <= _MAX_PASTED:
                    continue
                batch, pasted = pasted, []  # not a paste: the file changed style
                own_style = _style_pattern(prefix)
            elif pasted:
                opened_raw = _paste(opened, opened_raw, pasted, report, key)
                pasted = []
            for _prefix, raw_name, body, date_text, second, timestamp in batch:
                opened = None
                if raw_name is None:
                    report.skip("system")
                    continue
                state = stats.get(raw_name)
                if state is not _MIXED:
                    _track(stats, raw_name, state, body)
                kind, cleaned = _classify(body, key)
                if kind is None:
                    report.skip(cleaned)  # the reason
                    continue
                if not cleaned and kind == "text":
                    report.skip("empty")
                    continue
                author = names.get(raw_name)
                if author is None:
                    author = names[raw_name] = clean_name(raw_name, key) or "Unknown"
                opened = Message(conversation, PLATFORM, author, None, timestamp, cleaned, kind)
                opened_raw = body
                messages.append(opened)
                dates.append(date_text)
                seconds.append(second)
    if pasted:
        _paste(opened, opened_raw, pasted, report, key)
    return messages, dates, seconds, stats, names, midnights


def _paste(message: Message, raw: str, lines: list[tuple], report: FileReport, key: Key) -> str:
    """Put pasted header lines back into the message they were pasted in; its raw body with them. The names in
    them are senders' names still: a phone number there becomes its pseudonym, as in a real header."""
    raw = "\n".join([raw, *(prefix + ("" if name is None else f"{clean_name(name, key)}: ") + body
                            for prefix, name, body, *_ in lines)])
    kind, text = _classify(raw, key)
    message.kind, message.text = (kind, text) if kind else ("text", raw.strip())
    report.skip("header line inside a message (pasted)", len(lines))
    return raw


# A pasted transcript longer than this many header lines is taken for a file that changes style.
_MAX_PASTED = 1000
_STYLE_PARTS = {"0": r"\d{1,4}", " ": "[ \u00a0\u202f]", "A": "[AP]", "a": "[ap]"}


def _style_pattern(prefix: str) -> re.Pattern:
    """What the headers written like `prefix` look like, whatever their values: "[20.06.19, 15:58:57] " gives
    brackets, dotted dates, a comma and seconds; "2/4/23, 10:35 PM - " a slashed date, AM/PM and " - "."""
    shape = _DIGITS.sub("0", prefix.translate(_NAME_CLEAN).replace("P", "A").replace("p", "a"))
    return re.compile("[" + _MARKS + "]*" + "".join(_STYLE_PARTS.get(char) or re.escape(char) for char in shape))


# Chunks of this many characters keep split()'s list of parts small on big exports.
_CHUNK = 1 << 22
_MIXED = object()


def _chunks(text: str) -> Iterator[str]:
    """`text` cut into pieces that each start at a header (except the first, which starts the file)."""
    start = 0
    while len(text) - start > _CHUNK:
        match = _HEADER.search(text, start + _CHUNK)
        if match is None:
            break
        yield text[start : match.start()]
        start = match.start()
    yield text[start:]


def _track(stats: dict, name: str, state: object, body: str) -> None:
    """Note whether every body of `name` starts with the same short "X: " (then the name is "name: X").

    A name holding ": " is ambiguous: the header split takes the shortest. The longer name is preferred
    only when it explains every message of the sender (at least three, all with the same "X: ")."""
    end = body.find("\n")
    line = body if end == -1 else body[:end]
    inner = line.find(": ")
    segment = line[:inner] if 0 < inner <= 40 else None
    if segment is None or (state is not None and state[0] != segment):
        stats[name] = _MIXED
    else:
        stats[name] = (segment, 1 if state is None else state[1] + 1)


def _rename(message: Message, author: str, report: FileReport, key: Key) -> bool:
    """Move the rest of a ":"-holding name from the text to the author; False if nothing is left to keep."""
    kind, text = _classify(message.text.partition(": ")[2], key)
    message.author = author
    if kind is None or (kind == "text" and not text):
        report.skip(text if kind is None else "empty")
        return False
    message.kind, message.text = kind, text
    return True


def _count_preamble(text: str, report: FileReport) -> None:
    lines = sum(1 for line in text.split("\n") if line.strip())
    if lines:
        report.skip("text before the first message", lines)


def _classify(body: str, key: Key = None) -> tuple[str | None, str]:
    """(kind, text) for a message body, or (None, reason) when it is not kept."""
    if not body.isascii():
        if body.startswith("\u200e"):
            return _marked(body, key)
        if "@" in body:
            # before cleaning: isolates mark where a mention ends
            body = _MENTION.sub(lambda match: _mention(match, key), body)
        if _TEXT_MARKS.search(body):
            body = body.translate(_TEXT_CLEAN)
    elif "@" in body:
        body = _MENTION.sub(lambda match: _mention(match, key), body)
    return classify_clean(body)


def reread(text: str) -> tuple[str | None, str]:
    """What today's rules make of a text an earlier import kept as speech (its marks and numbers handled then):
    (kind, text), or (None, reason) when it is an app line after all."""
    return classify_clean(text)


def _marked(body: str, key: Key) -> tuple[str | None, str]:
    """An iOS body that begins with U+200E: media, a deletion, or an app line; never speech."""
    cleaned = body.translate(_TEXT_CLEAN)
    kind, text = _classify(cleaned, key)
    if kind is None or kind != "text":
        return kind, text
    return None, app_lines.topic(text) or "system"


def _mention(match: re.Match, key: Key) -> str:
    """A mention of a phone number becomes the number's pseudonym; a mention of a name stays."""
    isolated, number = match.groups()
    if number is not None:
        return "@" + pseudonym(number, key)
    name = clean_name(isolated, key)
    return "@" + name if name else match.group(0)


# Message text: drop direction marks, no-break spaces become ordinary spaces.
_TEXT_CLEAN = _NAME_CLEAN
_TEXT_MARKS = re.compile("[" + _MARKS + "\u00a0\u202f\u2007]")
