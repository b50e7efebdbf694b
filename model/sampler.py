"""The sampler: the next character of every row of a batch, each row with its own settings and its own
random stream (numpy). The reply engine and `Generator` both sample here.

Each row draws one uniform number from its request's `random.Random` per character and picks the token
by inverse CDF, so a request's text depends only on its seed and its logits, never on which other
requests happen to share the batch. This runs once per generated character, so the common case (no
top-k / top-p cut) skips the sort.
"""

from __future__ import annotations

import numpy as np

from model.vocab import Vocabulary

_NEVER = (Vocabulary.PAD, Vocabulary.BOS, Vocabulary.SESSION, Vocabulary.UNK)  # never written in a reply
_bias_cache: dict[int, np.ndarray] = {}


def _never_bias(size: int) -> np.ndarray:
    """(1, V): -inf on the tokens a reply may never write, 0 elsewhere."""
    bias = _bias_cache.get(size)
    if bias is None:
        bias = np.zeros((1, size), dtype=np.float32)
        bias[0, list(_NEVER)] = -np.inf
        _bias_cache[size] = bias
    return bias


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _unnormalized(x: np.ndarray) -> np.ndarray:
    """exp(x - max) per row: proportional to the softmax, enough for an inverse CDF."""
    return np.exp(x - x.max(axis=1, keepdims=True))


def sample_rows(logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray, top_p: np.ndarray,
                allow_eos: np.ndarray, uniform: np.ndarray, *, cut: bool | None = None, greedy: bool | None = None,
                eos_forbidden: bool | None = None) -> np.ndarray:
    """One token id per row.

    logits (B, V); temperature, top_p, uniform float (B,); top_k int (B,) with 0 = off; allow_eos bool (B,)
    (False forbids the end of message: the reply is shorter than min_chars). Rows with temperature 0 take
    the argmax. Padding, BOS, session and unknown are never sampled. `cut` (any row uses top-k/top-p),
    `greedy` (any temperature 0) and `eos_forbidden` (any allow_eos False) may be passed by a caller that
    already knows them, saving reductions on this per-character path.
    """
    logits = np.asarray(logits, dtype=np.float32) + _never_bias(logits.shape[1])  # (B, V), a new array
    if eos_forbidden if eos_forbidden is not None else not bool(np.all(allow_eos)):
        logits[~np.asarray(allow_eos, dtype=bool), Vocabulary.EOS] = -np.inf
    scaled = logits / np.maximum(temperature, 1e-6)[:, None]
    size = scaled.shape[1]
    if cut if cut is not None else bool(np.any(top_k > 0) or np.any(top_p < 1.0)):
        order = np.argsort(-scaled, axis=1, kind="stable")  # (B, V), most likely first
        probs = _softmax(np.take_along_axis(scaled, order, axis=1))
        k = np.where(top_k > 0, top_k, size)[:, None]  # (B, 1)
        # Keep the k most likely, and of those only until top_p is covered; the most likely always stays.
        probs = probs * ((np.arange(size)[None] < k) & ((np.cumsum(probs, axis=1) - probs) < top_p[:, None]))
    else:
        order, probs = None, _unnormalized(scaled)
    cdf = np.cumsum(probs, axis=1)  # (B, V), unnormalized after a cut
    target = uniform * cdf[:, -1]  # (B,)
    # The first token whose cumulative mass passes the target; zero-mass tokens never pass it.
    choice = np.minimum((cdf <= target[:, None]).sum(axis=1), size - 1)  # (B,)
    sampled = choice if order is None else order[np.arange(len(choice)), choice]
    if greedy if greedy is not None else bool(np.any(temperature <= 0)):
        sampled = np.where(temperature <= 0, logits.argmax(axis=1), sampled)
    return sampled
