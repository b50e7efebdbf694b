"""`Generator`: feed messages and sample replies in one thread, synchronously (training previews,
evaluation's generated replies, tests).

It steps through the same `Stepper` (model/stepping.py) and the same sampler (model/sampler.py) as the
reply engine, so sample i of a call with `seed` writes what the engine's `sample` writes with that seed;
the engine adds conversation memory, continuous batching and the memorization guard around them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from model.experts import NgramExperts, combine_np
from model.sampler import sample_rows
from model.stepping import native_lstm, stepper_for
from model.stream import encode_message
from model.vocab import AuthorTable, Vocabulary


@dataclass
class GenState:
    """Recurrent state after the messages fed so far."""

    h: np.ndarray  # (L, B, H)
    c: np.ndarray  # (L, B, H)
    speaker_logits: np.ndarray | None = None  # (A,) of the first conversation at the last EOS fed
    messages: int = 0  # messages fed so far


def head_width(module: torch.nn.Module) -> int | None:
    """Outputs of the module's character head (eager, scripted or int8), None if it cannot tell."""
    try:
        return int(module.char_head.out_features)
    except (AttributeError, RuntimeError, TypeError):
        return None


class Generator:
    """Works with an eager `CharLSTM` (in eval mode) or an artifact's module, on any device."""

    def __init__(self, module: torch.nn.Module, vocab: Vocabulary, authors: AuthorTable, fast: bool = True,
                 experts: NgramExperts | None = None):
        self.stepper = stepper_for(module, fast)
        self.vocab = vocab
        self.authors = authors
        self.experts = experts  # the n-gram experts the network writes on top of, if it has them
        if experts is None and head_width(module) not in (None, len(vocab)):
            raise ValueError("this model writes on top of n-gram experts: give them (artifact.experts, or the "
                             "run's experts.npz)")

    def init_state(self, batch: int = 1) -> GenState:
        """The state before any message (all zeros), for `batch` conversations."""
        shape = (self.stepper.num_layers, batch, self.stepper.hidden_size)
        return GenState(np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32))

    def feed(self, state: GenState, author_id: int, text: str, session: bool = False) -> GenState:
        """Read one whole message written by `author_id`."""
        chars, authors = encode_message(self.vocab, author_id, text, session)
        rows = []
        with native_lstm():
            for row in range(state.h.shape[1]):  # each conversation of the state reads the message
                rows.append(self.stepper.read(chars, authors, state.h[:, row : row + 1], state.c[:, row : row + 1]))
        return GenState(np.concatenate([r[2] for r in rows], axis=1), np.concatenate([r[3] for r in rows], axis=1),
                        rows[0][1], state.messages + 1)

    def next_speaker_probs(self, state: GenState) -> np.ndarray:
        """Probability of each author (A,) speaking next, from the speaker head at the last message end."""
        if state.speaker_logits is None:
            raise ValueError("no message fed yet: the speaker head speaks at a message end")
        e = np.exp(state.speaker_logits - state.speaker_logits.max())
        return e / e.sum()

    def reply(self, state: GenState, persona_id: int, n: int = 1, temperature: float = 0.8, top_k: int = 0,
              top_p: float = 1.0, min_chars: int = 1, max_chars: int = 300, seed: int | None = None) -> list[str]:
        """`n` independent replies by `persona_id`, continuing from `state` (its first conversation), stepped
        together; reply i draws from `random.Random(seed + i)`. A reply to nothing (a fresh state) opens a
        session first, as a conversation's first message does in the stream."""
        rngs = [random.Random(None if seed is None else seed + i) for i in range(n)]
        opening = ([Vocabulary.SESSION] if state.messages == 0 else []) + [Vocabulary.BOS]
        with native_lstm():
            logits, _, h, c = self.stepper.read(opening, [persona_id] * len(opening), state.h[:, :1], state.c[:, :1])
            logits = np.repeat(logits, n, axis=0)  # (n, V): every reply starts from the same conversation state
            h, c = np.repeat(h, n, axis=1), np.repeat(c, n, axis=1)  # (L, n, H)
            author = np.full(n, persona_id)
            settings = (np.full(n, temperature, dtype=np.float32), np.full(n, top_k),
                        np.full(n, top_p, dtype=np.float32))
            out: list[list[int]] = [[] for _ in range(n)]
            writing = np.ones(n, dtype=bool)
            for written in range(max_chars):
                allow_eos = np.full(n, written >= min_chars)
                logits = self.char_logits(logits, out, author)
                token = sample_rows(logits, *settings, allow_eos, np.array([r.random() for r in rngs]))
                writing &= token != Vocabulary.EOS
                for i in np.flatnonzero(writing):
                    out[i].append(int(token[i]))
                if not writing.any() or written + 1 == max_chars:
                    break
                logits, _, h, c = self.stepper.step(token, author, h, c)
        return [self.vocab.decode(ids) for ids in out]

    def char_logits(self, head: np.ndarray, written: list[list[int]], author_ids: np.ndarray) -> np.ndarray:
        """Character logits (B, V) from the network's head and, with experts, their view of each reply so far."""
        if self.experts is None:
            return head[:, : len(self.vocab)]
        return combine_np(head, self.experts.prefix_log_q(written, author_ids), len(self.vocab))
