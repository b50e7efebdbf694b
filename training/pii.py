"""PII scrubbing: links, emails, IBANs, card and phone numbers become placeholder tokens.

On by default at import (`--no-scrub` turns it off). One regular expression walks the text once; each of
its branches can only start where its kind of identifier can start (a scheme, the start of a word, a
digit after a non-word character) and reads a bounded stretch or a run it then consumes, so the cost
grows with the length of the message, never with its square. What the expression finds is judged in
Python:

- links: a scheme or `www.` is enough; otherwise a host whose last label is a public suffix (the Public
  Suffix List, bundled with the `publicsuffixlist` package, read offline) with a path or a port
  (`drive.google.com/…`, `t.me/name`, `example.com/x`). A bare host (`example.com`) counts only when its
  suffix is not also an everyday word, unit or file extension (`ok.so`, `main.py`, `love.you` stay);
- emails: a local part, `@`, and a domain ending in letters;
- IBANs: country code, check digits and the country's length, confirmed by mod 97, with or without spaces;
- chains of digits (joined by spaces, dots, dashes, slashes, parentheses): card numbers confirmed by
  Luhn and phone numbers as people write them (see `training.pii_numbers`), while dates, times, years,
  prices, scores and other numbers stay.

Placeholders are `<url>`, `<email>`, `<iban>`, `<card>`, `<phone>`. Scrubbing is pattern matching: it
favours catching identifiers and is not a guarantee.
"""

from __future__ import annotations

import re
from functools import lru_cache

from training.pii_numbers import CARD, PHONE, number_spans

EMAIL = "<email>"
URL = "<url>"
IBAN = "<iban>"
KINDS = {EMAIL: "email", URL: "url", IBAN: "iban", CARD: "card", PHONE: "phone"}
MAX_CHARS = 20_000  # the import cuts longer messages to this many characters before scrubbing them

# A link's tail: anything but spaces, quotes, angle brackets, and CJK punctuation (no spaces in CJK text).
_PATH = "[^\\s<>\"'`\u3000-\u303f\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f]"
# Letters of the scripts that put spaces between words (Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic,
# Devanagari, Georgian; with combining accents).
# An identifier may start right after any other character: Chinese, Japanese or Thai text runs straight
# into a number or a link ("電話は090-1234-5678です", "看这个t.me/abc"), and is never part of one.
_LETTER = "A-Za-z\u00c0-\u024f\u0300-\u06ff\u0900-\u097f\u10a0-\u10ff\u1e00-\u1fff"
_WORD = _LETTER + "\\d_"
_SEP_CHARS = " \u00a0\u2007\u2009\u202f\u3000./\\-\u2010\u2011\u2012\u2013\u2212\uff0d\uff0e\uff0f()\uff08\uff09"
# Digits joined by short separators, with a leading + or (; every digit run is maximal.
_CHAIN_PATTERN = (f"(?<![{_WORD}+\uff0b])(?:[+\uff0b]|[(\uff08](?=\\d))?\\d+"
                  f"(?:[{_SEP_CHARS}]{{1,3}}\\d+)*")
_LABEL = f"[{_LETTER}\\d][{_WORD}-]{{0,62}}"
# One branch per kind; the handler of each judges what it finds. The scan joins only the branches that can
# match the text at hand (no "@", no email branch): each branch joined costs time at every position.
_BRANCHES = {
    # scheme or www.: always a link
    "url": f"(?<![{_WORD}])(?:(?:https?|ftp)://|www\\.){_PATH}+",
    # local part (starts a run), @, domain labels; the handler checks that the last label is letters
    "email": f"(?<![{_WORD}.+-])[{_WORD}.+-]{{1,64}}@{_LABEL}(?:\\.[{_WORD}-]{{1,63}}){{1,8}}",
    # a host starting a run, its last label letters only, then an optional port and path
    "host": f"(?<![{_WORD}.@/-])(?P<hostname>(?:{_LABEL}\\.){{1,16}}(?:xn--[a-z0-9-]{{1,59}}|[{_LETTER}]{{2,63}}))"
            f"(?![{_WORD}-])(?::\\d{{1,5}})?(?:/{_PATH}*)?",
    # two letters and two digits starting a word, then up to 30 more letters or digits (single spaces between)
    "iban": f"(?<![{_WORD}])[A-Z]{{2}}[0-9]{{2}}(?:[ \u00a0]?[A-Z0-9]){{11,30}}",
    "number": _CHAIN_PATTERN,
}
_CHAIN = re.compile(_CHAIN_PATTERN)
_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=32)
def _scanner(kinds: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(f"(?P<{kind}>{_BRANCHES[kind]})" for kind in kinds), re.IGNORECASE)


def _kinds_present(text: str) -> tuple[str, ...]:
    """The branches that can match somewhere in `text`, told by substring tests that run at C speed."""
    kinds = []
    if "://" in text or "www." in text.lower():
        kinds.append("url")
    if "." in text:
        if "@" in text:
            kinds.append("email")
        kinds.append("host")
    if _DIGIT.search(text):
        kinds += ("iban", "number")
    return tuple(kinds)


_TRAILING = ".,;:!?)]}'\"»…>*_~"

# Suffixes that are also words, units or file extensions: a bare host ending in one is taken for words
# run together ("ok.so", "look.at", "main.py", "5.km"); with a path or scheme it is still a link ("t.me/x").
_WORD_SUFFIXES = frozenset(
    "ad al am as at be by do er es ga hm il im in is it je jo la ma me mo ms my na ne no nu om pa pe re se "
    "si so st to us va vi vu ye cc md ps py rs sh cm km kg mg ml mm zip mov".split()
)
# Generic suffixes common enough in chat to count bare; every other generic one (love, you, now, life,
# today, fun, ...) needs a scheme, www. or a path, since most of them are words too.
_LINK_GTLDS = frozenset(
    "com net org info biz edu gov mil int app dev xyz online site website shop store tech blog club pro "
    "mobi asia cloud".split()
)


def scrub(text: str) -> str:
    """Replace personal identifiers in `text` with placeholder tokens."""
    return scrub_counted(text)[0]


def scrub_counted(text: str) -> tuple[str, list[str]]:
    """`text` scrubbed, and the kind ("phone", "url", ...) of each identifier replaced, in order."""
    present = _kinds_present(text)
    if not present:
        return text, []
    scanner = _scanner(present)
    pieces: list[str] = []
    kinds: list[str] = []
    done = 0  # text[:done] is already in pieces
    pos = 0
    while True:
        match = scanner.search(text, pos)
        if match is None:
            break
        spans, pos = _HANDLERS[match.lastgroup](match, text)
        for start, end, token in spans:
            pieces.append(text[done:start])
            pieces.append(token)
            kinds.append(KINDS[token])
            done = end
    if not kinds:
        return text, kinds
    pieces.append(text[done:])
    return "".join(pieces), kinds


# Each handler gets a match and returns (spans to replace, where the next search starts). A candidate it
# rejects resumes one character on: the branches' look-behinds keep the rescan of its inside cheap.


def _url(match: re.Match, text: str) -> tuple[list, int]:
    end = _trim(text, match.start(), match.end())
    prefix = 4 if match.group().lower().startswith("www.") else match.group().index("://") + 3
    if end - match.start() <= prefix:
        return [], match.start() + 1
    return [(match.start(), end, URL)], end


def _email(match: re.Match, text: str) -> tuple[list, int]:
    tld = match.group().rsplit(".", 1)[1]
    if len(tld) < 2 or not tld.isalpha():
        return _numbers_inside(text, match.start(), match.end())
    return [(match.start(), match.end(), EMAIL)], match.end()


def _host(match: re.Match, text: str) -> tuple[list, int]:
    hostname = match.group("hostname")
    labels = hostname.split(".")
    suffix = labels[-1].lower()
    if not _known_suffix(suffix):
        return _numbers_inside(text, match.start(), match.end("hostname"))
    end = _trim(text, match.end("hostname"), match.end())
    if end == match.end("hostname") and not _bare_host_is_link(labels, suffix):
        return _numbers_inside(text, match.start(), end)
    return [(match.start(), end, URL)], end


def _iban(match: re.Match, text: str) -> tuple[list, int]:
    span = match.group()
    length = _IBAN_LENGTHS.get(span[:2].upper())
    chars = []
    end = None
    if length is not None:
        for index, char in enumerate(span):
            if char not in " \u00a0":
                chars.append(char)
                if len(chars) == length:
                    end = match.start() + index + 1
                    break
    if end is None or (end < len(text) and (text[end].isalnum() or text[end] == "_")):
        return [], match.start() + 1
    if not _mod97_ok("".join(chars)):
        return [], end  # shaped like an IBAN but not one: kept whole, as a card number failing Luhn is
    return [(match.start(), end, IBAN)], end


def _number(match: re.Match, text: str) -> tuple[list, int]:
    return number_spans(text, match.start(), match.end()), match.end()


_HANDLERS = {"url": _url, "email": _email, "host": _host, "iban": _iban, "number": _number}


def _numbers_inside(text: str, start: int, end: int) -> tuple[list, int]:
    """A rejected host or email ("0612345678.so") may still hold a phone number: only chains of digits
    can hide in words and dots, so look for those alone, then go on after it."""
    spans = []
    for chain in _CHAIN.finditer(text, start, end):
        spans.extend(number_spans(text, chain.start(), chain.end()))
    return spans, end


def _trim(text: str, start: int, end: int) -> int:
    """The end of a link without the punctuation that closes the sentence around it; a ")" stays when
    the link opened one ("…/wiki/Foo_(bar)")."""
    while end > start and text[end - 1] in _TRAILING:
        if text[end - 1] == ")" and text.count("(", start, end) >= text.count(")", start, end):
            break
        end -= 1
    return end


def _bare_host_is_link(labels: list[str], suffix: str) -> bool:
    """Whether a host written without scheme, www. or path ("example.com") is a link and not words."""
    if labels[-2].isdigit() or suffix in _WORD_SUFFIXES:
        return False
    tld = labels[-1]
    if not (tld.islower() or ".".join(labels).isupper()):  # "home.Be there": a sentence run together
        return False
    return len(suffix) == 2 or not suffix.isascii() or suffix.startswith("xn--") or suffix in _LINK_GTLDS


@lru_cache(maxsize=4096)
def _known_suffix(label: str) -> bool:
    """Whether `label` is a top-level public suffix (ICANN section of the Public Suffix List)."""
    return _suffix_list().publicsuffix("x." + label) is not None


@lru_cache(maxsize=1)
def _suffix_list():
    from publicsuffixlist import PublicSuffixList  # about 60 ms to load: only once a host turns up

    return PublicSuffixList(only_icann=True, accept_unknown=False)


def _mod97_ok(code: str) -> bool:
    """The IBAN check: country and check digits moved to the end, letters as 10..35, mod 97 == 1."""
    rearranged = code[4:] + code[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


# IBAN length per country (SWIFT's IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
