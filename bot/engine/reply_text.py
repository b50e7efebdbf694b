"""Cleaning a sampled reply: cutting a runaway at a word boundary, cutting before a memorized span."""

from __future__ import annotations

import numpy as np

from model.guard import MemorizationGuard, window_hashes


def cut_runaway(text: str) -> str:
    """A reply that hit max_chars, cut after its last whole word (kept as is if that loses over half)."""
    cut = max(text.rfind(" "), text.rfind("\n"))
    return text[:cut].rstrip() if cut >= len(text) // 2 else text


def memorized_start(guard: MemorizationGuard, text: str) -> int | None:
    """Where the first verbatim training span of `text` begins, or None if there is none."""
    if len(guard) == 0 or len(text) < guard.n:
        return None
    probe = window_hashes(text, guard.n)  # one hash per window start
    pos = np.searchsorted(guard.hashes, probe).clip(max=len(guard.hashes) - 1)
    hits = np.flatnonzero(guard.hashes[pos] == probe)
    return int(hits[0]) if hits.size else None


def cut_before_memorized(guard: MemorizationGuard, text: str) -> str:
    """`text` up to the last word boundary before its first memorized span (maybe empty)."""
    start = memorized_start(guard, text)
    if start is None:
        return text
    head = text[:start]
    if head and not head[-1].isspace():  # the span begins inside a word: drop that word too
        cut = max(head.rfind(" "), head.rfind("\n"))
        head = head[:cut] if cut >= 0 else ""
    return head.rstrip()
