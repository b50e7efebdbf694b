"""Cleaning a sampled reply: cutting a runaway at a word boundary, cutting before a memorized span or message."""

from __future__ import annotations

from model.guard import MemorizationGuard


def cut_runaway(text: str) -> str:
    """A reply that hit max_chars, cut after its last whole word (kept as is if that loses over half)."""
    cut = max(text.rfind(" "), text.rfind("\n"))
    return text[:cut].rstrip() if cut >= len(text) // 2 else text


def memorized_start(guard: MemorizationGuard, text: str) -> int | None:
    """Where the first verbatim training span, or whole training message (case and spacing aside), of
    `text` begins, or None if there is none."""
    return guard.memorized_start(text)


def cut_before_memorized(guard: MemorizationGuard, text: str) -> str:
    """`text` up to the last word boundary before its first memorized span or message (maybe empty)."""
    start = memorized_start(guard, text)
    if start is None:
        return text
    head = text[:start]
    if head and not head[-1].isspace():  # the span begins inside a word: drop that word too
        cut = max(head.rfind(" "), head.rfind("\n"))
        head = head[:cut] if cut >= 0 else ""
    return head.rstrip()
