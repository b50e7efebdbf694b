"""What a WhatsApp message body is: speech, media (with its caption), a call, a location, a poll, or an app
line or placeholder to drop, in every language `app_lines` holds."""

from __future__ import annotations

import re

from training.importers import app_lines


def _spellings(phrase: str) -> tuple[str, ...]:
    """The ways a placeholder is written verbatim: as listed, and with its first letter capitalized."""
    at = next((index for index, char in enumerate(phrase) if char.isalpha()), 0)
    return phrase, phrase[:at] + phrase[at].upper() + phrase[at + 1 :]


def _stopped(phrase: str) -> tuple[str, ...]:
    """`_spellings` of a sentence, bare and with a final full stop."""
    return tuple(spelling for stop in ("", ".", "。") for spelling in _spellings(phrase + stop))


# Placeholders, deletion notices and other whole-body app lines as exports write them (app_lines holds them in
# every language), for one dictionary lookup per message; other casings take the slower, folded look.
_EXACT: dict[str, tuple[str | None, str]] = {}
for _language in app_lines.LANGUAGES.values():
    for _phrase, _kind in _language.media.items():
        _EXACT.update(dict.fromkeys(_spellings(_phrase), (_kind, "")))
    for _phrase in _language.calls:
        _EXACT.update(dict.fromkeys(_spellings(_phrase), ("call", "")))
    for _phrase in _language.deleted:
        _EXACT.update(dict.fromkeys(_stopped(_phrase), (None, app_lines.DELETED)))
    for _phrase, _reason in _language.app.items():
        _EXACT.update(dict.fromkeys(_stopped(_phrase), (None, _reason)))
_EXACT[app_lines.NULL_BODY] = (None, app_lines.NULL)
# Last three characters of every placeholder's last word (as written, capitalized, in capitals), with and without a
# final period: a body ending in one gets the slower look; a set lookup rules most bodies out at once.
_TAILS = frozenset(tail for word in app_lines.LAST_WORDS for cased in (word, word.capitalize(), word.upper())
                   for tail in (cased[-3:], (cased + ".")[-3:], (cased + "。")[-3:]))

# iOS: "<attached: 00000042-PHOTO-2019-06-20-15-58-57.jpg>" (localized word before the colon).
_ATTACHED = re.compile(r"<[^<>:\n]{2,24}: ?(\d{8}-[^<>\n]*\.\w{1,5})>")
# Android with media: "IMG-20200101-WA0001.jpg (file attached)"; the caption follows on the next lines.
_FILE_ATTACHED = re.compile(
    r"((?:IMG|VID|PTT|AUD|STK|DOC)-\d{8}-WA\d+\.(\w{1,5})) \([^()\n]{3,40}\)"
    r"|(\S[^\n]*\.(\w{2,5})) \((?:" + "|".join(re.escape(word) for word in app_lines.ATTACHED_WORDS) + r")\)",
    re.IGNORECASE,
)
_ANDROID_PREFIX = {"IMG": "photo", "VID": "video", "PTT": "voice", "AUD": "audio", "STK": "sticker", "DOC": "file"}
_IOS_TOKEN = re.compile(r"-(PHOTO|VIDEO|AUDIO|STICKER|GIF|CONTACT|CONTACT-CARD)-")
_IOS_KIND = {"PHOTO": "photo", "VIDEO": "video", "AUDIO": "audio", "STICKER": "sticker", "GIF": "gif",
             "CONTACT": "contact", "CONTACT-CARD": "contact"}
_LOCATION = re.compile(r"(?:" + "|".join(re.escape(word) for word in app_lines.LOCATION_WORDS)
                       + r"): https?://\S+", re.IGNORECASE)


def classify_clean(body: str) -> tuple[str | None, str]:
    """(kind, text) for a message body once direction marks and mentions are dealt with, or (None, reason)
    when it is not kept (a placeholder, a deletion, an app line)."""
    body = body.strip()
    # Cheap tests first: most bodies are plain speech and skip everything below.
    exact = _EXACT.get(body)
    if exact is not None:
        return exact
    if not ("<" in body or ")" in body or ":" in body or (body[-3:] in _TAILS and _placeholder_end(body))):
        # An app notice whose U+200E was lost: whole sentences, ending in a period.
        reason = app_lines.notice(body) if body[-1:] in ".。" else None
        return (None, reason) if reason else ("text", body)
    return _classify_slowly(body)


def _classify_slowly(body: str) -> tuple[str | None, str]:
    """`classify_clean` for the bodies the cheap tests could not settle."""
    body = app_lines.strip_edited(body)
    found = app_lines.whole_body(body)
    if found is not None:
        return found
    first, _, caption = body.partition("\n")
    first = first.strip()
    attached = _ATTACHED.fullmatch(first) if first.startswith("<") else None
    if attached:
        token = _IOS_TOKEN.search(attached.group(1))
        kind = _IOS_KIND[token.group(1)] if token else ("contact" if attached.group(1).lower().endswith(".vcf") else "file")
        return kind, "" if kind == "contact" else caption.strip()
    attached = _FILE_ATTACHED.fullmatch(first) if first.endswith(")") else None
    if attached:
        name = attached.group(1) or attached.group(3)
        extension = (attached.group(2) or attached.group(4)).lower()
        kind = "contact" if extension == "vcf" else _ANDROID_PREFIX.get(name[:3].upper(), "file")
        return kind, "" if kind == "contact" else caption.strip()
    if caption:  # Android with media: "<Media omitted>" and the caption on the lines below
        kind = app_lines.MEDIA.get(first.casefold())
        if kind is not None:
            return kind, "" if kind in ("contact", "call", "location") else caption.strip()
    folded = body.casefold()
    if "://" in folded and _LOCATION.fullmatch(folded):
        return "location", ""
    if first == "POLL:":
        return "poll", caption.strip().split("\n", 1)[0].strip()
    if folded.endswith(app_lines.DOCUMENT_SUFFIXES):
        return "file", ""
    reason = app_lines.notice(body)
    return (None, reason) if reason else ("text", body)


def _placeholder_end(body: str) -> bool:
    """Whether the body's last word ends one of the table's placeholders ("… omitted", "… gelöscht.")."""
    last = body.rsplit(None, 1)[-1].casefold().rstrip(".。").strip("<>")
    return last in app_lines.LAST_WORDS
