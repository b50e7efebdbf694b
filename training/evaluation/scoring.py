"""The model under evaluation and how sequences are scored: bits of each target message and the speaker
head's guess at its end, in padded batches.

`load_model` takes whatever a user has: an exported artifact, a checkpoint file, or a run directory.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from model.experts import NgramExperts, WithExperts
from model.guard import MemorizationGuard
from model.names import NameHints, NameOpinions
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError
from training.evaluation.held_out import ScoredSequence
from training.run_files import load_run_experts

LOG2 = math.log(2.0)


@dataclass
class LoadedModel:
    """What evaluation needs from an artifact or a training run, whichever was given."""

    module: torch.nn.Module  # forward(chars, authors, h, c) → character logits, … and init_state(batch), eval mode
    vocab: Vocabulary
    authors: AuthorTable
    kind: str  # "artifact" or "checkpoint"
    train_config: dict = field(default_factory=dict)
    guard: MemorizationGuard | None = None  # the memorization guard it ships with (run directory: guard.bin)
    experts: NgramExperts | None = None  # the n-gram experts the network writes on top of
    network: torch.nn.Module | None = None  # the network alone (what writes text); `module` when no experts

    def __post_init__(self) -> None:
        if self.network is None:
            self.network = self.module
            if self.experts is not None:  # scoring reads the network and its experts together
                self.module = WithExperts(self.module, self.experts, len(self.vocab))


def load_model(source: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """Load an exported artifact (.pt), a checkpoint file, or a run directory's best checkpoint."""
    path = os.fspath(source)
    if not os.path.exists(path):
        raise UserError(f"{path}: no such model file or run directory")
    if os.path.isdir(path):
        return _from_checkpoint(path, device)
    from model.artifact import ArtifactError, load_artifact

    try:
        artifact = load_artifact(path, map_location=device)
    except ArtifactError as artifact_error:
        # A checkpoint file (run/checkpoints/best.pt) is not an artifact but is a fine thing to evaluate.
        try:
            return _from_checkpoint(path, device)
        except UserError:
            raise artifact_error from None
    card = artifact.card or {}
    train_config = card.get("train_config") or {}
    module = artifact.module.to(device).eval()
    return LoadedModel(module, artifact.vocab, artifact.authors, "artifact", dict(train_config), artifact.guard,
                       artifact.experts)


def _from_checkpoint(path: str, device: str) -> LoadedModel:
    from training.checkpoint import load_checkpoint, model_from_checkpoint

    checkpoint = load_checkpoint(path)
    module, vocab, authors = model_from_checkpoint(checkpoint)
    train_config = checkpoint.get("train_config") or {}
    if not isinstance(train_config, dict):
        train_config = asdict(train_config)
    return LoadedModel(module.to(device).eval(), vocab, authors, "checkpoint", dict(train_config), _run_guard(path),
                       load_run_experts(_run_dir(path)))


def _run_guard(path: str) -> MemorizationGuard | None:
    """The guard.bin of a run directory, or of the run a checkpoint file lies in (run/checkpoints/best.pt)."""
    guard_path = os.path.join(_run_dir(path), "guard.bin")
    if not os.path.isfile(guard_path):
        return None
    with open(guard_path, "rb") as handle:
        try:
            return MemorizationGuard.from_bytes(handle.read())
        except ValueError as err:
            raise UserError(f"{guard_path}: {err}") from None


def _run_dir(path: str) -> str:
    """A run directory, or the run a checkpoint file lies in (run/checkpoints/best.pt)."""
    return path if os.path.isdir(path) else os.path.dirname(os.path.dirname(os.path.abspath(path)))


def pass_steps(n_chars: int, n_authors: int, logit_mib: int) -> int:
    """(row, step) positions one forward pass may read so that its logits fit in `logit_mib` MiB: 4 bytes each
    for the character logits, their log-softmax and the speaker logits. With thousands of personas the speaker
    logits dominate, so passes get shorter rather than memory larger."""
    return max(1, (logit_mib << 20) // (4 * (2 * n_chars + n_authors)))


@torch.no_grad()
def score_sequences(module, sequences: list[ScoredSequence], n_targets: int, batch_tokens: int,
                    device: str, max_pass_steps: int | None = None, pad_id: int = 0,
                    position_edges: tuple[int, ...] | None = None) -> tuple[np.ndarray, ...]:
    """Bits of every target message, and the speaker head's argmax at its ⟨eos⟩, in padded batches. With
    `position_edges` (ascending, from 0), also the bits of each message split by where in it a character
    sits, (n_targets, len(edges)): column j holds characters edges[j] ≤ index < edges[j+1].

    Sequences are sorted by length so a batch pads little; padding goes at the end, where a causal LSTM
    cannot let it change the scored steps. A batch holds at most `batch_tokens` padded steps and is read in
    pieces of columns, carrying the state, so one forward pass reads at most `max_pass_steps` (row, step)
    positions (`pass_steps`): its (B, t, V) and (B, t, A) logits stay bounded whatever V and A are.
    """
    limit = max_pass_steps or batch_tokens
    bits = torch.zeros(n_targets, dtype=torch.float64, device=device)
    speaker = torch.zeros(n_targets, dtype=torch.long, device=device)
    edges = None if position_edges is None else torch.tensor(position_edges, device=device)
    n_buckets = 0 if edges is None else len(position_edges)
    by_position = torch.zeros(n_targets * max(1, n_buckets), dtype=torch.float64, device=device)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].chars))
    begin = 0
    while begin < len(order):
        end = begin + 1
        # lengths ascend, so a batch's padded size is (count) × (length of its last sequence)
        while (end < len(order) and end - begin < limit
               and (end - begin + 1) * len(sequences[order[end]].chars) <= batch_tokens):
            end += 1
        batch = [sequences[i] for i in order[begin:end]]
        B, T = len(batch), len(batch[-1].chars)
        chars = torch.full((B, T), pad_id, dtype=torch.long)
        authors = torch.zeros((B, T), dtype=torch.long)
        owner = torch.full((B, T), -1, dtype=torch.long)  # which target each scored step belongs to
        at_eos = torch.full((B, T), -1, dtype=torch.long)  # which target's ⟨eos⟩ each step is
        offset = torch.zeros((B, T), dtype=torch.long)  # index in its message of the character a step predicts
        for row, seq in enumerate(batch):
            chars[row, : len(seq.chars)] = torch.tensor(seq.chars)
            authors[row, : len(seq.authors)] = torch.tensor(seq.authors)
            for index, bos, n in seq.targets:
                owner[row, bos : bos + n] = index
                at_eos[row, bos + n + 1] = index
                offset[row, bos : bos + n] = torch.arange(n)
        # step t predicts chars[t+1]; the last step predicts nothing scored here
        targets = torch.cat([chars[:, 1:], torch.full((B, 1), pad_id, dtype=torch.long)], dim=1)  # (B, T)
        chars, authors, owner, at_eos, targets, offset = (t.to(device) for t in (chars, authors, owner, at_eos,
                                                                                  targets, offset))
        h, c = module.init_state(B)
        h, c = h.to(device), c.to(device)
        width = max(1, limit // B)
        names = None
        if getattr(module, "reads_names", False):  # the names expert's opinions, by (row, step) of the batch
            names = NameHints.concat([(seq.names, row * T) for row, seq in enumerate(batch)])
            names_index, steps = names.lookup(B * T), np.arange(B * T).reshape(B, T)
        for first in range(0, T, width):
            cols = slice(first, first + width)
            extra = {} if names is None else {
                "names": NameOpinions.gather(names, names_index, steps[:, cols], module.vocab_size, device)}
            char_logits, speaker_logits, h, c = module(chars[:, cols], authors[:, cols], h, c, **extra)  # (B,t,V), (B,t,A)
            logp = torch.log_softmax(char_logits.float(), dim=-1).gather(-1, targets[:, cols].unsqueeze(-1)).squeeze(-1)
            own = owner[:, cols]
            scored = own >= 0
            step_bits = -logp[scored].double() / LOG2
            bits.index_add_(0, own[scored], step_bits)
            if edges is not None:
                bucket = torch.bucketize(offset[:, cols][scored], edges, right=True) - 1
                by_position.index_add_(0, own[scored] * n_buckets + bucket, step_bits)
            ends = at_eos[:, cols]
            found = ends >= 0
            if bool(found.any()):
                speaker[ends[found]] = speaker_logits[found].argmax(dim=-1)  # (targets here,)
        begin = end
    if edges is not None:
        return bits.cpu().numpy(), speaker.cpu().numpy(), by_position.view(n_targets, n_buckets).cpu().numpy()
    return bits.cpu().numpy(), speaker.cpu().numpy()
