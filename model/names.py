"""The names expert: whom a message addresses, from the names of the people who spoke recently.

In a group chat the most predictable thing the conversation gives is a name: ubuntu-irc opens 39% of its
messages with a recent speaker's nick. The network cannot know it (most speakers fold into ⟨other⟩, and
their names are nowhere in its input) and the n-gram experts read only the message so far. So, while a
message's first word (after an optional '@') could still become the name of one of the last `RECENT`
distinct other speakers of the conversation, each such name votes 1 / (recency rank) for its next character;
q is the normalised vote, and the model's distribution there is the mixture

    p = (1 − σ(g)) · softmax(logits) + σ(g) · q

where g is one more output of the network's head (the gate: how likely it is that this message addresses
someone). Elsewhere the expert abstains and p is the network's (and n-gram experts') own. Names come from
the conversation (corpus authors in training and evaluation, the chat's display names in the engine); the
model file stores none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

RECENT = 20  # distinct recent speakers whose names the expert knows
INITIAL_GATE_BIAS = -2.0  # σ(−2) = 0.12: a message addresses someone now and then
AT = "@"


def at_symbol(vocab) -> int | None:
    """The symbol id of '@' in a vocabulary, or None."""
    return vocab.encode(AT)[0] if AT in vocab else None


def recent_speakers(authors: Iterable[str | None], limit: int = RECENT) -> list[list[str]]:
    """For a conversation's messages by `authors`, oldest first: the last `limit` distinct authors before each
    message other than its own, most recent first (None: nobody known)."""
    out: list[list[str]] = []
    recent: list[str] = []
    for author in authors:
        out.append([a for a in recent if a != author][:limit])
        if author is not None:
            if author in recent:
                recent.remove(author)
            recent.insert(0, author)
            del recent[limit + 1 :]  # one spare: the next message's author may be among them
    return out


def message_opinions(text: Sequence[int], names: Sequence[Sequence[int]], at: int | None) -> list[tuple[int, dict]]:
    """(k, {symbol: weight}) for each k (symbols of the message typed so far) where the expert has an opinion
    on symbol k: the names that continue the first word typed so far, weighted by recency. `at`: the '@'
    symbol, which may open the word."""
    out = []
    start = 0
    candidates = [tuple(n) for n in names if n]
    k = 0
    while k <= len(text):
        if k == 1 and at is not None and text[0] == at:
            start = 1  # "@name": the word starts after the '@'
        typed = tuple(text[start:k])
        n = len(typed)
        votes: dict[int, float] = {}
        for rank, name in enumerate(candidates):
            if len(name) > n and name[:n] == typed:
                votes[name[n]] = votes.get(name[n], 0.0) + 1.0 / (rank + 1)
        if votes:
            total = sum(votes.values())
            out.append((k, {s: w / total for s, w in votes.items()}))
        elif not (k == 0 and at is not None and len(text) > 0 and text[0] == at):
            break  # no name continues what was typed, nor will one after more of it
        k += 1
    return out


@dataclass
class NameHints:
    """The expert's opinions over a sequence of steps, sparse: at step steps[j] (whose input is the symbol
    before the one predicted), q is weights[offsets[j]:offsets[j+1]] on symbols[offsets[j]:offsets[j+1]]."""

    steps: np.ndarray  # (K,) int64, ascending
    offsets: np.ndarray  # (K + 1,) int64
    symbols: np.ndarray  # (E,) int64
    weights: np.ndarray  # (E,) float32

    @classmethod
    def empty(cls) -> NameHints:
        return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def build(cls, messages: Iterable[tuple[int, Sequence[int], Sequence[Sequence[int]]]], at: int | None) -> NameHints:
        """From (position of the message's ⟨bos⟩ step, its symbols after ⟨bos⟩, the encoded recent names)."""
        steps, counts, symbols, weights = [], [], [], []
        for bos, text, names in messages:
            if not names:
                continue
            for k, votes in message_opinions(text, names, at):
                steps.append(bos + k)
                counts.append(len(votes))
                symbols.extend(votes.keys())
                weights.extend(votes.values())
        if not steps:
            return cls.empty()
        return cls(np.asarray(steps, np.int64), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   np.asarray(symbols, np.int64), np.asarray(weights, np.float32))

    @classmethod
    def concat(cls, parts: Sequence[tuple[NameHints | None, int]]) -> NameHints:
        """One set of hints from (hints, offset of their steps) parts, offsets ascending."""
        parts = [(h, shift) for h, shift in parts if h is not None and len(h.steps)]
        if not parts:
            return cls.empty()
        ends = np.cumsum([0] + [len(h.symbols) for h, _ in parts[:-1]])
        return cls(np.concatenate([h.steps + shift for h, shift in parts]),
                   np.concatenate([[0]] + [h.offsets[1:] + end for (h, _), end in zip(parts, ends, strict=True)]),
                   np.concatenate([h.symbols for h, _ in parts]), np.concatenate([h.weights for h, _ in parts]))

    def lookup(self, length: int) -> np.ndarray:
        """(length,) int32: for each step of a sequence of `length` steps, its opinion's index, or −1."""
        index = np.full(length, -1, dtype=np.int32)
        index[self.steps] = np.arange(len(self.steps), dtype=np.int32)
        return index

    def dense(self, which: np.ndarray, vocab_size: int) -> np.ndarray:
        """q (len(which), V) float32 of the opinions at indices `which`."""
        which = np.asarray(which, dtype=np.int64)
        q = np.zeros((len(which), vocab_size), dtype=np.float32)
        if len(which) == 0:
            return q
        first, counts = self.offsets[which], self.offsets[which + 1] - self.offsets[which]
        rows = np.repeat(np.arange(len(which)), counts)
        entries = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        q[rows, self.symbols[entries]] = self.weights[entries]
        return q


@dataclass
class NameOpinions:
    """The expert's opinions on one batch of steps: flat indices into its (B·T) steps and q there."""

    at: torch.Tensor  # (K,) int64
    q: torch.Tensor  # (K, V) float32

    @classmethod
    def gather(cls, hints: NameHints, index: np.ndarray, steps: np.ndarray, vocab_size: int,
               device: torch.device | str = "cpu") -> NameOpinions | None:
        """The opinions at sequence steps `steps` (any shape; flattened), `index` being `hints.lookup(...)`;
        None where there are none."""
        which = index[np.asarray(steps).reshape(-1)]
        at = np.flatnonzero(which >= 0)
        if len(at) == 0:
            return None
        q = hints.dense(which[at], vocab_size)
        return cls(torch.from_numpy(at).to(device), torch.from_numpy(q).to(device))


def mix_names(logits: torch.Tensor, gate: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """log p (K, V) of (1 − σ(gate))·softmax(logits) + σ(gate)·q, for logits (K, V), gate (K,), q (K, V)."""
    own = F.logsigmoid(-gate)[:, None] + torch.log_softmax(logits.float(), dim=-1)
    named = F.logsigmoid(gate)[:, None] + torch.log(q.clamp_min(1e-30))
    return torch.logaddexp(own, named)


def mix_names_np(logits: np.ndarray, gate: np.ndarray, q: np.ndarray) -> np.ndarray:
    """`mix_names` in numpy (the generation loops): logits (K, V), gate (K,), q (K, V) → log p (K, V)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=-1, keepdims=True)
    lam = 1.0 / (1.0 + np.exp(-gate))[:, None]
    return np.log(np.maximum((1.0 - lam) * p + lam * q, 1e-30))


def prefix_q(prefix: Sequence[int], names: Sequence[Sequence[int]], at: int | None, vocab_size: int) -> np.ndarray | None:
    """q (V,) of the next symbol of a message being written (prefix: its symbols so far), or None (abstains)."""
    for k, votes in message_opinions(prefix, names, at):
        if k == len(prefix):
            q = np.zeros(vocab_size, dtype=np.float32)
            q[list(votes.keys())] = list(votes.values())
            return q
    return None
