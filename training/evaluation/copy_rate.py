"""Copy rate: how many generated replies repeat training text, with the memorization guard off and on.

A reply counts as a copy when it contains a whole training message of 20+ characters (case and spacing
aside, between word boundaries) or a verbatim 60-character span of one. The detector is built here from the
training part of the corpus, independently of the guard the model ships; "guard on" applies the engine's
rule with the model's guard (resample a flagged reply up to `retries` times, then cut it before the copy),
and the detector reads the result. On must be 0: a non-zero figure means the shipped guard misses text the
model was trained on (a stale or missing guard).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from model.guard import MemorizationGuard


@dataclass
class CopyRate:
    unguarded: float | None  # share of raw replies that are copies (None: no replies)
    guarded: float | None  # the same after the guard's resample-then-cut rule
    replies: int
    resampled: int  # replies the guard asked to resample at least once
    cut: int  # replies still flagged after the resamples, cut before the copy
    guard: str  # "model" (the shipped guard), or "none" (the model has none: on = off)

    @classmethod
    def of_nothing(cls, guard: MemorizationGuard | None) -> CopyRate:
        """No replies were generated (too few personas, or none asked for)."""
        return cls(None, None, 0, 0, 0, "model" if guard is not None else "none")


def copy_rate(replies: Sequence[str], regenerate: Callable[[int, int], str], detector: MemorizationGuard,
              guard: MemorizationGuard | None, retries: int = 3) -> CopyRate:
    """Copy rates of `replies`; `regenerate(i, attempt)` draws a fresh reply in place of reply i (its persona and
    context, another seed), as the engine resamples."""
    if not replies:
        return CopyRate.of_nothing(guard)
    raw = sum(detector.contains_memorized(text) for text in replies)
    if guard is None:
        return CopyRate(raw / len(replies), raw / len(replies), len(replies), 0, 0, "none")
    copies = resampled = cut = 0
    for i, text in enumerate(replies):
        if guard.contains_memorized(text):
            resampled += 1
            for attempt in range(1, retries + 1):
                text = regenerate(i, attempt)
                if not guard.contains_memorized(text):
                    break
            else:  # every resample copied too: cut before the copy, as the engine does
                cut += 1
                text = guard.cut_before(text)
        copies += detector.contains_memorized(text)
    return CopyRate(raw / len(replies), copies / len(replies), len(replies), resampled, cut, "model")
