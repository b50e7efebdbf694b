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
The counting and smoothing are model/ngram.py's, which the model's own n-gram experts share.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from model.ngram import METHODS, CountModel, Framed
from model.vocab import AuthorTable, Vocabulary
from training.dataset import split_messages, spoken

ORDERS = (5, 6, 7)
LAMBDA_GRID = tuple(round(0.05 * i, 2) for i in range(20))  # 0 … 0.95
# Named authors are bucketed by training messages: a person with 15 messages needs the global model more
# than one with 5,000.
ACTIVITY_EDGES = (30, 100, 300, 1000)


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

