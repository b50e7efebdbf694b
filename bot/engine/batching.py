"""Continuous batching: one worker thread owns the module and steps every in-flight reply together.

Requests (`Job`s) wait in a bounded queue. Between two steps the worker admits new jobs and lets finished
ones go; then it samples one character for every decoding job and feeds all of them in ONE batched forward
call. A job is either `feed` (read a message, return the state: observe, or a re-read after a reply was
cut) or `generate`.

A generating job's incoming message has to be read first (prefill). Into a running batch a short one (up
to FOLD_MAX steps, as most chat messages are) is *folded*: its characters ride along in the batched steps
as forced inputs, one per step, so a join costs the replies in flight nothing, where a separate read would
stall them all. Short `feed` jobs are folded the same way and leave the batch once read. Into an idle
worker, and when longer, the input is read at once through the stepper's `read` (model/stepping.py: in
numpy where the model allows it, else through its TorchScript module).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError

import numpy as np
import torch

from bot.engine.errors import EngineBusy, EngineError, EngineStopped, EngineTimeout
from bot.engine.jobs import BatchView, FeedResult, GenerateResult, Job
from model.experts import EXPERTS, NgramExperts, combine_np
from model.generation import head_width
from model.names import at_symbol, prefix_q
from model.sampler import sample_rows
from model.stepping import stepper_for
from model.vocab import Vocabulary

log = logging.getLogger(__name__)

FOLD_MAX = 64  # input steps up to which a job is folded into the batch's steps instead of read in one call


class BatchWorker:
    """The thread that owns `module`. `submit` is thread-safe; results arrive through each job's Future."""

    def __init__(self, module, vocab: Vocabulary, max_queue: int = 256, max_batch: int = 64,
                 onednn: bool = False, name: str = "talklike-engine", fast_step: bool = True,
                 experts: NgramExperts | None = None):
        self.module = module
        self.experts = experts  # the n-gram experts the network writes on top of, if it has them
        width = head_width(module)
        self.head_width = width if width is not None else len(vocab) + (EXPERTS if experts is not None else 0)
        self.names_gate = experts is not None and self.head_width > len(vocab) + EXPERTS
        self._at = at_symbol(vocab)
        # Steps and reads in numpy where the module allows it, else through the module (model/stepping.py).
        self.stepper = stepper_for(module, fast_step)
        self.vocab = vocab
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.onednn = onednn
        # Waiting jobs. The worker looks at this between every two steps, so it is a deque (no lock to
        # take when it is empty); submitters append under `_submit_lock` so the bound holds exactly.
        self._pending: deque[Job] = deque()
        self._submit_lock = threading.Lock()
        self._wakeup = threading.Event()  # set by submit: an idle worker waits on it
        self._view: BatchView | None = None  # of the running batch; None after it changed
        self._stop = threading.Event()
        self.steps = 0  # batched decode steps so far (for tests and benchmarks)
        self.max_seen_batch = 0
        self.folded = 0  # jobs whose input was folded into the batch's steps (for tests and benchmarks)
        self.fold_max = FOLD_MAX  # (a test sets 0 to read every input at once)
        self._serials = itertools.count(1)
        self._is_space = np.zeros(len(vocab), dtype=bool)  # (V,): the characters a word ends at
        self._is_space[[i for i in vocab.encode(" \n") if i != Vocabulary.UNK]] = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue a job; EngineBusy when the queue is full, EngineStopped after `close`."""
        if self._stop.is_set():
            raise EngineStopped("the reply engine is stopped")
        job.serial = next(self._serials)
        with self._submit_lock:
            if len(self._pending) >= self.max_queue:
                raise EngineBusy(f"the reply engine is busy ({self.max_queue} requests waiting); try again")
            self._pending.append(job)
        self._wakeup.set()
        return job.future

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet taken by the worker."""
        return len(self._pending)

    @property
    def alive(self) -> bool:
        """Is the worker thread running (not closed, not crashed)?"""
        return self._thread.is_alive() and not self._stop.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; jobs still waiting fail with EngineStopped."""
        self._stop.set()
        self._wakeup.set()
        self._thread.join(timeout)
        while self._pending:
            _fail(self._pending.popleft(), EngineStopped("the reply engine is stopped"))

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
                    # Timeouts when the batch's earliest deadline has passed; cancellations every 8 steps.
                    if active and (self._view is None or now > self._view.deadline or self.steps % 8 == 0):
                        live = [i for i, job in enumerate(active) if not _expired(job, now)]
                        if len(live) < len(active):
                            active, h, c, logits = _select(active, h, c, logits, live)
                            self._view = None
                    if joined:  # the batch state is numpy: (L, B, H) and (B, V)
                        self._view = None
                        active += joined
                        h = np.concatenate(([h] if h is not None else []) + [j.h for j in joined], axis=1)
                        c = np.concatenate(([c] if c is not None else []) + [j.c for j in joined], axis=1)
                        logits = np.concatenate(([logits] if logits is not None else []) +
                                                [j.logits for j in joined])
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
        """Take waiting jobs (up to `room` rows of the batch). Short jobs are returned folded (their input
        to be forced through the batch's steps); long ones are read here in one call, after which feed jobs
        are done and generating ones are returned to join the batch."""
        if not self._pending:
            if not block:
                return []
            self._wakeup.clear()  # cleared before the check: a submit in between sets it again
            if not self._pending:
                self._wakeup.wait(0.1)
        taken: list[Job] = []
        rows = 0  # of the batch, taken by generating and folded jobs
        while rows < room and self._pending:
            job = self._pending.popleft()
            if _expired(job, time.monotonic()):
                continue
            if job.kind == "feed" and not job.chars:  # nothing to read
                _resolve(job, FeedResult(job.h, job.c, None))
                continue
            taken.append(job)
            rows += job.kind == "generate" or len(job.chars) <= self.fold_max
        if not taken:
            return []
        folded = []
        for job in taken:
            tail = [Vocabulary.BOS] + job.prefix if job.kind == "generate" else []
            if block or len(job.chars) + len(tail) > self.fold_max:  # idle or long: read at once
                continue
            job.forced = job.chars + tail
            job.forced_authors = job.authors + [job.persona_id] * len(tail)
            job.logits = np.zeros((1, self.head_width), dtype=np.float32)  # unused: the next input is forced
            if not job.chars:  # a retry from a known state: nothing incoming to read
                job.pre = FeedResult(job.h, job.c, None)
            folded.append(job)
        self.folded += len(folded)
        rest = [job for job in taken if job.forced is None]
        if rest:
            try:
                self._prefill(rest)
            except Exception as err:
                log.exception("prefill failed")
                for job in rest:
                    _fail(job, EngineError(f"generation failed: {err}"))
                rest = []
        return folded + [job for job in rest if job.kind == "generate"]

    def _prefill(self, jobs: list[Job]) -> None:
        """Read every job's incoming steps, then BOS + prefix of the generating ones, one job after another."""
        for job in jobs:
            h, c, speaker = job.h, job.c, None
            if job.chars:
                _, speaker, h, c = self.stepper.read(job.chars, job.authors, h, c)
            read = FeedResult(h, c, speaker)
            if job.kind == "feed":
                _resolve(job, read)
                continue
            job.pre = job.pre or read
            tail = [Vocabulary.BOS] + job.prefix
            job.logits, _, h, c = self.stepper.read(tail, [job.persona_id] * len(tail), h, c)
            job.h, job.c = h, c

    def _step(self, active: list[Job], h: np.ndarray, c: np.ndarray, logits: np.ndarray):
        """Sample one character for every decoding job (folded jobs take their next forced input), feed
        them all in one call, let finished jobs go."""
        n = len(active)
        self.steps += 1
        self.max_seen_batch = max(self.max_seen_batch, n)
        view = self._view = self._view or BatchView.of(active)
        allow = view.written >= view.min_chars
        # Forced rows draw no random number: a reply's text depends on its seed alone, not on whether its
        # prefill was folded (which depends on the other requests).
        if view.forced:
            uniform = [0.0 if job.forced else job.rng.random() for job in active]
        else:
            uniform = [draw() for draw in view.randoms]
        if self.experts is not None:  # the counts' view of each reply so far
            written = [(job.prefix or []) + job.out for job in active]
            logits = combine_np(logits, self.experts.prefix_log_q(written, view.personas), len(self.vocab),
                                self._names_q(active, written) if self.names_gate else None)
        tokens = sample_rows(logits, view.temperature, view.top_k, view.top_p, allow, np.array(uniform),
                             cut=view.cut, greedy=view.greedy, eos_forbidden=not allow.all())  # (B,)
        done = (tokens == Vocabulary.EOS) | view.closing  # these rows feed EOS and leave
        feed, who = tokens, view.personas
        forced_rows = view.forced
        if forced_rows:
            done[forced_rows] = False
            who = who.copy()
            for i in forced_rows:
                job = active[i]
                feed[i], who[i] = job.forced[job.fed], job.forced_authors[job.fed]
                job.fed += 1
        done_rows = np.flatnonzero(done).tolist()
        writing = ~done
        if forced_rows:
            writing[forced_rows] = False
        if done_rows:
            feed[done_rows] = Vocabulary.EOS
            for i in done_rows:
                job = active[i]
                job.finishing, job.ended = True, not job.closing
        # The state before a space ends a whole word (the batch state is never changed in place, so a
        # reference is enough).
        for i in np.flatnonzero(writing & self._is_space[tokens]).tolist():
            active[i].boundary = (len(active[i].out), h, c, i)
        if len(done_rows) + len(forced_rows):
            rows = np.flatnonzero(writing).tolist()
            for i, token in zip(rows, tokens[rows].tolist(), strict=True):
                active[i].out.append(token)
        else:
            for job, token in zip(active, tokens.tolist(), strict=True):
                job.out.append(token)
        # Runaway: at max_chars this character is read, then an EOS closes the message.
        view.written = view.written + writing
        for i in np.flatnonzero(writing & (view.written >= view.max_chars)).tolist():
            active[i].closing = view.closing[i] = True
        logits, spk, h, c = self.stepper.step(feed, who, h, c)  # (B, V), (B, A), (L, B, H) x2
        gone = set()
        for i in list(forced_rows):
            job = active[i]
            if feed[i] == Vocabulary.EOS:
                job.speaker = spk[i].copy()
            speaker = job.speaker
            if job.kind == "feed":
                if job.fed == len(job.forced):  # read: the job is done and leaves
                    _resolve(job, FeedResult(_row(h, i), _row(c, i), speaker))
                    forced_rows.remove(i)
                    gone.add(i)
                continue
            if job.fed == len(job.chars):  # the incoming message is read: retries start here
                job.pre = FeedResult(_row(h, i), _row(c, i), speaker)
            if job.fed == len(job.forced):  # BOS and prefix read: the next step samples
                job.forced = None
                forced_rows.remove(i)
        for i in done_rows:
            job = active[i]
            _resolve(job, GenerateResult(job.out, job.ended, _row(h, i), _row(c, i),
                                         spk[i].copy(), job.pre, _boundary_state(job.boundary)))
            gone.add(i)
        if self.steps % 8 == 0:  # a cancelled request (its caller gave up) leaves within a few steps
            gone.update(i for i, job in enumerate(active) if job.future.cancelled())
        if gone:
            self._view = None
            return _select(active, h, c, logits, [i for i in range(n) if i not in gone])
        return active, h, c, logits

    def _names_q(self, active: list[Job], written: list[list[int]]) -> list[np.ndarray | None] | None:
        """The names expert's q for each row while its reply's first word may still become a name."""
        out: list[np.ndarray | None] = [None] * len(active)
        for i, job in enumerate(active):
            if job.names and not job.names_done and not job.forced:
                out[i] = prefix_q(written[i], job.names, self._at, len(self.vocab))
                job.names_done = out[i] is None and len(written[i]) > 0  # no name fits, nor ever will
        return out if any(q is not None for q in out) else None


def _row(state: np.ndarray, i: int) -> np.ndarray:
    """Row i of a batched (L, B, H) state, as its own (L, 1, H) array."""
    return state[:, i : i + 1].copy()


def _boundary_state(boundary):
    """(k, h, c) of one row from a (k, batch h, batch c, row) boundary."""
    if boundary is None:
        return None
    k, h, c, row = boundary
    return k, _row(h, row), _row(c, row)


def _select(active, h, c, logits, keep: list[int]):
    """Keep only rows `keep` of the batch."""
    if not keep:
        return [], None, None, None
    return [active[i] for i in keep], h[:, keep], c[:, keep], logits[keep]


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
