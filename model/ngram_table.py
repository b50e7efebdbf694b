"""`DistributionTable`: the levels of one or more `CountModel`s merged into one sorted table, for the reply path.

`CountModel.distributions_back` walks the levels one by one with a dozen numpy calls each, so that training
can leave each step's own count out. Writing a reply, or scoring text the counts never saw, needs no such
correction, and then everything a level contributes is fixed in advance: each (context, symbol) pair's
discounted count over its context's total, and each context's back-off weight. This table holds exactly those,
for all levels of all its models in one sorted array of contexts (keys are hashed with their length and the
model's salt, so levels and models share a key only by a 64-bit hash collision), and answers B rows × models × levels with a few calls in
all: the global and the per-author experts cost one lookup per character written, not fourteen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.ngram import _GOLD, _MUL, CountModel, _level_weights, _mix, _numerators, _runs, _search, _sort


class DistributionTable:
    """For each of `models` (all of one vocabulary, fitted to at least `order`): P(· | context) of messages
    being written, split into what the counts give and the mass left for what the lowest order backs off to —
    `distributions_back` without targets, to float32 rounding of the stored values."""

    def __init__(self, models: Sequence[CountModel], order: int, method: str):
        if len({m.vocab_size for m in models}) != 1:
            raise ValueError("the models of one table must share a vocabulary")
        top = models[0]._check(order, method)
        for model in models:
            model._check(order, method)
        self.vocab_size, self.levels, self.b = models[0].vocab_size, top + 1, models[0].packing.b
        self.by_author = np.array([m.by_author for m in models])
        level_pairs, level_values, level_contexts, level_gammas = [], [], [], []
        for model in models:
            for k in range(top + 1):
                level = model._level(k, top, method)
                if len(level.pair_keys) == 0:
                    continue
                lengths = np.diff(np.append(_runs(level.pair_keys >> self.b), len(level.pair_keys)))
                scale, gamma = _level_weights(level, level.ctx_stats, method)
                level_pairs.append(level.pair_keys)
                level_values.append((_numerators(level, level.pair_counts, method) * np.repeat(scale, lengths)).astype(np.float32))
                level_contexts.append(level.ctx_keys)
                level_gammas.append(gamma.astype(np.float32))
        pairs, self.values = _merged(level_pairs, level_values, np.float32)
        contexts, gammas = _merged(level_contexts, level_gammas, np.float32)
        del level_pairs, level_values, level_contexts, level_gammas  # a lower peak while the table is built
        # Every context has pairs and every pair's context is listed, so the distinct contexts (two sharing a
        # hash share one entry) are exactly the runs of the merged pairs, in the same order.
        distinct = _runs(contexts)
        self.ctx_keys, self.gammas = contexts[distinct], gammas[distinct]
        starts = _runs(pairs >> self.b)
        lengths = np.diff(np.append(starts, len(pairs)))
        self.starts = starts.astype(np.uint32 if len(pairs) < 2**32 else np.int64)
        self.lengths = lengths.astype(np.uint16 if len(lengths) == 0 or lengths.max() < 2**16 else np.int64)
        self.symbols = (pairs & ((1 << self.b) - 1)).astype(np.int64 if self.b > 15 else np.int16)
        # The running hash of level k is salt · MUL^k + Σ_{j<k} (back_j + 1) · MUL^(k−1−j) (mod 2^64): one
        # product of the symbols with a fixed matrix of powers (numpy's integer arithmetic wraps silently).
        powers = np.cumprod(np.concatenate([[np.uint64(1)], np.full(top, _MUL, dtype=np.uint64)]))
        self._salt_powers = powers  # (L,)
        steps = np.zeros((top, top + 1), dtype=np.uint64)
        for j in range(top):
            steps[j, j + 1:] = powers[: top - j]
        self._step_powers = steps  # (top, L)
        self._level_ids = np.arange(top + 1, dtype=np.uint64)
        self._salt_cache: dict[int, tuple[int, ...]] = {}

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.symbols, self.values, self.ctx_keys, self.gammas, self.starts, self.lengths))

    def _salts(self, author: int) -> tuple[int, ...]:
        """Each model's hash salt for one author (0 for a global model), remembered: a reply asks every step."""
        salts = self._salt_cache.get(author)
        if salts is None:
            salt = int(_mix(np.array([author + 1], dtype=np.uint64) * _GOLD)[0])
            salts = self._salt_cache[author] = tuple(salt if by else 0 for by in self.by_author)
        return salts

    def context_keys(self, back: np.ndarray, author_ids: Sequence[int]) -> np.ndarray:
        """(B, models, L) context keys of every length 0..top, hashed as `_Keys.levels` hashes them."""
        B = back.shape[0]
        salts = np.array([self._salts(int(a)) for a in np.asarray(author_ids).reshape(-1)], dtype=np.uint64)
        running = salts[:, :, None] * self._salt_powers[None, None, :]  # (B, models, L)
        if self.levels > 1:
            running = running + ((back[:, : self.levels - 1] + np.uint64(1)) @ self._step_powers)[:, None, :]
        mixed = _mix(running ^ self._level_ids)
        return (mixed >> np.uint64(2 * self.b)).view(np.int64).reshape(B, len(self.by_author), self.levels)

    def parts(self, back: np.ndarray, author_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """From `back_symbols` rows: (B, models, V) what each model's counts give, and (B, models, 1) the mass
        each leaves to its base (uniform or another distribution: P = part + rest · base)."""
        B, V, L = back.shape[0], self.vocab_size, self.levels
        contexts = self.context_keys(back, author_ids).reshape(-1)  # row-major: (row, model) pair r at r·L + k
        R = len(contexts) // L
        if len(self.ctx_keys) == 0:
            return np.zeros((B, R // B, V)), np.ones((B, R // B, 1))
        at = np.minimum(_search(self.ctx_keys, contexts), len(self.ctx_keys) - 1)
        seen = self.ctx_keys[at] == contexts
        gamma = np.where(seen, self.gammas[at], 1.0).reshape(R, L)
        # Mass reaching level k: the product of the back-off weights of the seen levels above it (every weight is
        # > 0, so the exclusive product is the inclusive one over the level's own).
        from_top = np.cumprod(gamma[:, ::-1], axis=1)[:, ::-1]  # column k: Π over levels k..top
        weight = np.where(seen, (from_top / gamma).reshape(-1), 0.0)
        lengths = np.where(seen, self.lengths[at].astype(np.int64), 0)
        total = int(lengths.sum())
        entries = np.repeat(self.starts[at].astype(np.int64) - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        rows = np.repeat(np.arange(R * L) // L, lengths)
        mass = self.values[entries] * np.repeat(weight, lengths)
        part = np.bincount(rows * V + self.symbols[entries], weights=mass, minlength=R * V).reshape(B, -1, V)
        return part, from_top[:, :1].reshape(B, -1, 1)

    def distributions(self, back: np.ndarray, author_ids: Sequence[int], base: np.ndarray | None = None) -> np.ndarray:
        """(B, V) of a one-model table; `base` (B, V) is what the lowest level backs off to (default uniform)."""
        part, rest = self.parts(back, author_ids)
        return part[:, 0] + rest[:, 0] * (1.0 / self.vocab_size if base is None else base)


def _merged(keys: list[np.ndarray], values: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys of all levels as one sorted array, with their values in the same order."""
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, dtype)
    merged, order = _sort(np.concatenate(keys), with_order=True)
    return merged, np.concatenate(values)[order].astype(dtype)
