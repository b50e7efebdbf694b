"""Character n-gram counts: interpolated modified Kneser-Ney or Witten-Bell, global or kept apart by author.

Shared by the classical baseline (training/ngram_baseline.py) and the model's n-gram experts
(model/experts.py), which the reply engine reads too; so it lives here and needs numpy only (and torch's sort
where torch is there).

A message is read as ⟨bos⟩ text ⟨eos⟩ and contexts do not cross messages. Kneser-Ney's continuation counts are
replaced by plain counts for contexts that reach the message start, as SRILM does for ⟨s⟩: such a context has
only one possible left extension.

Contexts and (context, next symbol) pairs are 64-bit hashes of the preceding symbols (and author), counted
with sorts; a lookup is a binary search. ~10 M training characters fit in about a minute.

`leave_one_out` scores a training step as if its own occurrence had not been counted (deleted estimation):
what the model would say of that step on text it never saw, which is what a network trained on top of the
counts must learn to trust, or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.vocab import Vocabulary

METHODS = ("kn", "wb")

_MUL = np.uint64(0x100000001B3)  # odd multiplier of the polynomial hash
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_MIX_A, _MIX_B = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that spreads nearby values (of an array: numpy wraps array
    arithmetic silently, and the reply path calls this for every character, where errstate costs more)."""
    x = (x ^ (x >> _SHIFTS[0])) * _MIX_A
    x = (x ^ (x >> _SHIFTS[1])) * _MIX_B
    return x ^ (x >> _SHIFTS[2])


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


def _search(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """np.searchsorted for queries in any order: sorted first when there are many, because numpy's binary
    search starts from the previous answer when queries ascend (3-5x fewer cache misses on large tables)."""
    if len(queries) < 64:
        return np.searchsorted(keys, queries)
    order = np.argsort(queries, kind="stable")
    out = np.empty(len(queries), dtype=np.int64)
    out[order] = np.searchsorted(keys, queries[order])
    return out


def _find(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[key] for queries; zeros where a key is absent."""
    if len(keys) == 0:
        return np.zeros((len(queries), *values.shape[1:]))
    at = np.minimum(_search(keys, queries), len(keys) - 1)
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
        counts_all = np.concatenate(counts)[order]
        # A pair seen both inside messages and at their start has an entry in each list: one entry, summed.
        starts = _runs(keys_all)
        return _Level.from_counts(keys_all[starts], np.add.reduceat(counts_all, starts) if len(starts) else counts_all, b)

    def probabilities(self, framed: Framed, order: int, method: str, leave_one_out: bool = False,
                      base: np.ndarray | None = None) -> np.ndarray:
        """P(symbol | context) of every step of `framed` (N,), for one order ≤ max_order and method. With
        `leave_one_out`, `framed` must be (part of) what was fitted: each step is scored without its own count.
        `base` (N,): what the lowest order backs off to (default uniform; a per-author model can back off to
        the global one's probabilities)."""
        top = self._check(order, method)
        unique_above = self._unique_extensions(framed, top) if leave_one_out and method == "kn" else None
        p = np.full(len(framed.positions), 1.0 / self.vocab_size) if base is None else base
        for k, (pairs, _) in enumerate(self.packing.levels(framed, top, self.by_author)):
            level = self._level(k, top, method)
            count, stats = _lookup_unsorted(level, pairs)
            if leave_one_out:
                # The step's own occurrence: one raw count; at a continuation level, one distinct left
                # extension when no other occurrence shares it (or a plain count where the context is anchored).
                own = np.ones(len(count)) if unique_above is None or k == top else np.where(
                    framed.room > k, unique_above[k], 1.0)
                count, stats = _without(count, stats, own)
            p = _interpolate(level, count, stats, p, method)
        return p

    def _check(self, order: int, method: str) -> int:
        if not 1 <= order <= self.max_context + 1:
            raise ValueError(f"order {order} not fitted (max {self.max_context + 1})")
        if method not in METHODS:
            raise ValueError(f"unknown smoothing {method!r} (choose from {', '.join(METHODS)})")
        return order - 1

    def _level(self, k: int, top: int, method: str) -> _Level:
        return self.raw[k] if (k == top or method == "wb") else self.cont[k]

    def _unique_extensions(self, framed: Framed, top: int) -> list[np.ndarray]:
        """Per context length k < top: 1.0 where the step's (k+1)-gram occurs once (only this step extends its
        k-gram that way), else 0.0."""
        raw_counts = [_lookup_unsorted(self.raw[k], pairs)[0]
                      for k, (pairs, _) in enumerate(self.packing.levels(framed, top, self.by_author))]
        return [(raw_counts[k + 1] == 1).astype(np.float64) for k in range(top)]

    def distributions(self, prefixes: Sequence[Sequence[int]], author_ids: Sequence[int], order: int,
                      method: str, base: np.ndarray | None = None) -> np.ndarray:
        """P(· | context) over all symbols (B, V) for B messages being written: prefix b holds the symbols
        after ⟨bos⟩ so far. `base` (B, V) as in `probabilities`."""
        return self.distributions_back(self.back_symbols(prefixes, order), author_ids, order, method, base)

    def back_symbols(self, prefixes: Sequence[Sequence[int]], order: int) -> np.ndarray:
        return back_symbols(prefixes, order, self.packing.pad)

    def distributions_back(self, back: np.ndarray, author_ids: Sequence[int], order: int, method: str,
                           base: np.ndarray | None = None, targets: np.ndarray | None = None) -> np.ndarray:
        """`distributions` from `back_symbols`. With `targets` (B,), rows whose target is ≥ 0 are training steps
        scored without their own count of that target (as `probabilities(leave_one_out=True)`). All pairs of
        one context are one run of the sorted keys, so a level costs two binary searches per row."""
        top = self._check(order, method)
        B, V, b = back.shape[0], self.vocab_size, self.packing.b
        contexts = self._row_contexts(back, author_ids, top)
        rows = np.arange(B)
        has = np.zeros(B) if targets is None else (np.asarray(targets) >= 0).astype(np.float64)
        y = np.zeros(B, np.int64) if targets is None else np.where(has > 0, targets, 0).astype(np.int64)
        if targets is not None and method == "kn":
            room = (back != np.uint64(self.packing.pad)).sum(axis=1)
            # how often each row's (k+1)-gram occurs: once means this step alone extends its k-gram that way
            once_above = [_find(self.raw[k].pair_keys, self.raw[k].pair_counts, (contexts[k] << b) | y) == 1
                          for k in range(1, top + 1)]
        # The interpolation unrolled from the top order down: p = Σ_k m_k · s_k + m · base, where s_k holds
        # level k's discounted counts over its total (nonzero only on the level's run of pairs) and m_k is the
        # product of the back-off weights of the levels above. Only the runs are touched, never (B, V) per level.
        p = np.zeros((B, V))
        m = np.ones(B)
        for k in range(top, -1, -1):
            level = self._level(k, top, method)
            ctx = contexts[k]
            stats = _find(level.ctx_keys, level.ctx_stats, ctx)
            own = has if (k == top or method == "wb" or targets is None) else has * np.where(
                room > k, once_above[k], 1.0)
            shared = k == 0 and not self.by_author  # every row reads the same context: its run once
            queried = ctx[:1] if shared else ctx
            lo = _search(level.pair_keys, queried << b)
            lengths = _search(level.pair_keys, (queried + 1) << b) - lo
            at = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            symbols = level.pair_keys[at] & ((1 << b) - 1)
            counts = level.pair_counts[at]
            entry_rows = np.zeros(len(at), np.int64) if shared else np.repeat(rows, lengths)
            if shared:
                dense = np.zeros(V + 1)
                dense[symbols] = counts
                count_y = dense[y]
            elif targets is not None:
                count_y = np.zeros(B)
                hit = symbols == y[entry_rows]
                count_y[entry_rows[hit]] = counts[hit]
                counts = counts - own[entry_rows] * hit
            if targets is not None:
                left, stats = _without(count_y, stats, own)
            scale, gamma = _level_weights(level, stats, method)  # (B,): per unit of count; back-off weight
            seen = stats[:, 0] > 0
            m_here = np.where(seen, m, 0.0)
            if shared:
                numer = _numerators(level, dense[:V], method)  # (V,)
                p += (m_here * scale)[:, None] * numer[None, :]
                if targets is not None:
                    fix = _numerators(level, left, method) - numer[y]  # the target's own count left out
                    p[rows, y] += m_here * scale * fix * (own > 0)
            else:
                p[entry_rows, symbols] += (m_here * scale)[entry_rows] * _numerators(level, counts, method)
            m = np.where(seen, m * gamma, m)
        return p + m[:, None] * (np.full((1, V), 1.0 / V) if base is None else base)

    def _row_contexts(self, back: np.ndarray, author_ids: Sequence[int], top: int) -> list[np.ndarray]:
        """Context keys (B,) int64 of each context length 0..top, hashed as `_Keys.levels` hashes them."""
        b = np.uint64(self.packing.b)
        authors = np.asarray(author_ids, dtype=np.uint64)
        running = _mix((authors + np.uint64(1)) * _GOLD) if self.by_author else np.zeros(len(back), np.uint64)
        contexts = []
        with np.errstate(over="ignore"):
            for k in range(top + 1):
                if k > 0:
                    running = running * _MUL + back[:, k - 1] + np.uint64(1)
                contexts.append((_mix(running ^ np.uint64(k)) >> (b + b)).view(np.int64))
        return contexts

    def to_arrays(self, order: int, method: str) -> dict[str, np.ndarray]:
        """The counts `probabilities`/`distributions` read at this order and method, for a model file."""
        top = self._check(order, method)
        arrays = {"meta": np.array([self.vocab_size, order, int(self.by_author), METHODS.index(method)])}
        for k in range(top + 1):
            level = self._level(k, top, method)
            arrays[f"keys{k}"] = level.pair_keys
            arrays[f"counts{k}"] = level.pair_counts.astype(np.uint32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> tuple[CountModel, int, str]:
        """(model, order, method) from `to_arrays`; levels the order does not read stay empty."""
        vocab_size, order, by_author, method = (int(x) for x in arrays["meta"])
        model = cls(vocab_size, order, bool(by_author))
        b = model.packing.b
        levels = [_Level.from_counts(arrays[f"keys{k}"], arrays[f"counts{k}"].astype(np.float64), b)
                  for k in range(order)]
        if METHODS[method] == "wb":
            model.raw = levels
        else:
            model.cont, model.raw = levels[:-1], [None] * (order - 1) + levels[-1:]  # type: ignore[list-item]
        return model, order, METHODS[method]


def back_symbols(prefixes: Sequence[Sequence[int]], order: int, pad: int) -> np.ndarray:
    """(B, order − 1) uint64: column d − 1 holds the symbol d steps back (⟨bos⟩ included), `pad` beyond."""
    top = order - 1
    back = np.full((len(prefixes), top), pad, dtype=np.uint64)
    for row, prefix in enumerate(prefixes):
        recent = ([Vocabulary.BOS, *prefix])[-top:] if top else []
        back[row, : len(recent)] = recent[::-1]
    return back


def _lookup_unsorted(level: _Level, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair counts (N,), context stats (N, 4)) in the order of `pairs` (looked up sorted, for the cache)."""
    queries, perm = _sort(pairs, with_order=True)
    count_sorted, stats_sorted = level.lookup(queries)
    count = np.empty_like(count_sorted)
    count[perm] = count_sorted
    stats = np.empty_like(stats_sorted)
    stats[perm] = stats_sorted
    return count, stats


def _without(count: np.ndarray, stats: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and context stats with `own` (0 or 1 per step) taken off each step's pair."""
    stats = stats.copy()
    left = np.maximum(count - own, 0.0)
    stats[:, 0] = np.maximum(stats[:, 0] - own, 0.0)
    taken = own > 0
    for before in (1, 2, 3):  # the pair's type moves from class `before` to `before - 1` (3+ only from exactly 3)
        moved = taken & ((count == before) if before < 3 else (count == 3))
        stats[moved, before] -= 1.0
        if before > 1:
            stats[moved, before - 1] += 1.0
    return left, stats


def _numerators(level: _Level, count: np.ndarray, method: str) -> np.ndarray:
    """What a count contributes before dividing by its context's total: discounted (KN) or as it is (WB)."""
    if method == "kn":  # D1, D2, D3+ by count (0 for an unseen pair)
        discount = np.concatenate([[0.0], level.discounts])[np.minimum(count, 3).astype(np.int64)]
        return np.maximum(count - discount, 0.0)
    return count


def _level_weights(level: _Level, stats: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per context (rows of stats): 1 / denominator, and the weight left for the lower order."""
    total, types = stats[:, 0], stats[:, 1:]
    if method == "kn":
        safe = np.where(total > 0, total, 1.0)
        return 1.0 / safe, (types @ level.discounts) / safe
    distinct = types.sum(axis=1)
    safe = np.where(total > 0, total + distinct, 1.0)
    return 1.0 / safe, distinct / safe


def _interpolate(level: _Level, count: np.ndarray, stats: np.ndarray, lower: np.ndarray, method: str) -> np.ndarray:
    """One level of interpolated smoothing over the lower order's `lower`; count (...,) with stats (..., 4)
    of its context."""
    total, types = stats[..., 0], stats[..., 1:]
    seen = total > 0
    safe = np.where(seen, total, 1.0)
    if method == "kn":
        d1, d2, d3 = level.discounts
        discount = np.select([count >= 3, count == 2, count == 1], [d3, d2, d1], 0.0)
        gamma = types @ level.discounts
        mixed = (np.maximum(count - discount, 0.0) + gamma * lower) / safe
    else:
        distinct = types.sum(axis=-1)
        mixed = (count + distinct * lower) / np.where(seen, total + distinct, 1.0)
    return np.where(seen, mixed, lower)
