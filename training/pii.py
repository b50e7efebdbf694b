"""PII scrubbing: emails, phone numbers, card numbers and URLs become placeholder tokens.

On by default at import (`--no-scrub` turns it off). Patterns favour recall on real chat text while
leaving times ("21:43"), dates ("13.6.2018"), years and short numbers alone.
"""

from __future__ import annotations

import re

EMAIL = "<email>"
PHONE = "<phone>"
CARD = "<card>"
URL = "<url>"

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]}]", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}\b")
# 13–19 digits in groups (spaces or dashes allowed); confirmed with the Luhn checksum.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# International (+CC …) or grouped national numbers with at least 8 digits overall.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.\-\u00a0]?)?(?:\(\d{1,4}\)[\s.\-\u00a0]?)?\d{2,4}(?:[\s.\-\u00a0]?\d{2,4}){2,4}(?!\w)"
)
_QUICK = re.compile(r"[@/]|www\.|\d{3}")  # text without any of these cannot hold PII: skip the regexes


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD if _luhn_ok(digits) else match.group(0)


def _phone(match: re.Match) -> str:
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if len(digits) < 8 or len(digits) > 15:
        return raw
    groups = len(re.findall(r"\d+", raw))
    # "1234 5678" could be anything; a phone shows a country code, an area code or three or more groups.
    if not raw.startswith(("+", "(")) and groups < 3 and len(digits) < 10:
        return raw
    # Dates and times written with dots or dashes ("13.06.2018", "2018-06-13") are not phone numbers.
    if re.fullmatch(r"\d{1,4}[.\-/]\d{1,2}[.\-/]\d{2,4}", raw):
        return raw
    return PHONE


def scrub(text: str) -> str:
    """Replace personal identifiers in `text` with placeholder tokens."""
    if not _QUICK.search(text):
        return text
    text = _URL.sub(URL, text)
    text = _EMAIL.sub(EMAIL, text)
    text = _CARD.sub(_card, text)
    text = _PHONE.sub(_phone, text)
    return text
