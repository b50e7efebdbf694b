"""Who wrote this? Authorship by the model's own likelihood: a message is scored under every candidate
author, after the conversation it came in, and the author who makes it cheapest (in bits) ranks first.

The same computation serves `talklike who`, the console's "who would say this?" box and evaluation's
self-attribution measure. Bits are the message's characters and its end of message under each author; the
speaker head's prior for who writes next after the context can be added (`with_turns`), which is the joint
-log2 P(author, message | context).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.stream import encode_message
from model.vocab import Vocabulary

LOG2 = math.log(2.0)
CANDIDATES_PER_BATCH = 256  # rows of one forward pass (bounds memory whatever the number of personas)

Entry = tuple[int, str, bool]  # (author id, text, session marker before it)


@dataclass
class Ranking:
    """Candidates, fewest bits first: (author id, bits)."""

    scores: list[tuple[int, float]]
    chars: int  # characters scored (the message and its end)

    def top(self, k: int) -> list[tuple[int, float]]:
        return self.scores[:k]


@torch.no_grad()
def read_context(module, vocab: Vocabulary, context: Sequence[Entry]):
    """State (h, c) after reading `context` from a fresh conversation, and the speaker logits (A,) at its end
    (None for no context)."""
    h, c = module.init_state(1)
    if not context:
        return h, c, None
    chars, authors = [], []
    for author_id, text, session in context:
        ch, au = encode_message(vocab, author_id, text, session)
        chars += ch
        authors += au
    device = h.device
    _, speaker, h, c = module(torch.tensor([chars], device=device), torch.tensor([authors], device=device), h, c)
    return h, c, speaker[0, -1].float()


@torch.no_grad()
def message_bits(module, vocab: Vocabulary, state, text: str, candidates: Sequence[int], session: bool) -> torch.Tensor:
    """Bits of `text` (its characters and its end of message) written by each candidate after `state`: (N,)."""
    h, c = state[0], state[1]
    device = h.device
    bits = []
    for start in range(0, len(candidates), CANDIDATES_PER_BATCH):
        group = list(candidates[start : start + CANDIDATES_PER_BATCH])
        chars, _ = encode_message(vocab, 0, text, session)  # [SESSION] BOS text EOS
        n = len(group)
        x = torch.tensor(chars, device=device).expand(n, -1)  # (N, T)
        a = torch.tensor(group, device=device)[:, None].expand(-1, len(chars))
        logits, _, _, _ = module(x, a, h.expand(-1, n, -1).contiguous(), c.expand(-1, n, -1).contiguous())
        bos = chars.index(Vocabulary.BOS)
        # the logits at BOS .. the last character predict the characters and the EOS: (N, len(text) + 1)
        logp = F.log_softmax(logits[:, bos:-1].float(), dim=-1)
        targets = x[:, bos + 1 :]
        bits.append(-logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum(dim=1) / LOG2)
    return torch.cat(bits) if bits else torch.zeros(0)


def rank_authors(module, vocab: Vocabulary, text: str, candidates: Sequence[int],
                 context: Sequence[Entry] = (), with_turns: bool = False) -> Ranking:
    """`candidates` ranked by how likely each is to have written `text` after `context`."""
    h, c, speaker = read_context(module, vocab, context)
    bits = message_bits(module, vocab, (h, c), text, candidates, session=not context)
    if with_turns and speaker is not None:
        prior = -F.log_softmax(speaker, dim=-1)[torch.tensor(list(candidates))] / LOG2
        bits = bits + prior.to(bits.device)
    order = torch.argsort(bits).tolist()
    return Ranking([(int(candidates[i]), float(bits[i])) for i in order], len(vocab.encode(text)) + 1)
