"""Validation during training: bits per character on the held-out stream, and preview samples per persona.

This is the trainer's quick figure (it scores every step of the held-out stream, special steps included);
`talklike evaluate` (training/evaluation/) measures imitation quality in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

from model.experts import NgramExperts, combine
from model.generation import Generator
from model.network import CharLSTM
from model.vocab import AuthorTable, Vocabulary
from training.dataset import EncodedStream
from training.expert_steps import ExpertSteps
from training.run_files import write_text_atomic
from training.train_step import LOG2


@torch.no_grad()
def validate(model: CharLSTM, stream: EncodedStream, n_authors: int, seq_len: int, device: torch.device,
             max_steps: int, batch_size: int = 16, autocast=nullcontext,
             expert_steps: ExpertSteps | None = None) -> tuple[float, Tensor, Tensor]:
    """Bits per character over the held-out stream: (overall, summed nats per author (A,), steps per author (A,)).

    The stream is cut into parallel segments read with carried state, like training, in eval mode. When
    `max_steps` is less than the stream, the segments are spread evenly over it (the held-out stream is one
    conversation after another: a prefix would judge only the first few).
    """
    n = min(len(stream), max_steps + 1)
    batch = max(1, min(batch_size, (n - 1) // max(1, seq_len)))
    length = (n - 1) // batch
    last = len(stream) - 1 - length  # the latest start a segment (and its targets) fits from
    starts = torch.linspace(0, last, batch).long() if n < len(stream) else torch.arange(batch) * length
    rows = starts[:, None] + torch.arange(length)[None, :]  # (Bv, Lv) positions in the stream
    chars = stream.chars[rows].to(device)  # (Bv, Lv)
    targets = stream.chars[rows + 1].to(device)
    authors = stream.authors[rows].to(device)
    nats = torch.zeros(n_authors, dtype=torch.float64, device=device)
    counts = torch.zeros(n_authors, dtype=torch.float64, device=device)
    h, c = model.init_state(batch)
    for start in range(0, length, seq_len):
        cols = slice(start, start + seq_len)
        with autocast():
            head, _, h, c = model(chars[:, cols], authors[:, cols], h, c)
        log_q = names = None
        if expert_steps is not None:
            log_q = expert_steps.for_positions(rows[:, cols], device=device)
            names = expert_steps.names_for_positions(rows[:, cols], device=device)
        logits = combine(head, log_q, expert_steps.experts.vocab_size if expert_steps else head.shape[-1], names)
        loss = F.cross_entropy(logits.float().transpose(1, 2), targets[:, cols], reduction="none")  # (Bv, t)
        who = authors[:, cols].reshape(-1)
        nats.index_add_(0, who, loss.reshape(-1).double())
        counts.index_add_(0, who, torch.ones_like(who, dtype=torch.float64))
    total = float(nats.sum() / counts.sum().clamp_min(1)) / LOG2
    return total, nats.cpu(), counts.cpu()


REST = "⟨rest⟩"  # the personas beyond the most active ones, pooled in per-author figures


def validation_row(model: CharLSTM, stream: EncodedStream, authors: AuthorTable, seq_len: int, device: torch.device,
                   max_steps: int, named: Sequence[int] | None = None, autocast=nullcontext,
                   expert_steps: ExpertSteps | None = None) -> dict:
    """{"val_bpc", "val_bpc_by_author", "val_steps"} for a metrics row; empty when nothing (or one step) is
    held out. `named`: the author ids listed by name (default: all); the other personas pool into ⟨rest⟩
    (⟨other⟩, the people folded at training, keeps its own line)."""
    if len(stream) <= 1:
        return {}
    bpc, nats, counts = validate(model, stream, len(authors), seq_len, device, max_steps, autocast=autocast,
                                 expert_steps=expert_steps)
    listed = list(range(1, len(authors))) if named is None else list(named)
    by_author = {authors.name_of(i): float(nats[i] / counts[i]) / LOG2 for i in [0, *listed] if counts[i] > 0}
    rest = torch.ones(len(authors), dtype=torch.bool)
    rest[[0, *listed]] = False
    if float(counts[rest].sum()) > 0:
        by_author[REST] = float(nats[rest].sum() / counts[rest].sum()) / LOG2
    return {"val_bpc": bpc, "val_bpc_by_author": by_author, "val_steps": int(counts.sum())}


def write_previews(model: CharLSTM, vocab: Vocabulary, authors: AuthorTable, path: str, step: int,
                   samples: int, max_chars: int, personas: Sequence[int] | None = None,
                   experts: NgramExperts | None = None) -> None:
    """A few replies per persona (`personas`, default all) from a fresh conversation, written (not printed:
    they may echo real text)."""
    generator = Generator(model, vocab, authors, experts=experts)
    chosen = list(range(1, len(authors))) if personas is None else list(personas)
    lines = [f"# samples at step {step} (temperature 0.8)", ""]
    if len(chosen) < len(authors) - 1:
        lines[0] += f": the {len(chosen)} most active of {len(authors) - 1:,} personas"
    for persona_id in chosen:
        replies = generator.reply(generator.init_state(1), persona_id, n=samples, temperature=0.8,
                                  max_chars=max_chars, seed=step)
        lines.append(f"## {authors.name_of(persona_id)}")
        lines.extend(f"- {reply!r}" for reply in replies)
        lines.append("")
    write_text_atomic(path, "\n".join(lines))
