"""Sampling primitives shared by previews, evaluation and the reply engine."""

from __future__ import annotations

import torch
from torch import Tensor

from model.vocab import Vocabulary

_NEVER = (Vocabulary.PAD, Vocabulary.BOS, Vocabulary.SESSION, Vocabulary.UNK)


def mask_specials(logits: Tensor, vocab: Vocabulary, allow_eos: Tensor | bool) -> Tensor:
    """Forbid tokens a reply may never write; forbid EOS in rows where `allow_eos` (B,) (or a bool) is False."""
    logits = logits.clone()  # (B, V)
    logits[:, list(_NEVER)] = float("-inf")
    allow = torch.as_tensor(allow_eos, dtype=torch.bool, device=logits.device).expand(logits.shape[0])
    logits[:, Vocabulary.EOS] = logits[:, Vocabulary.EOS].masked_fill(~allow, float("-inf"))
    return logits


def sample_next(logits: Tensor, temperature: Tensor | float, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
    """One id per row of `logits` (B, V); rows with temperature <= 0 take the argmax."""
    logits = logits.float()
    batch = logits.shape[0]
    temp = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device).expand(batch)  # (B,)
    greedy = logits.argmax(dim=-1)
    scaled = logits / temp.clamp_min(1e-6).unsqueeze(1)
    if 0 < top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]  # (B, 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token once the more likely ones already cover top_p; the most likely always stays.
        drop = probs.cumsum(dim=-1) - probs > top_p
        scaled = scaled.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = torch.softmax(scaled, dim=-1)
    sampled = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
    return torch.where(temp <= 0, greedy, sampled)
