"""Facebook Messenger exports in HTML: the legacy `messages.htm` and the per-thread `message_<N>.html`.

Legacy (before 2018): `div.thread` blocks, each starting with its participant list as text, then
`div.message` headers (`span.user`, `span.meta` holding a date like "Friday, October 4, 2013 at 10:05pm
PDT"), each followed by a sibling `<p>` with the text. Some exports hold only an index linking
`messages/N.html` (each of those is a legacy page of its own), some only Facebook's error page.

Per-thread (2018 to today): generated class names change between years, so messages are found by shape:
many sibling blocks of one kind, each with a short sender element first, content in the middle and a
date last. Dates are localized; reactions are list items inside the content and are not text.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from bs4 import BeautifulSoup, NavigableString, Tag

from training.corpus import Message
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile
from training.importers.messenger_json import (
    PLATFORM,
    SECTIONS,
    body_kind,
    file_stem,
    oldest_first,
    thread_folder,
)

FORMAT = "messenger-html"

ERROR_PAGE = "There was an error loading the data"
_HTML = re.compile(r"<(?:!doctype\s+html|html|body|div)\b", re.IGNORECASE)
_LEGACY = re.compile(r"""class\s*=\s*["']?(?:thread|message_header)\b""", re.IGNORECASE)
_INDEX_LINK_HREF = re.compile(r"(?:^|/)messages/\d+\.html?$", re.IGNORECASE)
_INDEX_LINK = re.compile(r"""href\s*=\s*["']?(?:[^"'>]*/)?messages/\d+\.html?""", re.IGNORECASE)
# A per-thread page names its participants in its header, or links media from its thread folder.
_THREAD_MARKER = re.compile(
    r"(?:Participants|Teilnehmer|Participantes|Partecipanti|Uczestnicy|Deltagare|Deelnemers|Участники"
    r"|Người tham gia|参与者|參與者|参加者|참여자)\s*[:：]"
    r"|messages/(?:" + "|".join(SECTIONS) + r")/",
    re.IGNORECASE,
)
# A date element holds a four-digit year and an h:mm time, whatever the language around them.
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_CLOCK = re.compile(r"(?<!\d)\d{1,2}:\d\d(?!\d)")
_BLOCK_TAGS = frozenset(
    "address article blockquote dd div dl dt footer h1 h2 h3 h4 h5 h6 header li ol p pre section table tr ul".split()
)
_EXTRA_TAGS = frozenset(("ul", "ol", "li", "img", "video", "audio", "a"))  # reactions and attachments
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u202f]+")


def sniff(head: str) -> bool:
    """An HTML page that is a Messenger export: a legacy thread page, its index, Facebook's error page
    in its place, or a per-thread page (which names its participants or links its thread folder)."""
    if head.lstrip("\ufeff \t\r\n").startswith(("{", "[")) or not _HTML.search(head[:4096]):
        return False  # JSON that merely quotes some HTML is not a page
    return bool(
        _LEGACY.search(head) or _INDEX_LINK.search(head) or ERROR_PAGE in head or _THREAD_MARKER.search(head)
    )


def parse(source: SourceFile, report: FileReport, options: ImportOptions) -> Iterator[Message]:
    """Yield the page's messages, each thread oldest first."""
    soup = BeautifulSoup(source.text(), "html.parser")
    threads = soup.find_all("div", class_="thread")
    if threads:
        for thread in threads:
            yield from oldest_first(list(_legacy_thread(thread, report)))
        return
    blocks = _message_blocks(soup, report)
    if not blocks:
        # Only now: a real thread may well quote the error text in a message.
        if ERROR_PAGE.lower() in soup.get_text(" ").lower():
            raise ParseError(
                f"Facebook's error page ({ERROR_PAGE!r}), not messages: download the export again"
            )
        if soup.find("a", href=_INDEX_LINK_HREF):
            raise ParseError("index page only: import the linked messages/*.html files too")
        raise ParseError("no Messenger messages found in this HTML page")
    conversation = f"{PLATFORM}:html/{_thread_name(soup, source.path)}"
    messages = []
    for block in blocks:
        message = _block_message(block, conversation, report)
        if message is not None:
            messages.append(message)
    yield from oldest_first(messages)


# ---------------------------------------------------------------- legacy messages.htm


def _legacy_thread(thread: Tag, report: FileReport) -> Iterator[Message]:
    participants = " ".join(
        str(node).strip()
        for node in thread.children
        if isinstance(node, NavigableString) and str(node).strip()
    )
    conversation = f"{PLATFORM}:html/{_one_line(participants) or 'thread'}"
    for header in thread.find_all("div", class_="message"):
        user = header.find("span", class_="user")
        sender = _one_line(_text(user)) if user else ""
        if not sender:
            report.skip("no sender")
            continue
        meta = header.find("span", class_="meta")
        timestamp = parse_date(_text(meta)) if meta else None
        body = header.find_next_sibling()
        if body is None or body.name != "p":  # malformed pages sometimes nest the text in the header
            body = header.find("p")
        text = _text(body) if body is not None else ""
        message = _classified(conversation, sender, timestamp, text, None, report)
        if message is not None:
            yield message


# ---------------------------------------------------------------- per-thread message_N.html


def _message_blocks(soup: BeautifulSoup, report: FileReport) -> list[Tag]:
    """The message blocks, found by shape: elements whose first child is a short sender and whose last child
    is a date. The container holding most of them is the message list; its children of the same tag and
    class are the blocks (those that do not fit the shape are counted, not guessed at)."""
    candidates = [tag for tag in soup.find_all(True) if _is_block(tag)]
    if not candidates:
        return []
    container, _ = Counter(id(tag.parent) for tag in candidates).most_common(1)[0]
    members = [tag for tag in candidates if id(tag.parent) == container]
    shape, _ = Counter(_shape(tag) for tag in members).most_common(1)[0]
    chosen = {id(tag) for tag in members}
    blocks = []
    for sibling in _children(members[0].parent):
        if id(sibling) in chosen:
            blocks.append(sibling)
        elif _shape(sibling) == shape and len(_children(sibling)) >= 3:
            report.skip("unreadable message block")
    return blocks


def _is_block(tag: Tag) -> bool:
    children = _children(tag)
    if len(children) < 2 or not _is_small(children[-1]):  # a date element, not a whole message
        return False
    date = children[-1].get_text(" ", strip=True)
    if len(date) > 80 or not _YEAR.search(date) or not _CLOCK.search(date):
        return False
    sender = children[0].get_text(" ", strip=True)
    return 0 < len(sender) <= 200


def _is_small(tag: Tag, most: int = 3) -> bool:
    """True when `tag` holds at most `most` elements (a date wrapped in a link and a div, say)."""
    count = 0
    for node in tag.descendants:
        if isinstance(node, Tag):
            count += 1
            if count > most:
                return False
    return True


def _shape(tag: Tag) -> tuple:
    return tag.name, tuple(tag.get("class") or ())


def _children(tag: Tag) -> list[Tag]:
    return [child for child in tag.children if isinstance(child, Tag)]


def _block_message(block: Tag, conversation: str, report: FileReport) -> Message | None:
    children = _children(block)
    sender = _one_line(_text(children[0]))
    timestamp = parse_date(children[-1].get_text(" ", strip=True))
    kind = None
    parts = []
    for content in children[1:-1]:
        found = _strip_extras(content)
        kind = kind or found
        parts.append(_text(content))
    text = "\n".join(part for part in parts if part)
    return _classified(conversation, sender, timestamp, text, kind, report)


def _strip_extras(content: Tag) -> str | None:
    """Remove what is not speech from `content` and return the kind of its first attachment. Reactions
    (list items) go; so do attachments, whose file names and paths are not speech; shared web links stay
    in the text, where scrubbing replaces the URL. One pass over the tags: pages hold thousands of blocks."""
    kind = None
    for element in [node for node in content.descendants if isinstance(node, Tag)]:
        if element.decomposed or element.name not in _EXTRA_TAGS:
            continue
        if element.name in ("ul", "ol", "li"):
            element.decompose()
            continue
        found = _element_kind(element)
        if found is None:
            continue
        kind = kind or found
        if found != "link":
            element.decompose()
    return kind


def _element_kind(element: Tag) -> str | None:
    target = str(element.get("src") or element.get("href") or "").lower()
    if element.name == "video" or "/videos/" in target:
        return "video"
    if element.name == "audio" or "/audio/" in target:
        return "voice"
    if "/gifs/" in target:
        return "gif"
    if "/stickers" in target:
        return "sticker"
    if element.name == "img" or "/photos/" in target:
        return "photo"
    if "/files/" in target:
        return "file"
    if target.startswith(("http://", "https://")):
        return "link"
    return None


def _thread_name(soup: BeautifulSoup, path: str) -> str:
    """The thread's folder (`inbox/bob_123`, unique per thread) when the path shows one, else the page
    title, else the file name."""
    folder = thread_folder(path)
    if folder:
        return folder
    title = _one_line(soup.title.get_text(" ")) if soup.title else ""
    return title or file_stem(path)


# ---------------------------------------------------------------- shared


def _classified(
    conversation: str, sender: str, timestamp: float | None, text: str, kind: str | None, report: FileReport
) -> Message | None:
    """The message, or None after counting it as a system event, call or empty message."""
    kept = body_kind(text, sender, kind, report)
    return None if kept is None else Message(conversation, PLATFORM, sender, None, timestamp, kept[1], kept[0])


def _text(element: Tag) -> str:
    """The element's visible text: block elements and <br> break lines, runs of spaces collapse."""
    out: list[str] = []
    _collect(element, out)
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line)


def _collect(element: Tag, out: list[str]) -> None:
    for child in element.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # skips comments, doctypes, CDATA
                out.append(str(child).replace("\n", " "))
        elif child.name == "br":
            out.append("\n")
        elif child.name in ("script", "style"):
            continue
        elif child.name in _BLOCK_TAGS:
            out.append("\n")
            _collect(child, out)
            out.append("\n")
        else:
            _collect(child, out)


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()


# ---------------------------------------------------------------- localized dates

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_CJK_DATE = re.compile(r"(\d{4})\s*[年년]\s*(\d{1,2})\s*[月월]\s*(\d{1,2})")
_VI_MONTH_FIRST = re.compile(r"tháng\s*(\d{1,2})\s+(\d{1,2}),?\s+(\d{4})")
_VI_DAY_FIRST = re.compile(r"(\d{1,2})\s+tháng\s*(\d{1,2}),?\s+(\d{4})")
_NAME_FIRST = re.compile(r"([a-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})")
_DAY_FIRST = re.compile(r"(?<!\d)(\d{1,2})\.?\s+([a-z]{3,9})\.?,?\s+(\d{4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_CJK_TIME = re.compile(r"(上午|下午|中午|晚上|凌晨|早上|오전|오후)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?")
_TIME = re.compile(
    r"(?<!\d)(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(a\.\s?m\.|p\.\s?m\.|am|pm|sáng|chiều|trưa|tối|sa|ch)?"
)
_MORNING = frozenset(("am", "a.m.", "a. m.", "sáng", "sa", "上午", "凌晨", "早上", "오전"))
_AFTERNOON = frozenset(("pm", "p.m.", "p. m.", "chiều", "tối", "ch", "下午", "晚上", "오후"))
_NOON = frozenset(("中午", "trưa"))
_ZONE_OFFSET = re.compile(r"\b(?:utc|gmt)\s*([+-])(\d{1,2})(?::?(\d{2}))?\b")
_ZONES = {
    "utc": 0, "gmt": 0, "wet": 0, "west": 1, "bst": 1, "cet": 1, "cest": 2, "eet": 2, "eest": 3,
    "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
    "akst": -9, "akdt": -8, "hst": -10,
}  # fmt: skip
_ZONE_NAME = re.compile(r"\b(" + "|".join(sorted(_ZONES, key=len, reverse=True)) + r")\b")


def parse_date(text: str) -> float | None:
    """Seconds since the epoch for a date as Messenger's HTML prints it, or None when the format is not
    one we read (the message is kept without a time rather than given an invented one). Dates without
    a zone are the exporter's local time and are read as UTC: order within a thread stays right."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip().lower()
    day = _find_day(text)
    clock = _find_clock(text)
    if day is None or clock is None:
        return None
    (year, month, date), (hour, minute, second, rest) = day, clock
    try:
        moment = datetime(year, month, date, hour, minute, second, tzinfo=_find_zone(rest))
    except ValueError:  # February 30th, hour 25: not a date after all
        return None
    return moment.timestamp()


def _find_day(text: str) -> tuple[int, int, int] | None:
    if match := _CJK_DATE.search(text):
        return int(match[1]), int(match[2]), int(match[3])
    if match := _VI_MONTH_FIRST.search(text):
        return int(match[3]), int(match[1]), int(match[2])
    if match := _VI_DAY_FIRST.search(text):
        return int(match[3]), int(match[2]), int(match[1])
    for match in _NAME_FIRST.finditer(text):  # "friday, october 4, 2013": the weekday does not count
        if match[1] in _MONTHS:
            return int(match[3]), _MONTHS[match[1]], int(match[2])
    for match in _DAY_FIRST.finditer(text):
        if match[2] in _MONTHS:
            return int(match[3]), _MONTHS[match[2]], int(match[1])
    if match := _ISO_DATE.search(text):
        return int(match[1]), int(match[2]), int(match[3])
    return None


def _find_clock(text: str) -> tuple[int, int, int, str] | None:
    """(hour, minute, second, text after the time) with the 12-hour marker applied."""
    if match := _CJK_TIME.search(text):
        marker, hour, minute, second = match[1], int(match[2]), int(match[3]), int(match[4] or 0)
    elif match := _TIME.search(text):
        marker, hour, minute, second = match[4] or "", int(match[1]), int(match[2]), int(match[3] or 0)
    else:
        return None
    if marker in _MORNING and hour == 12:
        hour = 0
    elif marker in _AFTERNOON and hour < 12:
        hour += 12
    elif marker in _NOON and hour < 11:  # 中午 1:00 is one in the afternoon, 中午 12:00 is noon
        hour += 12
    return hour, minute, second, text[match.end() :]


def _find_zone(rest: str) -> timezone:
    if match := _ZONE_OFFSET.search(rest):
        sign = 1 if match[1] == "+" else -1
        offset = timedelta(hours=int(match[2]), minutes=int(match[3] or 0))
        if offset < timedelta(hours=24):
            return timezone(sign * offset)
    if match := _ZONE_NAME.search(rest):
        return timezone(timedelta(hours=_ZONES[match[1]]))
    return timezone.utc
