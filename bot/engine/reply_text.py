"""Cleaning a sampled reply: cutting a runaway at a word boundary, cutting before a memorized span or message."""

from __future__ import annotations

from model.guard import MemorizationGuard


def cut_runaway(text: str) -> str:
    """A reply that hit max_chars, cut after its last whole word (kept as is if that loses over half)."""
    cut = max(text.rfind(" "), text.rfind("\n"))
    return text[:cut].rstrip() if cut >= len(text) // 2 else text


def cut_before_memorized(guard: MemorizationGuard, text: str) -> str:
    """`text` up to the last word boundary before its first memorized span or message (maybe empty);
    the guard's own rule, which `talklike evaluate` also applies when it measures the copy rate."""
    return guard.cut_before(text)
