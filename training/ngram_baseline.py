"""The classical baseline every quality figure stands beside: an interpolated character n-gram.

Two models share one code path: a global one fitted on every training message, and a per-author one
whose counts are kept apart by author (the model's author table: folded people share ⟨other⟩). A message's
probability is the mix λ·P_author + (1 − λ)·P_global, λ per author-activity bucket, chosen on a tuning
slice of the training part (never on the held-out split). Without the author it is P_global alone; the
difference is the baseline's author gain.

Smoothing: interpolated modified Kneser-Ney (three discounts per order, Chen & Goodman's estimates) or
Witten-Bell, orders 5–7; `fit_baseline` fits all of them on the tuning split and keeps the best.

What is scored is what `training.evaluation` scores: a message's own characters. Each message is read as
⟨bos⟩ text ⟨eos⟩ (⟨eos⟩ is predicted in training, so the distribution has to leave it room, but it is not
scored) and contexts do not cross messages: the n-gram knows nothing of the conversation (context gain 0).
Kneser-Ney's continuation counts are replaced by plain counts for contexts that reach the message start, as
SRILM does for ⟨s⟩: such a context has only one possible left extension.

Everything is numpy: contexts and (context, next char) pairs are 64-bit hashes of the preceding symbols
(and author), counted with sorts; a lookup is a binary search. ~10 M training characters fit in about a
minute.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from model.vocab import AuthorTable, Vocabulary
from training.dataset import split_messages, spoken

ORDERS = (5, 6, 7)
METHODS = ("kn", "wb")
LAMBDA_GRID = tuple(round(0.05 * i, 2) for i in range(20))  # 0 … 0.95
# Named authors are bucketed by training messages: a person with 15 messages needs the global model more
# than one with 5,000.
ACTIVITY_EDGES = (30, 100, 300, 1000)

_MUL = np.uint64(0x100000001B3)  # odd multiplier of the polynomial hash
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that spreads nearby values."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _sort(keys: np.ndarray, with_order: bool = False):
    """Sorted int64 keys (and the permutation): torch's sort, on all cores, is 2–3× numpy's here."""
    values, order = torch.from_numpy(keys).sort()
    return (values.numpy(), order.numpy()) if with_order else values.numpy()


def _runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))


@dataclass
class Framed:
    """Messages as one flat symbol array: ⟨bos⟩ text ⟨eos⟩ each; the predicted positions and their rooms."""

    symbols: np.ndarray  # (S,) int64, all messages framed and concatenated
    positions: np.ndarray  # (N,) indices into symbols of every predicted step (all but each ⟨bos⟩)
    room: np.ndarray  # (N,) distance back to the message's ⟨bos⟩ (1 for the first character)
    owner: np.ndarray  # (N,) which message each step belongs to
    authors: np.ndarray  # (N,) author id of each step
    scored: np.ndarray  # (N,) bool: a text character (not ⟨eos⟩)

    @classmethod
    def build(cls, encoded: Sequence[Sequence[int]], author_ids: Sequence[int]) -> Framed:
        lengths = np.array([len(ids) + 2 for ids in encoded], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = [Vocabulary.BOS]
        for ids in encoded:
            flat.extend(ids)
            flat.extend((Vocabulary.EOS, Vocabulary.BOS))
        symbols = np.array(flat[:-1] if encoded else [], dtype=np.int64)
        owner_of_symbol = np.repeat(np.arange(len(encoded)), lengths)
        predicted = np.ones(len(symbols), dtype=bool)
        predicted[starts] = False  # every symbol but each message's ⟨bos⟩ is a step to predict
        positions = np.flatnonzero(predicted)
        owner = owner_of_symbol[positions]
        room = positions - starts[owner]
        authors = np.asarray(author_ids, dtype=np.int64).reshape(-1)[owner]
        scored = symbols[positions] != Vocabulary.EOS
        return cls(symbols, positions, room, owner, authors, scored)


class _Keys:
    """Packed keys of one context length k for every step of a `Framed`.

    ctx: a hash of the k symbols before the step (padded beyond the message's ⟨bos⟩; salted by the author
    for the per-author model), in the top 64 − 2b bits; pair = ctx · 2^b + symbol predicted; ext = pair · 2^b +
    the symbol one further back (for continuation counts). b bits hold any symbol, so a sort of pairs is also a
    sort of contexts, and a sort of ext keys groups them by pair."""

    def __init__(self, vocab_size: int):
        self.b = max(1, int(vocab_size).bit_length())  # symbols 0..vocab_size (vocab_size = padding)
        if 64 - 2 * self.b < 32:
            raise ValueError(f"vocabulary of {vocab_size} symbols is too large for the n-gram's packed keys")
        self.pad = vocab_size

    def levels(self, framed: Framed, max_context: int, by_author: bool):
        """Yield (pair keys, symbol at distance k+1) per k = 0..max_context, each (N,) int64."""
        n = len(framed.positions)
        b = np.uint64(self.b)
        salt = _mix((framed.authors.astype(np.uint64) + np.uint64(1)) * _GOLD) if by_author else np.zeros(n, np.uint64)
        target = framed.symbols[framed.positions].astype(np.uint64)
        running = salt
        further = self.back(framed, 1)
        with np.errstate(over="ignore"):
            for k in range(max_context + 1):
                if k > 0:
                    running = running * _MUL + further.astype(np.uint64) + np.uint64(1)
                    further = self.back(framed, k + 1)
                ctx = _mix(running ^ np.uint64(k)) >> (b + b)
                yield ((ctx << b) | target).view(np.int64), further

    def back(self, framed: Framed, distance: int) -> np.ndarray:
        """The symbol `distance` steps before each step, or padding beyond the message's ⟨bos⟩."""
        at = np.maximum(framed.positions - distance, 0)
        return np.where(framed.room >= distance, framed.symbols[at], self.pad)


@dataclass
class _Level:
    """Counts of one context length: pair keys → counts, context keys → (total, n1, n2, n3+), discounts."""

    pair_keys: np.ndarray  # sorted int64
    pair_counts: np.ndarray  # float64
    ctx_keys: np.ndarray  # sorted int64 (pair_keys >> b, distinct)
    ctx_stats: np.ndarray  # (C, 4) float64: total count, types seen once, twice, three or more times
    discounts: np.ndarray  # (3,) modified Kneser-Ney D1, D2, D3+
    b: int

    @classmethod
    def from_counts(cls, keys: np.ndarray, counts: np.ndarray, b: int) -> _Level:
        """From sorted distinct pair keys and their counts."""
        ctx = keys >> b
        starts = _runs(ctx)
        stats = np.zeros((len(starts), 4))
        if len(keys):
            stats[:, 0] = np.add.reduceat(counts, starts)
            for column, hit in ((1, counts == 1), (2, counts == 2), (3, counts >= 3)):
                stats[:, column] = np.add.reduceat(hit.astype(np.float64), starts)
        n = [np.count_nonzero(counts == j) for j in (1, 2, 3, 4)]
        discounts = np.array([0.5, 1.0, 1.5])
        if n[0] > 0 and n[1] > 0:
            y = n[0] / (n[0] + 2 * n[1])
            estimate = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / max(n[2], 1)]
            discounts = np.clip(np.array(estimate), [0.05, 0.1, 0.15], [0.95, 1.9, 2.9])
        return cls(keys, counts.astype(np.float64), ctx[starts], stats, discounts, b)

    @classmethod
    def count(cls, pairs: np.ndarray, b: int) -> _Level:
        """Every event counted."""
        keys, counts = _distinct(pairs)
        return cls.from_counts(keys, counts, b)

    def lookup(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pair counts (N,), context stats (N, 4)) of sorted query pairs; zeros where unseen."""
        return _find(self.pair_keys, self.pair_counts, pairs), _find(self.ctx_keys, self.ctx_stats, pairs >> self.b)


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and how often each occurs."""
    s = _sort(keys)
    starts = _runs(s)
    return s[starts], np.diff(np.append(starts, len(s))).astype(np.float64)


def _find(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[key] for sorted queries (a sorted query array makes the binary searches cache-friendly)."""
    if len(keys) == 0:
        return np.zeros((len(queries), *values.shape[1:]))
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    found = keys[at] == queries
    out = values[at]
    out[~found] = 0
    return out


class CountModel:
    """Interpolated character n-gram counts up to `max_order`, global or kept apart by author.

    `raw[k]` counts every event with k symbols of context (Witten-Bell at all orders, Kneser-Ney at the top);
    `cont[k]` holds Kneser-Ney's continuation counts (distinct left extensions) for the lower orders.
    """

    def __init__(self, vocab_size: int, max_order: int = 7, by_author: bool = False):
        if not 1 <= max_order <= 10:
            raise ValueError(f"n-gram order must be 1..10, got {max_order}")
        self.vocab_size = vocab_size
        self.max_context = max_order - 1
        self.by_author = by_author
        self.packing = _Keys(vocab_size)
        self.raw: list[_Level] = []
        self.cont: list[_Level] = []

    def fit(self, framed: Framed) -> CountModel:
        b = self.packing.b
        for k, (pairs, further) in enumerate(self.packing.levels(framed, self.max_context, self.by_author)):
            self.raw.append(_Level.count(pairs, b))
            if k < self.max_context:
                self.cont.append(self._continuation(pairs, further, framed.room, k, b))
        return self

    @staticmethod
    def _continuation(pairs: np.ndarray, further: np.ndarray, room: np.ndarray, k: int, b: int) -> _Level:
        """Continuation counts of context length k: how many distinct symbols precede each (context, symbol)
        pair, except where the context already reaches the message start (one possible extension): there every
        occurrence counts, as plain counts."""
        inner = room > k
        ext = (pairs[inner] << b) | further[inner]
        s = _sort(ext)
        # One entry per distinct (pair, symbol before), grouped by pair; ext keys use all 64 bits, so the
        # shift back to the pair must be the unsigned one.
        s = (s[_runs(s)].view(np.uint64) >> np.uint64(b)).view(np.int64)
        starts = _runs(s)
        keys = [s[starts]]
        counts = [np.diff(np.append(starts, len(s))).astype(np.float64)]
        anchored_keys, anchored_counts = _distinct(pairs[~inner])
        keys.append(anchored_keys)
        counts.append(anchored_counts)
        keys_all, order = _sort(np.concatenate(keys), with_order=True)
        return _Level.from_counts(keys_all, np.concatenate(counts)[order], b)

    def probabilities(self, framed: Framed, order: int, method: str) -> np.ndarray:
        """P(symbol | context) of every step of `framed` (N,), for one order ≤ max_order and method."""
        if not 1 <= order <= self.max_context + 1:
            raise ValueError(f"order {order} not fitted (max {self.max_context + 1})")
        if method not in METHODS:
            raise ValueError(f"unknown smoothing {method!r} (choose from {', '.join(METHODS)})")
        top = order - 1
        p = np.full(len(framed.positions), 1.0 / self.vocab_size)
        for k, (pairs, _) in enumerate(self.packing.levels(framed, top, self.by_author)):
            level = self.raw[k] if (k == top or method == "wb") else self.cont[k]
            queries, perm = _sort(pairs, with_order=True)
            count_sorted, stats_sorted = level.lookup(queries)
            count = np.empty_like(count_sorted)
            count[perm] = count_sorted
            stats = np.empty_like(stats_sorted)
            stats[perm] = stats_sorted
            total, types = stats[:, 0], stats[:, 1:]
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            if method == "kn":
                d1, d2, d3 = level.discounts
                discount = np.select([count >= 3, count == 2, count == 1], [d3, d2, d1], 0.0)
                gamma = types @ level.discounts
                mixed = (np.maximum(count - discount, 0.0) + gamma * p) / safe
            else:
                distinct = types.sum(axis=1)
                mixed = (count + distinct * p) / np.where(seen, total + distinct, 1.0)
            p = np.where(seen, mixed, p)
        return p


def activity_bucket(author_id: int, train_messages: int) -> int:
    """0 for ⟨other⟩; 1.. by the named author's number of training messages."""
    if author_id == 0:
        return 0
    return 1 + int(np.searchsorted(ACTIVITY_EDGES, train_messages, side="right"))


@dataclass
class NGramBaseline:
    """A fitted baseline: global and per-author counts, the chosen order and smoothing, λ per bucket."""

    global_model: CountModel
    author_model: CountModel
    order: int
    method: str
    lambdas: dict[int, float]  # activity bucket → weight of the per-author model
    author_messages: dict[int, int]  # author id → training messages (for the bucket)
    vocab: Vocabulary
    report: dict = field(default_factory=dict)

    def frame(self, texts: Sequence[str], author_ids: Sequence[int]) -> Framed:
        return Framed.build([self.vocab.encode(t) for t in texts], author_ids)

    def step_bits(self, framed: Framed, with_author: bool = True) -> np.ndarray:
        """Bits of every step of `framed` (N,), ⟨eos⟩ steps included (mask with framed.scored)."""
        p = self.global_model.probabilities(framed, self.order, self.method)
        if with_author:
            weight = self._weights(framed.authors)
            if np.any(weight > 0):
                p = weight * self.author_model.probabilities(framed, self.order, self.method) + (1 - weight) * p
        return -np.log2(p)

    def _weights(self, author_ids: np.ndarray) -> np.ndarray:
        ids, inverse = np.unique(author_ids, return_inverse=True)
        per_id = np.array([self.lambdas.get(activity_bucket(int(a), self.author_messages.get(int(a), 0)), 0.0)
                           for a in ids])
        return per_id[inverse] if len(ids) else np.zeros(0)

    def message_bits(self, texts: Sequence[str], author_ids: Sequence[int], with_author: bool = True) -> list[np.ndarray]:
        """Bits of each character of each message, as `training.evaluation` scores them (⟨eos⟩ not counted)."""
        framed = self.frame(texts, author_ids)
        bits = self.step_bits(framed, with_author)
        keep = framed.scored
        split = np.cumsum(np.bincount(framed.owner[keep], minlength=len(texts)))[:-1]
        return np.split(bits[keep], split)

    def bpc(self, texts: Sequence[str], author_ids: Sequence[int], with_author: bool = True) -> float:
        framed = self.frame(texts, author_ids)
        bits = self.step_bits(framed, with_author)
        return float(bits[framed.scored].sum() / max(1, framed.scored.sum()))


def _tune_lambdas(p_global: np.ndarray, p_author: np.ndarray, buckets: np.ndarray) -> tuple[dict[int, float], float]:
    """The best λ per bucket on the tuning steps, and the total bits there."""
    lambdas, total = {}, 0.0
    for b in np.unique(buckets):
        sel = buckets == b
        g, a = p_global[sel], p_author[sel]
        bits = [float(-np.log2(lam * a + (1 - lam) * g).sum()) for lam in LAMBDA_GRID]
        best = int(np.argmin(bits))
        lambdas[int(b)] = LAMBDA_GRID[best]
        total += bits[best]
    return lambdas, total


def fit_baseline(train_messages, vocab: Vocabulary, authors: AuthorTable, orders: Sequence[int] = ORDERS,
                 methods: Sequence[str] = METHODS, tune_fraction: float = 0.1, log=None) -> NGramBaseline:
    """Fit the baseline on `train_messages` (the training part of `split_messages`, corpus.Message objects).

    Order, smoothing and λ are chosen on a tuning split of the training part (its latest `tune_fraction` per
    conversation, the same rule as the held-out split); the chosen model is then refitted on all of it.
    """
    say = log or (lambda *a: None)
    started = time.perf_counter()
    talk = spoken(train_messages)
    counts: dict[int, int] = {}
    for m in talk:
        a = authors.id_of(m.author)
        counts[a] = counts.get(a, 0) + 1
    fit_part, tune_part = split_messages(talk, tune_fraction)
    if not tune_part:
        fit_part, tune_part = talk, talk[-max(1, len(talk) // 10):]

    def framed_of(messages):
        return Framed.build([vocab.encode(m.text) for m in messages], [authors.id_of(m.author) for m in messages])

    fit_framed, tune_framed = framed_of(fit_part), framed_of(tune_part)
    top = max(orders)
    g = CountModel(len(vocab), top).fit(fit_framed)
    a = CountModel(len(vocab), top, by_author=True).fit(fit_framed)
    keep = tune_framed.scored
    chars = int(keep.sum())
    buckets = np.array([activity_bucket(int(x), counts.get(int(x), 0)) for x in tune_framed.authors])[keep]
    table, best = [], None
    for method in methods:
        for order in orders:
            pg = g.probabilities(tune_framed, order, method)[keep]
            pa = a.probabilities(tune_framed, order, method)[keep]
            lambdas, bits = _tune_lambdas(pg, pa, buckets)
            row = {"method": method, "order": order, "bpc_global": float(-np.log2(pg).sum() / chars),
                   "bpc": bits / chars, "lambdas": lambdas}
            table.append(row)
            say(f"  tuning {method} order {order}: {row['bpc']:.4f} bpc (global alone {row['bpc_global']:.4f})")
            if best is None or row["bpc"] < best["bpc"]:
                best = row
    tuned_at = time.perf_counter()
    del g, a
    full = framed_of(talk)
    g = CountModel(len(vocab), best["order"]).fit(full)
    a = CountModel(len(vocab), best["order"], by_author=True).fit(full)
    report = {
        "chosen": {"method": best["method"], "order": best["order"], "lambdas": best["lambdas"]},
        "tuning": table,
        "tuning_chars": chars,
        "train_chars": int(full.scored.sum()),
        "tune_seconds": round(tuned_at - started, 2),
        "fit_seconds": round(time.perf_counter() - started, 2),
    }
    return NGramBaseline(g, a, best["order"], best["method"], best["lambdas"], counts, vocab, report)

