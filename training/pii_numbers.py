"""Which parts of a chain of digits are card or phone numbers, and which are dates, times, prices, scores.

A chain is what the scrubber's expression found: digit runs joined by separators of one to three
characters (spaces, dots, dashes, slashes, parentheses), maybe with a leading `+` or `(`. Digits may be
any script's decimal digits (full-width, Arabic-Indic, ...). The chain is judged in three steps:

1. Dates and times written tightly (`13.06.2018`, `2018-06-13`, `10.30-12.45`, `12.06.-14.06.2019`,
   `06/2019`) are set aside. A date is tight when the separators around it differ from the one inside
   it, so the French `06.12.34.56.78` is not read as the date 06.12.34 followed by more digits.
2. Over what is left, windows of up to eight digit groups are tried from each group on, longest first;
   a window begins and ends only at a separator holding a space, so `978-3-16-148410-0` is not split.
3. A window is a card number (13-19 digits in groups of three or more, spaces or dashes, first digit
   1-9, Luhn) or a phone number:
   - international (`+CC`, `00CC`, with an optional `(0)`): 8 to 15 digits;
   - national with a trunk `0` (`06 12 34 56 78`, `0171 2345678`, `(020) 7946 0958`): 9 to 13 digits,
     or 10 to 12 digits in one block (`0612345678`);
   - other national forms (`555-123-4567`, `612 34 56 78`, `8 916 123-45-67`): three groups or more,
     one of at least three digits, not all of four (`1234 5678 9012`), 9 to 13 digits;
   - after a word such as "tel", "call", "number", "Handy", "numéro", "номер": 8 to 13 digits.
   Never: more than one single-digit group (`192.168.1.1`, `4 8 15 16 23 42`), a last group of one digit
   (ISBNs), lists of years, IP addresses, decimals (`0.123456789`), thousands (`1 234 567`, `12.345.678`;
   three groups of three, `512 345 678`, count as a phone unless money or a unit stands beside them).
"""

from __future__ import annotations

import re
from collections.abc import Callable

PHONE = "<phone>"
CARD = "<card>"

_MAX_GROUPS = 8  # "+33 (0)6 12 34 56 78" is seven groups
_DIGITS = re.compile(r"\d+")
_SPACES = frozenset(" \u00a0\u2007\u2009\u202f\u3000")
_DATE_SEPS = frozenset({".", "/", "-", ". ", "\uff0e", "\uff0f"})
_KEYWORD = re.compile(
    r"(?:tel|phone|call|ring|number|mobile|cell|sms|text me|whats ?app|signal|viber|handy|nummer|ruf|anruf"
    r"|telefon|numéro|numero|número|portable|appelle|tél|teléfono|llama|móvil|celular|cellulare|chiama"
    r"|bel me|номер|телефон|звони|тел|رقم|هاتف|اتصل|电话|手机|電話|番号)",
    re.IGNORECASE,
)
_CURRENCY = re.compile(r"[€$£¥₽₹]")
# what follows an amount or a count: "1 234 567 €", "120 000 000 people"
_MONEY = re.compile(r"[€$£¥₽₹%]|(?:eur|euros?|usd|dollars?|chf|gbp|rub|zł|kr|sek|people|inhabitants|habitants"
                    r"|einwohner|views|followers)\b", re.IGNORECASE)


def number_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The (start, end, placeholder) of every card or phone number in the chain text[start:end]."""
    groups = [(m.start(), m.end()) for m in _DIGITS.finditer(text, start, end)]
    if sum(e - s for s, e in groups) < 8:  # nothing this short is a phone or card: most chains end here
        return []
    chain = _Chain(text, start, groups)
    spans = []
    for first, last in chain.free_runs():
        spans.extend(chain.identifiers(first, last))
    return spans


class _Chain:
    """The digit groups of one chain with their separators, and the windows over them."""

    def __init__(self, text: str, start: int, groups: list[tuple[int, int]]):
        self.text = text
        self.start = start
        self.groups = groups
        self.values = [_ascii(text[s:e]) for s, e in groups]
        self.lengths = [len(value) for value in self.values]
        self.seps = [text[groups[i][1] : groups[i + 1][0]] for i in range(len(groups) - 1)]
        self.loose = [any(char in _SPACES for char in sep) for sep in self.seps]  # a window may end here
        self.opening = text[start] if groups[0][0] > start else ""  # "+" or "(" before the first group
        self.cumulative = [0]  # digits before each group
        self.ones = [0]  # single-digit groups before each group
        self.longs = [0]  # groups of three digits or more before each group
        for length in self.lengths:
            self.cumulative.append(self.cumulative[-1] + length)
            self.ones.append(self.ones[-1] + (length == 1))
            self.longs.append(self.longs[-1] + (length >= 3))
        self._keyword_end: int | None = -1  # where a phone word before the chain ends; -1: not looked yet

    def free_runs(self) -> list[tuple[int, int]]:
        """Runs of groups (first, last) not taken by a tight date or time."""
        runs = []
        run_start = None
        index = 0
        count = len(self.groups)
        while index < count:
            size = self._datetime_at(index)
            if size:
                if run_start is not None:
                    runs.append((run_start, index - 1))
                    run_start = None
                index += size
                continue
            if run_start is None:
                run_start = index
            index += 1
        if run_start is not None:
            runs.append((run_start, count - 1))
        return runs

    def _datetime_at(self, index: int) -> int:
        """How many groups from `index` form a tight date or time (0 if none)."""
        for size in (3, 2):
            last = index + size - 1
            if last >= len(self.groups):
                continue
            inner = self.seps[index:last]
            sep = inner[0]
            if sep not in _DATE_SEPS or any(other != sep for other in inner):
                continue
            if (index > 0 and self.seps[index - 1] == sep) or (last < len(self.seps) and self.seps[last] == sep):
                continue
            if _is_datetime(self.values[index : last + 1], sep):
                return size
        return 0

    def identifiers(self, first: int, last: int) -> list[tuple[int, int, str]]:
        """Greedy, left to right: at each group the longest window that is a card or a phone number.

        A window begins and ends only where a separator holds a space (or at the run's ends): a number
        joined tightly to the next ("978-3-16-148410-0") is never split. Cheap counts rule most windows
        out before they are judged, so a chain of thousands of groups costs a few microseconds a group."""
        spans = []
        index = first
        cumulative, ones, longs, loose = self.cumulative, self.ones, self.longs, self.loose
        while index <= last:
            found = None
            if index == first or loose[index - 1]:
                # From a plain start (no "+", "(" or trunk 0, no phone word before), a card or a phone
                # needs a group of three digits or more: "12 12 12 …" is settled without judging.
                plain = not (index == 0 and self.opening) and self.values[index][0] != "0"
                needs_long = plain and not self._keyword_before(index)
                for stop in range(min(last, index + _MAX_GROUPS - 1), index - 1, -1):
                    digits = cumulative[stop + 1] - cumulative[index]
                    if digits < 8:
                        break
                    if digits > 19 or ones[stop + 1] - ones[index] > 2 or (stop < last and not loose[stop]):
                        continue
                    if needs_long and longs[stop + 1] == longs[index]:
                        continue
                    token = self._judge(index, stop, digits)
                    if token:
                        found = stop, token
                        break
            if found is None:
                index += 1
                continue
            stop, token = found
            begin = self.groups[index][0] - (len(self.opening) if index == 0 else 0)
            spans.append((begin, self.groups[stop][1], token))
            index = stop + 1
        return spans

    def _judge(self, first: int, last: int, digits: int) -> str | None:
        lengths = self.lengths[first : last + 1]
        opening = self.opening if first == 0 else ""
        values = self.values[first : last + 1]
        seps = self.seps[first:last]
        if not opening and 13 <= digits <= 19 and min(lengths) >= 3 and _is_card(values, seps):
            return CARD
        head = values[0]
        if not opening and head[0] != "0":  # a plain national number needs its shape, or a phone word before it
            shaped = len(lengths) >= 3 and max(lengths) >= 3 and 9 <= digits <= 13
            if not shaped and not (digits <= 13 and self._keyword_before(first)):
                return None
        if _is_phone(values, seps, opening, lambda: self._keyword_before(first), lambda: self._money_beside(first, last)):
            return PHONE
        return None

    def _keyword_before(self, first: int) -> bool:
        """Whether a phone word ("tel", "call", ...) ends at most 24 characters before group `first`."""
        if self._keyword_end == -1:
            self._keyword_end = None
            for match in _KEYWORD.finditer(self.text, max(0, self.start - 24), self.start):
                self._keyword_end = match.end()
        return self._keyword_end is not None and self.groups[first][0] - self._keyword_end <= 24

    def _money_beside(self, first: int, last: int) -> bool:
        start, end = self.groups[first][0], self.groups[last][1]
        before = self.text[max(0, start - 4) : start]
        return bool(_CURRENCY.search(before) or _MONEY.match(self.text[end : end + 16].lstrip()))


def _is_card(values: list[str], seps: list[str]) -> bool:
    """13-19 digits in groups of three or more, spaces or dashes between, passing the Luhn check."""
    digits = "".join(values)
    if not 13 <= len(digits) <= 19 or digits[0] == "0":
        return False
    if any(sep not in (" ", "-") for sep in seps):
        return False
    return _luhn_ok(digits)


def _is_phone(values: list[str], seps: list[str], opening: str, keyword: Callable[[], bool],
              money: Callable[[], bool]) -> bool:
    """Whether these digit groups, joined by these separators, are written like a phone number; `keyword`
    and `money` tell (when asked: they cost a search) whether a phone word precedes them, money follows."""
    if not _parentheses_balance(opening, seps):
        return False
    values = list(values)
    # "+44 (0)20 …": the trunk zero in parentheses is not dialled from abroad
    for index in range(1, len(values) - 1):
        if values[index] == "0" and seps[index - 1].endswith("(") and seps[index].startswith(")"):
            del values[index]
            break
    digits = "".join(values)
    count = len(values)
    if sum(len(value) == 1 for value in values) > 1 or (count > 1 and len(values[-1]) == 1):
        return False
    international = opening in ("+", "\uff0b")
    if not international and digits.startswith("00") and not digits.startswith("000"):
        international, digits = True, digits[2:]
    if international:
        return 8 <= len(digits) <= 15
    if not 8 <= len(digits) <= 13 or _not_a_phone(values, seps):
        return False
    if keyword():
        return True
    trunk = digits[0] == "0"
    if count == 1:
        return trunk and 10 <= len(digits) <= 12
    if trunk:
        return len(digits) >= 9
    if count < 3 or max(len(value) for value in values) < 3 or len(digits) < 9:
        return False
    if all(len(value) == 4 for value in values):  # "1234 5678 9012": an account or a card failing Luhn
        return False
    if _thousands(values):
        # "512 345 678" (Polish, Spanish, Portuguese mobiles) or 512,345,678 written the French way
        return (count == 3 and len(values[0]) == 3 and all(sep in _SPACES for sep in seps) and not money()
                and not all(value.endswith("0") for value in values))
    return True


def _not_a_phone(values: list[str], seps: list[str]) -> bool:
    """Years, IP addresses and decimals that have the digits of a phone number."""
    if len(values) > 1 and all(len(value) == 4 and 1900 <= int(value) <= 2099 for value in values):
        return True
    if len(values) == 4 and all(sep == "." for sep in seps) and all(int(value) <= 255 for value in values):
        return True
    return values[0] == "0" and bool(seps) and seps[0] in (".", ",")


def _thousands(values: list[str]) -> bool:
    return len(values[0]) <= 3 and all(len(value) == 3 for value in values[1:])


def _parentheses_balance(opening: str, seps: list[str]) -> bool:
    depth = 1 if opening in ("(", "\uff08") else 0
    for sep in seps:
        for char in sep:
            if char in "(\uff08":
                depth += 1
                if depth > 1:
                    return False
            elif char in ")\uff09":
                depth -= 1
                if depth < 0:
                    return False
    return depth == 0


def _is_datetime(values: list[str], sep: str) -> bool:
    numbers = [int(value) for value in values]
    sizes = [len(value) for value in values]
    if len(values) == 3:
        a, b, c = numbers
        if sizes[0] == 4:  # 2018-06-13
            return _year(values[0]) and 1 <= b <= 12 and 1 <= c <= 31 and sizes[1] <= 2 and sizes[2] <= 2
        if sizes[0] > 2 or sizes[1] > 2:
            return False
        if sep == "." and sizes[1] == sizes[2] == 2 and a <= 23 and b <= 59 and c <= 59:
            return True  # 21.25.15
        if sizes[2] not in (2, 4) or (sizes[2] == 4 and not _year(values[2])):
            return False
        return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)  # 13.06.2018, 6/13/18
    a, b = numbers
    if sizes == [4, 4]:
        return _year(values[0]) and _year(values[1])  # 1990-2020
    if sizes[1] == 4:
        return 1 <= a <= 12 and sizes[0] <= 2 and _year(values[1])  # 06/2019
    if sizes[0] > 2 or sizes[1] > 2:
        return False
    if sep in (".", "\uff0e") and sizes[1] == 2 and a <= 24 and b <= 59:
        return True  # 10.30
    return 1 <= a <= 31 and 1 <= b <= 12 and sep != "-"  # 12.06 (a day and month)


def _year(value: str) -> bool:
    return len(value) == 4 and 1900 <= int(value) <= 2099


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


def _ascii(value: str) -> str:
    """Any script's decimal digits as ASCII digits ("０６" and "٠٦" both become "06")."""
    if value.isascii():
        return value
    return "".join(str(int(char)) for char in value)
