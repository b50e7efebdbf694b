"""What the reply engine's worker is asked to do (`Job`), what it hands back (`FeedResult`,
`GenerateResult`), and the per-row arrays of a running batch (`BatchView`)."""

from __future__ import annotations

import random
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from bot.engine.settings import SamplingSettings


@dataclass
class FeedResult:
    h: np.ndarray  # (L, 1, H)
    c: np.ndarray
    speaker: np.ndarray | None  # (A,) speaker logits at the last EOS fed, None if none was fed


@dataclass
class GenerateResult:
    ids: list[int]  # the generated characters (prefix excluded), without EOS
    ended: bool  # True: the model wrote EOS; False: cut at max_chars
    h: np.ndarray  # (L, 1, H) after the reply and its EOS
    c: np.ndarray
    speaker: np.ndarray  # (A,) speaker logits at the reply's EOS
    pre: FeedResult  # the state after the prefill, before the reply's BOS (for retries and re-reads)
    # (k, h, c): the state after the first k generated characters, where character k is the last
    # whitespace written; a reply cut there only needs an EOS more, not a re-read.
    boundary: tuple[int, np.ndarray, np.ndarray] | None = None


@dataclass
class Job:
    """One request to the worker. `chars`/`authors` are the prefill; `generate` jobs then write a reply."""

    kind: str  # "feed" | "generate"
    chars: list[int]
    authors: list[int]
    h: np.ndarray  # (L, 1, H) state to start from
    c: np.ndarray
    deadline: float  # time.monotonic()
    persona_id: int = 0
    prefix: list[int] = field(default_factory=list)  # reply characters fixed in advance (a prime)
    names: list[list[int]] = field(default_factory=list)  # recent speakers' names, encoded (model/names.py)
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    rng: random.Random = field(default_factory=random.Random)
    future: Future = field(default_factory=Future)
    # filled in by the worker
    out: list[int] = field(default_factory=list)
    pre: FeedResult | None = None
    logits: np.ndarray | None = None  # (1, V) for the next character
    serial: int = 0  # set by submit: tells jobs apart (ids of dead objects get reused)
    closing: bool = False  # reached max_chars: the next step feeds EOS
    boundary: tuple[int, np.ndarray, np.ndarray, int] | None = None  # (k, batch h, batch c, row) before a space
    finishing: bool = False
    ended: bool = False
    # a folded prefill: inputs still to force (incoming chars, BOS, prefix) and how many were fed
    forced: list[int] | None = None
    forced_authors: list[int] | None = None
    fed: int = 0
    speaker: np.ndarray | None = None  # speaker logits at the last EOS forced
    names_done: bool = False  # the reply's first word can no longer be a name: the names expert abstains


@dataclass
class BatchView:
    """Per-row arrays of the running batch, rebuilt only when its members change: the step reads these
    instead of asking every job, so a step's Python cost barely grows with the batch."""

    temperature: np.ndarray
    top_k: np.ndarray
    top_p: np.ndarray
    cut: bool  # any row uses top-k / top-p
    greedy: bool  # any row has temperature 0
    personas: np.ndarray  # (B,) the author each row writes as
    written: np.ndarray  # (B,) prefix + characters written so far
    min_chars: np.ndarray
    max_chars: np.ndarray
    closing: np.ndarray  # (B,) bool: reached max_chars, the next step feeds EOS
    randoms: list  # each row's `rng.random`
    forced: list[int]  # rows still reading a folded prefill
    deadline: float  # the earliest deadline in the batch

    @classmethod
    def of(cls, active: list[Job]) -> BatchView:
        settings = [j.settings for j in active]
        return cls(
            temperature=np.array([o.temperature for o in settings], dtype=np.float32),
            top_k=np.array([o.top_k for o in settings]),
            top_p=np.array([o.top_p for o in settings], dtype=np.float32),
            cut=any(o.top_k > 0 or o.top_p < 1.0 for o in settings),
            greedy=any(o.temperature <= 0 for o in settings),
            personas=np.array([j.persona_id for j in active]),
            written=np.array([len(j.prefix) + len(j.out) for j in active]),
            min_chars=np.array([o.min_chars for o in settings]),
            max_chars=np.array([o.max_chars for o in settings]),
            closing=np.array([j.closing for j in active], dtype=bool),
            randoms=[j.rng.random for j in active],
            forced=[i for i, j in enumerate(active) if j.forced],
            deadline=min(j.deadline for j in active),
        )
