"""Batched sampling where every row has its own settings and its own random stream.

Each row draws one uniform number from its request's `random.Random` per character and picks the token
by inverse CDF, so a request's text depends only on its seed and its logits, never on which other
requests happen to share the batch. This runs once per generated character, so the common case (no
top-k / top-p cut) skips the sort.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model.vocab import Vocabulary

_NEVER = (Vocabulary.PAD, Vocabulary.BOS, Vocabulary.SESSION, Vocabulary.UNK)  # never written in a reply
_bias_cache: dict[int, Tensor] = {}


def _never_bias(size: int) -> Tensor:
    """(1, V): -inf on the tokens a reply may never write, 0 elsewhere."""
    bias = _bias_cache.get(size)
    if bias is None:
        bias = torch.zeros(1, size)
        bias[0, list(_NEVER)] = float("-inf")
        _bias_cache[size] = bias
    return bias


def sample_rows(logits: Tensor, temperature: Tensor, top_k: Tensor, top_p: Tensor, allow_eos: Tensor,
                uniform: Tensor, *, cut: bool | None = None, greedy: bool | None = None,
                eos_forbidden: bool | None = None) -> Tensor:
    """One token id per row.

    logits (B, V); temperature, top_p, uniform float (B,); top_k long (B,) with 0 = off; allow_eos bool (B,)
    (False forbids the end of message: the reply is shorter than min_chars). Rows with temperature 0 take
    the argmax. Padding, BOS, session and unknown are never sampled. `cut` (any row uses top-k/top-p),
    `greedy` (any temperature 0) and `eos_forbidden` (any allow_eos False) may be passed by a caller that
    already knows them, saving tensor reductions on this per-character path.
    """
    logits = logits.float() + _never_bias(logits.shape[1])  # (B, V)
    if eos_forbidden if eos_forbidden is not None else not bool(allow_eos.all()):
        logits[:, Vocabulary.EOS] = logits[:, Vocabulary.EOS].masked_fill(~allow_eos, float("-inf"))
    scaled = logits / temperature.clamp_min(1e-6).unsqueeze(1)
    if cut if cut is not None else bool((top_k > 0).any()) or bool((top_p < 1.0).any()):
        scaled, order = torch.sort(scaled, dim=-1, descending=True)  # (B, V), most likely first
        probs = torch.softmax(scaled, dim=-1)
        ranks = torch.arange(probs.shape[1]).unsqueeze(0)  # (1, V)
        k = torch.where(top_k > 0, top_k, probs.shape[1]).unsqueeze(1)  # (B, 1)
        # Keep the k most likely, and of those only until top_p is covered; the most likely always stays.
        probs = probs * ((ranks < k) & ((probs.cumsum(dim=-1) - probs) < top_p.unsqueeze(1)))
    else:
        order, probs = None, torch.softmax(scaled, dim=-1)
    cdf = probs.cumsum(dim=-1)  # (B, V), unnormalized after a cut
    target = (uniform * cdf[:, -1]).unsqueeze(1)  # (B, 1)
    # The first token whose cumulative mass passes the target; zero-mass tokens never pass it.
    choice = torch.searchsorted(cdf, target, right=True).clamp_max(probs.shape[1] - 1)  # (B, 1)
    sampled = (choice if order is None else order.gather(1, choice)).squeeze(1)  # (B,)
    if greedy if greedy is not None else bool((temperature <= 0).any()):
        sampled = torch.where(temperature <= 0, logits.argmax(dim=-1), sampled)
    return sampled
