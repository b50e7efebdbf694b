"""Undo Facebook's double encoding: UTF-8 bytes written out as Latin-1 code points.

Facebook's JSON exports escape each UTF-8 byte of a character as its own `\\u00XX`, so `café` arrives as
`cafÃ©` and 😂 as four characters `\\u00f0\\u009f\\u0098\\u0082`. Re-encoding as Latin-1 recovers the bytes.
The repair is conditional: a string that is already correct either holds a character above U+00FF (the
encode fails) or Latin-1 bytes that are not valid UTF-8 (the decode fails), and stays as it is. Blind
repair crashes on exactly those strings, which real exports mix with broken ones.
"""

from __future__ import annotations


def repair(s: str) -> str:
    """`s` with Latin-1-as-UTF-8 mojibake undone; `s` itself when the repair does not apply."""
    if s.isascii():  # the common case by far, and the fast path on large exports
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except UnicodeError:  # encode or decode failed: the string was not mojibake
        return s


def repair_tree(obj: object) -> object:
    """A copy of a decoded JSON value with `repair` applied to every string, dictionary keys included."""
    kind = type(obj)
    if kind is str:
        return repair(obj)
    if kind is list:
        return [repair_tree(item) for item in obj]
    if kind is dict:
        return {repair(key): repair_tree(value) for key, value in obj.items()}
    return obj
