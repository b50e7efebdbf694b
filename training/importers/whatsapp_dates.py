"""Dates and times of WhatsApp headers: seconds into the day, and dates whose day/month order is learned
per file and per header style from the dates themselves."""

from __future__ import annotations

import calendar
import re
from datetime import date

_DIGITS = re.compile(r"\d+")
_EPOCH = date(1970, 1, 1).toordinal()


def seconds_of_day(time_text: str, half: str | None) -> int | None:
    """Seconds into the day for "21:43", "21.25.15", "1:55" + "p"; None when out of range."""
    parts = [int(part) for part in _DIGITS.findall(time_text)]
    hour, minute = parts[0], parts[1]
    second = parts[2] if len(parts) > 2 else 0
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half in "pP" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour * 3600 + minute * 60 + second


class Calendar:
    """Dates to seconds since the epoch at midnight, learning the order of day and month per header style
    (bracket, separator) from the dates themselves: a first field above 12 means day first, a second field
    above 12 month first; until then dotted and dashed dates are day first and slashed ones month first."""

    def __init__(self, day_first: bool | None):
        self.day_first = day_first  # the user's choice, which overrides the evidence
        self.days: dict[str, int | None] = {}  # date text ("[" first for iOS) -> midnight, None if impossible
        self.changed = False  # an order changed after dates of its style were converted
        self._parsed: dict[str, tuple] = {}
        self._seen: dict[tuple, set] = {}  # style -> {"day", "month"}

    def midnight(self, key: str) -> int | None:
        """Convert a date seen for the first time (and learn from it)."""
        date_text = key.lstrip("[")
        numbers = [int(part) for part in _DIGITS.findall(date_text)]
        style = (key.startswith("["), date_text[len(date_text) - len(date_text.lstrip("0123456789"))])
        year_first = len(_DIGITS.match(date_text).group()) >= 3
        self._parsed[key] = (style, year_first, numbers)
        if not year_first:
            before = self._day_first(style)
            seen = self._seen.setdefault(style, set())
            if numbers[0] > 12:
                seen.add("day")
            if numbers[1] > 12:
                seen.add("month")
            if self._day_first(style) != before:
                converted = [other for other in self.days if self._parsed[other][0] == style]
                self.changed = self.changed or bool(converted)
                for other in converted:
                    self.days[other] = self._convert(other)
        value = self.days[key] = self._convert(key)
        return value

    def _day_first(self, style: tuple) -> bool:
        if self.day_first is not None:
            return self.day_first
        seen = self._seen.get(style, ())
        if "day" in seen:
            return True
        if "month" in seen:
            return False
        return style[1] != "/"

    def _convert(self, key: str) -> int | None:
        style, year_first, numbers = self._parsed[key]
        if year_first:
            year, month, day = numbers
        elif self._day_first(style):
            day, month, year = numbers
        else:
            month, day, year = numbers
        if month > 12 and day <= 12:  # this one date contradicts its file's order
            day, month = month, day
        if year < 100:
            year += 2000
        if not (1 <= month <= 12 and 1 <= year <= 9999 and 1 <= day <= calendar.monthrange(year, month)[1]):
            return None
        return (date(year, month, day).toordinal() - _EPOCH) * 86400
