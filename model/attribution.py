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

from model.stream import Entry, encode_message
from model.vocab import Vocabulary

LOG2 = math.log(2.0)
CANDIDATES_PER_BATCH = 256  # rows of one forward pass at most
# Bytes of logits one forward pass may hold: the (rows, steps, V) character and (rows, steps, A) speaker logits
# grow with the number of personas A, so rows × steps per pass shrink as A grows (memory stays bounded).
LOGIT_BYTES = 64 << 20



@dataclass
class Ranking:
    """Candidates, fewest bits first: (author id, bits)."""

    scores: list[tuple[int, float]]
    chars: int  # characters scored (the message and its end)

    def top(self, k: int) -> list[tuple[int, float]]:
        return self.scores[:k]


@torch.no_grad()
def steps_per_pass(module, logit_bytes: int = LOGIT_BYTES) -> int:
    """How many (row, step) positions one forward pass may read within `logit_bytes`, from the sizes of the
    module's two heads (one probe step): 4 bytes each for the V character logits, their log-softmax and the A
    speaker logits."""
    h, c = module.init_state(1)
    probe = torch.zeros((1, 1), dtype=torch.long, device=h.device)
    char_logits, speaker, _, _ = module(probe, probe, h, c)
    per_step = 4 * (2 * char_logits.shape[-1] + speaker.shape[-1])
    return max(1, logit_bytes // per_step)


@torch.no_grad()
def read_context(module, vocab: Vocabulary, context: Sequence[Entry], logit_bytes: int = LOGIT_BYTES,
                 pass_steps: int | None = None):
    """State (h, c) after reading `context` from a fresh conversation, and the speaker logits (A,) at its end
    (None for no context). A long context is read in pieces of `pass_steps` (default: `steps_per_pass`),
    carrying the state."""
    h, c = module.init_state(1)
    if not context:
        return h, c, None
    chars, authors = [], []
    for author_id, text, session, *_ in context:  # an `Entry`, or a plain (author id, text, session)
        ch, au = encode_message(vocab, author_id, text, session)
        chars += ch
        authors += au
    device = h.device
    x, a = torch.tensor([chars], device=device), torch.tensor([authors], device=device)  # (1, T)
    width = pass_steps or steps_per_pass(module, logit_bytes)
    for start in range(0, x.shape[1], width):
        _, speaker, h, c = module(x[:, start : start + width], a[:, start : start + width], h, c)
    return h, c, speaker[0, -1].float()


@torch.no_grad()
def message_bits(module, vocab: Vocabulary, state, text: str, candidates: Sequence[int], session: bool,
                 logit_bytes: int = LOGIT_BYTES, pass_steps: int | None = None) -> torch.Tensor:
    """Bits of `text` (its characters and its end of message) written by each candidate after `state`: (N,).

    Candidates go through in groups, and a long message in pieces of steps carrying the state, so that one
    pass reads at most `pass_steps` (row, step) positions (default: `steps_per_pass(logit_bytes)`): its
    logits stay within `logit_bytes` however many personas and characters there are."""
    h, c = state[0], state[1]
    device = h.device
    chars, _ = encode_message(vocab, 0, text, session)  # [SESSION] BOS text EOS
    steps = len(chars)
    bos = chars.index(Vocabulary.BOS)
    budget = pass_steps or steps_per_pass(module, logit_bytes)
    rows = max(1, min(CANDIDATES_PER_BATCH, budget // steps))
    width = max(1, budget // rows)
    line = torch.tensor(chars, device=device)
    bits = []
    for start in range(0, len(candidates), rows):
        group = list(candidates[start : start + rows])
        n = len(group)
        x = line.expand(n, -1)  # (N, T)
        a = torch.tensor(group, device=device)[:, None].expand(-1, steps)
        hh, cc = h.expand(-1, n, -1).contiguous(), c.expand(-1, n, -1).contiguous()
        total = torch.zeros(n, dtype=torch.float64, device=device)
        for first in range(0, steps, width):
            logits, _, hh, cc = module(x[:, first : first + width], a[:, first : first + width], hh, cc)
            # the logits at BOS .. the last character predict the characters and the EOS
            lo, hi = max(first, bos), min(first + logits.shape[1], steps - 1)
            if lo < hi:
                logp = F.log_softmax(logits[:, lo - first : hi - first].float(), dim=-1)  # (N, hi - lo, V)
                picked = logp.gather(-1, x[:, lo + 1 : hi + 1].unsqueeze(-1)).squeeze(-1)
                total -= picked.double().sum(dim=1) / LOG2
        bits.append(total.float())
    return torch.cat(bits) if bits else torch.zeros(0)


def author_bits(module, vocab: Vocabulary, text: str, candidates: Sequence[int], context: Sequence[Entry] = (),
                session: bool | None = None, pass_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Bits of `text` under each candidate after `context` (N,), and the speaker head's -log2 prior for each
    candidate to write next after it (N,), None without context. `session`: the session marker before the
    message (default: only when there is no context, as a conversation's first message). `pass_steps`:
    see `message_bits` (a caller scoring many messages measures it once)."""
    pass_steps = pass_steps or steps_per_pass(module)
    h, c, speaker = read_context(module, vocab, context, pass_steps=pass_steps)
    bits = message_bits(module, vocab, (h, c), text, candidates, not context if session is None else session,
                        pass_steps=pass_steps)
    if speaker is None:
        return bits, None
    prior = -F.log_softmax(speaker, dim=-1)[torch.tensor(list(candidates), device=speaker.device)] / LOG2
    return bits, prior.to(bits.device)


def rank_authors(module, vocab: Vocabulary, text: str, candidates: Sequence[int],
                 context: Sequence[Entry] = (), with_turns: bool = False) -> Ranking:
    """`candidates` ranked by how likely each is to have written `text` after `context`."""
    bits, prior = author_bits(module, vocab, text, candidates, context)
    if with_turns and prior is not None:
        bits = bits + prior
    order = torch.argsort(bits).tolist()
    return Ranking([(int(candidates[i]), float(bits[i])) for i in order], len(vocab.encode(text)) + 1)
