"""Continuous batching: one worker thread owns the module and steps every in-flight reply together.

Requests (`Job`s) wait in a bounded queue. Between two steps the worker admits new jobs — it reads their
incoming message in one call per job (prefill) — and lets finished ones go; then it samples one character
for every decoding job and feeds all of them in ONE batched forward call. A job is either `feed`
(read a message, return the state: observe, or a re-read after a reply was cut) or `generate`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import random
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bot.sampler import sample_rows
from bot.settings import SamplingSettings
from model.vocab import Vocabulary

log = logging.getLogger(__name__)


class EngineError(Exception):
    """The engine could not produce a reply (busy, timed out, stopped)."""


class EngineBusy(EngineError):
    """Too many requests are waiting; try again shortly."""


class EngineTimeout(EngineError):
    """A request took longer than its timeout."""


class EngineStopped(EngineError):
    """The engine was closed."""


@dataclass
class FeedResult:
    h: Tensor  # (L, 1, H)
    c: Tensor
    speaker: Tensor | None  # (A,) speaker logits at the last EOS fed, None if none was fed


@dataclass
class GenerateResult:
    ids: list[int]  # the generated characters (prefix excluded), without EOS
    ended: bool  # True: the model wrote EOS; False: cut at max_chars
    h: Tensor  # (L, 1, H) after the reply and its EOS
    c: Tensor
    speaker: Tensor  # (A,) speaker logits at the reply's EOS
    pre: FeedResult  # the state after the prefill, before the reply's BOS (for retries and re-reads)
    # (k, h, c): the state after the first k generated characters, where character k is the last
    # whitespace written; a reply cut there only needs an EOS more, not a re-read.
    boundary: tuple[int, Tensor, Tensor] | None = None


@dataclass
class Job:
    """One request to the worker. `chars`/`authors` are the prefill; `generate` jobs then write a reply."""

    kind: str  # "feed" | "generate"
    chars: list[int]
    authors: list[int]
    h: Tensor  # (L, 1, H) state to start from
    c: Tensor
    deadline: float  # time.monotonic()
    persona_id: int = 0
    prefix: list[int] = field(default_factory=list)  # reply characters fixed in advance (a prime)
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    rng: random.Random = field(default_factory=random.Random)
    future: Future = field(default_factory=Future)
    # filled in by the worker
    out: list[int] = field(default_factory=list)
    pre: FeedResult | None = None
    logits: Tensor | None = None  # (1, V) for the next character
    serial: int = 0  # set by submit: tells jobs apart (ids of dead objects get reused)
    closing: bool = False  # reached max_chars: the next step feeds EOS
    boundary: tuple[int, Tensor, Tensor] | None = None
    finishing: bool = False
    ended: bool = False


class BatchWorker:
    """The thread that owns `module`. `submit` is thread-safe; results arrive through each job's Future."""

    def __init__(self, module, vocab: Vocabulary, max_queue: int = 256, max_batch: int = 64,
                 onednn: bool = False, name: str = "talklike-engine"):
        self.module = module
        self.vocab = vocab
        self.max_batch = max_batch
        self.onednn = onednn
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self.steps = 0  # batched decode steps so far (for tests and benchmarks)
        self.max_seen_batch = 0
        self._serials = itertools.count(1)
        self._batch_key: tuple[int, ...] = ()
        self._batch_settings: tuple = ()
        self._spaces = {i for i in vocab.encode(" \n") if i != Vocabulary.UNK}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue a job; EngineBusy when the queue is full, EngineStopped after `close`."""
        if self._stop.is_set():
            raise EngineStopped("the reply engine is stopped")
        job.serial = next(self._serials)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise EngineBusy(f"the reply engine is busy ({self._queue.maxsize} requests waiting); try again") from None
        return job.future

    @property
    def alive(self) -> bool:
        """Is the worker thread running (not closed, not crashed)?"""
        return self._thread.is_alive() and not self._stop.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; jobs still waiting fail with EngineStopped."""
        self._stop.set()
        self._thread.join(timeout)
        while True:
            try:
                _fail(self._queue.get_nowait(), EngineStopped("the reply engine is stopped"))
            except queue.Empty:
                break

    # -- the loop -----------------------------------------------------------------------------------
    def _run(self) -> None:
        # Only the oneDNN switch changes (None leaves the other flags alone and avoids a TF32 warning).
        onednn = torch.backends.mkldnn.flags(enabled=self.onednn, deterministic=None, allow_tf32=None,
                                             fp32_precision=None)
        with torch.no_grad(), onednn:
            active: list[Job] = []
            h = c = logits = None  # batched state (L, B, H) and pending logits (B, V) of `active`
            while not self._stop.is_set():
                try:
                    joined = self._admit(block=not active, room=self.max_batch - len(active))
                    now = time.monotonic()
                    live = [i for i, job in enumerate(active) if not _expired(job, now)]
                    if len(live) < len(active):
                        active, h, c, logits = _select(active, h, c, logits, live)
                    if joined:
                        active += joined
                        h = torch.cat(([h] if h is not None else []) + [j.h for j in joined], dim=1)
                        c = torch.cat(([c] if c is not None else []) + [j.c for j in joined], dim=1)
                        logits = torch.cat(([logits] if logits is not None else []) + [j.logits for j in joined])
                    if not active:
                        h = c = logits = None
                        continue
                    active, h, c, logits = self._step(active, h, c, logits)
                except Exception as err:  # a bug or a bad module: fail the jobs, keep serving
                    log.exception("reply engine step failed")
                    for job in active:
                        _fail(job, EngineError(f"generation failed: {err}"))
                    active, h, c, logits = [], None, None, None
            for job in active:  # closed while replies were in flight
                _fail(job, EngineStopped("the reply engine is stopped"))

    def _admit(self, block: bool, room: int) -> list[Job]:
        """Take waiting jobs (up to `room` generating ones) and read their incoming steps together;
        feed jobs finish here, generating ones are returned ready to join the batch."""
        taken: list[Job] = []
        generating = 0
        while generating < room:
            try:
                job = self._queue.get(timeout=0.1) if block and not taken else self._queue.get_nowait()
            except queue.Empty:
                break
            if not _expired(job, time.monotonic()):
                taken.append(job)
                generating += job.kind == "generate"
        if not taken:
            return []
        try:
            self._prefill(taken)
        except Exception as err:
            log.exception("prefill failed")
            for job in taken:
                _fail(job, EngineError(f"generation failed: {err}"))
            return []
        return [job for job in taken if job.kind == "generate"]

    def _prefill(self, jobs: list[Job]) -> None:
        """Read every job's incoming steps, then BOS + prefix of the generating ones, batched.

        Sequences differ in length, so they are read in rounds: each round feeds every unfinished sequence
        as far as the nearest stop (a sequence's end, or the end of a job's incoming message, where its
        `pre` state is kept), all in one call. Cost: the longest sequence's steps, batched, plus one call
        per distinct stop.
        """
        seqs, who, stops = [], [], []
        for job in jobs:
            tail = [Vocabulary.BOS] + job.prefix if job.kind == "generate" else []
            seqs.append(job.chars + tail)
            who.append(job.authors + [job.persona_id] * len(tail))
            stops.append({len(job.chars), len(job.chars) + len(tail)})
        pos = [0] * len(jobs)
        hs = [job.h for job in jobs]
        cs = [job.c for job in jobs]
        last_logits: list[Tensor | None] = [None] * len(jobs)
        speaker: list[Tensor | None] = [None] * len(jobs)
        while True:
            # Jobs at a stop record their state there; a job at its incoming message's end keeps `pre`.
            for i, job in enumerate(jobs):
                if job.pre is None and pos[i] == len(job.chars):
                    job.pre = FeedResult(hs[i], cs[i], speaker[i])
            todo = [i for i in range(len(jobs)) if pos[i] < len(seqs[i])]
            if not todo:
                break
            span = min(min(s for s in stops[i] if s > pos[i]) - pos[i] for i in todo)
            x = torch.tensor([seqs[i][pos[i] : pos[i] + span] for i in todo])  # (B, T)
            a = torch.tensor([who[i][pos[i] : pos[i] + span] for i in todo])
            h = torch.cat([hs[i] for i in todo], dim=1)  # (L, B, H)
            c = torch.cat([cs[i] for i in todo], dim=1)
            char_logits, spk, h, c = self.module(x, a, h, c)  # (B, T, V), (B, T, A), (L, B, H) x2
            for row, i in enumerate(todo):
                pos[i] += span
                hs[i], cs[i] = h[:, row : row + 1], c[:, row : row + 1]
                last_logits[i] = char_logits[row : row + 1, -1].float()  # (1, V)
                if seqs[i][pos[i] - 1] == Vocabulary.EOS:
                    speaker[i] = spk[row, -1].float()  # (A,)
        for i, job in enumerate(jobs):
            if job.kind == "feed":
                _resolve(job, FeedResult(hs[i], cs[i], speaker[i]))
            else:
                job.h, job.c, job.logits = hs[i], cs[i], last_logits[i]

    def _step(self, active: list[Job], h: Tensor, c: Tensor, logits: Tensor):
        """Sample one character for every job, feed them all in one call, let finished jobs go."""
        n = len(active)
        self.steps += 1
        self.max_seen_batch = max(self.max_seen_batch, n)
        batch_key = tuple(j.serial for j in active)
        if batch_key != self._batch_key:  # settings tensors change only when the batch does
            self._batch_key = batch_key
            settings = [j.settings for j in active]
            self._batch_settings = (
                torch.tensor([o.temperature for o in settings]),
                torch.tensor([o.top_k for o in settings]),
                torch.tensor([o.top_p for o in settings]),
                any(o.top_k > 0 or o.top_p < 1.0 for o in settings),
                any(o.temperature <= 0 for o in settings),
            )
        temperature, top_k, top_p, cut, greedy = self._batch_settings
        allow = [len(j.prefix) + len(j.out) >= j.settings.min_chars for j in active]
        tokens = sample_rows(logits, temperature, top_k, top_p, torch.tensor(allow),
                             torch.tensor([j.rng.random() for j in active]),
                             cut=cut, greedy=greedy, eos_forbidden=not all(allow)).tolist()
        feed = []
        for i, (job, token) in enumerate(zip(active, tokens, strict=True)):
            if job.closing or token == Vocabulary.EOS:
                job.finishing, job.ended = True, not job.closing
                feed.append(Vocabulary.EOS)
            else:
                if token in self._spaces:  # the state before it ends a whole word
                    job.boundary = (len(job.out), h[:, i : i + 1].clone(), c[:, i : i + 1].clone())
                job.out.append(token)
                # Runaway: at max_chars this character is read, then an EOS closes the message.
                job.closing = len(job.prefix) + len(job.out) >= job.settings.max_chars
                feed.append(token)
        x = torch.tensor(feed).unsqueeze(1)  # (B, 1)
        a = torch.tensor([j.persona_id for j in active]).unsqueeze(1)  # (B, 1)
        char_logits, spk, h, c = self.module(x, a, h, c)  # (B, 1, V), (B, 1, A), (L, B, H) x2
        logits = char_logits[:, 0].float()  # (B, V)
        keep = []
        for i, job in enumerate(active):
            if job.finishing:
                _resolve(job, GenerateResult(job.out, job.ended, h[:, i : i + 1].clone(), c[:, i : i + 1].clone(),
                                             spk[i, 0].float(), job.pre, job.boundary))
            elif job.future.cancelled():
                continue
            else:
                keep.append(i)
        if len(keep) < n:
            return _select(active, h, c, logits, keep)
        return active, h, c, logits


def _select(active, h, c, logits, keep: list[int]):
    """Keep only rows `keep` of the batch."""
    if not keep:
        return [], None, None, None
    index = torch.tensor(keep)
    return [active[i] for i in keep], h.index_select(1, index), c.index_select(1, index), logits.index_select(0, index)


def _expired(job: Job, now: float) -> bool:
    if job.future.cancelled():
        return True
    if now > job.deadline:
        _fail(job, EngineTimeout("the reply took too long"))
        return True
    return False


def _resolve(job: Job, result) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled in between: nobody waits for it
        job.future.set_result(result)


def _fail(job: Job, err: Exception) -> None:
    with contextlib.suppress(InvalidStateError):
        job.future.set_exception(err)
