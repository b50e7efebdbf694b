"""Validation during training: bits per character on the held-out stream, and preview samples per persona.

This is the trainer's quick figure (it scores every step of the held-out stream, special steps included);
`talklike evaluate` (training/evaluation/) measures imitation quality in full.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

from model.generation import Generator
from model.network import CharLSTM
from model.vocab import AuthorTable, Vocabulary
from training.dataset import EncodedStream
from training.run_files import write_text_atomic
from training.train_step import LOG2


@torch.no_grad()
def validate(model: CharLSTM, stream: EncodedStream, n_authors: int, seq_len: int, device: torch.device,
             max_steps: int, batch_size: int = 16, autocast=nullcontext) -> tuple[float, Tensor, Tensor]:
    """Bits per character over the held-out stream: (overall, summed nats per author (A,), steps per author (A,)).

    The stream is cut into parallel segments read with carried state, like training, in eval mode.
    """
    n = min(len(stream), max_steps + 1)
    batch = max(1, min(batch_size, (n - 1) // max(1, seq_len)))
    length = (n - 1) // batch
    span = batch * length
    chars = stream.chars[:span].view(batch, length).to(device)  # (Bv, Lv)
    targets = stream.chars[1 : span + 1].view(batch, length).to(device)
    authors = stream.authors[:span].view(batch, length).to(device)
    nats = torch.zeros(n_authors, dtype=torch.float64, device=device)
    counts = torch.zeros(n_authors, dtype=torch.float64, device=device)
    h, c = model.init_state(batch)
    for start in range(0, length, seq_len):
        cols = slice(start, start + seq_len)
        with autocast():
            logits, _, h, c = model(chars[:, cols], authors[:, cols], h, c)
        loss = F.cross_entropy(logits.float().transpose(1, 2), targets[:, cols], reduction="none")  # (Bv, t)
        who = authors[:, cols].reshape(-1)
        nats.index_add_(0, who, loss.reshape(-1).double())
        counts.index_add_(0, who, torch.ones_like(who, dtype=torch.float64))
    total = float(nats.sum() / counts.sum().clamp_min(1)) / LOG2
    return total, nats.cpu(), counts.cpu()


def validation_row(model: CharLSTM, stream: EncodedStream, authors: AuthorTable, seq_len: int, device: torch.device,
                   max_steps: int, autocast=nullcontext) -> dict:
    """{"val_bpc", "val_bpc_by_author"} for a metrics row; empty when nothing (or one step) is held out."""
    if len(stream) <= 1:
        return {}
    bpc, nats, counts = validate(model, stream, len(authors), seq_len, device, max_steps, autocast=autocast)
    by_author = {authors.name_of(i): float(nats[i] / counts[i]) / LOG2 for i in range(len(authors)) if counts[i] > 0}
    return {"val_bpc": bpc, "val_bpc_by_author": by_author}


def write_previews(model: CharLSTM, vocab: Vocabulary, authors: AuthorTable, path: str, step: int,
                   samples: int, max_chars: int) -> None:
    """A few replies per persona from a fresh conversation, written (not printed: they may echo real text)."""
    generator = Generator(model, vocab, authors)
    lines = [f"# samples at step {step} (temperature 0.8)", ""]
    for persona_id, name in enumerate(authors.names[1:], start=1):
        replies = generator.reply(generator.init_state(1), persona_id, n=samples, temperature=0.8,
                                  max_chars=max_chars, seed=step)
        lines.append(f"## {name}")
        lines.extend(f"- {reply!r}" for reply in replies)
        lines.append("")
    write_text_atomic(path, "\n".join(lines))
