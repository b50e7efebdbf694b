"""`Generator`: feed messages and sample replies in one process (previews, evaluation, `sample`).

The reply engine in bot/ has its own continuous-batching loop; this is the simple, synchronous one.
Works with an eager `CharLSTM` or a scripted artifact module: both have forward and init_state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from model.sampling import mask_specials, sample_next
from model.stream import encode_message
from model.vocab import AuthorTable, Vocabulary


@dataclass
class GenState:
    """Recurrent state after the messages fed so far."""

    h: Tensor  # (L, B, H)
    c: Tensor  # (L, B, H)
    speaker_logits: Tensor | None = None  # (B, A) at the last EOS fed; None before any message


def native_lstm():
    """Context with oneDNN off: its LSTM is several times slower than the native kernel for one-step calls
    on CPU. Only the enabled flag is touched (the other oneDNN flags stay as they are)."""
    return torch.backends.mkldnn.flags(enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None)


class Generator:
    def __init__(self, module: torch.nn.Module, vocab: Vocabulary, authors: AuthorTable):
        self.module = module
        self.vocab = vocab
        self.authors = authors
        self.device = module.init_state(1)[0].device

    def init_state(self, batch: int = 1) -> GenState:
        """The state before any message (all zeros)."""
        h, c = self.module.init_state(batch)
        return GenState(h, c)

    @torch.no_grad()
    def feed(self, state: GenState, author_id: int, text: str, session: bool = False) -> GenState:
        """Read one whole message written by `author_id` (one fused call for all its characters)."""
        chars, authors = encode_message(self.vocab, author_id, text, session)
        batch = state.h.shape[1]
        x = torch.tensor(chars, device=self.device).expand(batch, -1)  # (B, T)
        a = torch.tensor(authors, device=self.device).expand(batch, -1)
        _, speaker, h, c = self.module(x, a, state.h, state.c)
        return GenState(h, c, speaker[:, -1].float())

    @torch.no_grad()
    def next_speaker_probs(self, state: GenState) -> Tensor:
        """Probability of each author (A,) speaking next, from the speaker head at the last message end."""
        if state.speaker_logits is None:
            raise ValueError("no message fed yet: the speaker head speaks at a message end")
        return torch.softmax(state.speaker_logits[0], dim=-1)

    @torch.no_grad()
    def reply(self, state: GenState, persona_id: int, n: int = 1, temperature: float = 0.8, top_k: int = 0,
              top_p: float = 1.0, min_chars: int = 1, max_chars: int = 300, seed: int | None = None) -> list[str]:
        """`n` independent replies by `persona_id`, continuing from `state` (its first row), sampled together."""
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        # (L, 1, H) → (L, n, H): every sample starts from the same conversation state.
        h = state.h[:, :1].expand(-1, n, -1).contiguous()
        c = state.c[:, :1].expand(-1, n, -1).contiguous()
        author = torch.full((n, 1), persona_id, dtype=torch.long, device=self.device)
        token = torch.full((n, 1), Vocabulary.BOS, dtype=torch.long, device=self.device)
        out = torch.empty((n, max_chars), dtype=torch.long, device=self.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        lengths = torch.full((n,), max_chars, dtype=torch.long, device=self.device)
        with native_lstm():
            for step in range(max_chars):
                logits, _, h, c = self.module(token, author, h, c)  # logits (n, 1, V)
                allow_eos = torch.full((n,), step >= min_chars, dtype=torch.bool, device=self.device)
                masked = mask_specials(logits[:, -1], self.vocab, allow_eos)
                nxt = sample_next(masked, temperature, top_k, top_p, generator)  # (n,)
                ended = (nxt == Vocabulary.EOS) & ~done
                lengths = torch.where(ended, torch.full_like(lengths, step), lengths)
                done = done | ended
                out[:, step] = nxt
                if bool(done.all()):
                    break
                token = nxt.unsqueeze(1)
        rows = out.tolist()
        return [self.vocab.decode(row[: int(length)]) for row, length in zip(rows, lengths.tolist(), strict=True)]
