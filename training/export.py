"""Export: a training run's checkpoint → one self-checking artifact file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone

import torch

from model.artifact import load_artifact, save_artifact
from model.config import ModelConfig
from model.guard import MemorizationGuard
from model.network import parameter_count
from model.vocab import Vocabulary
from talklike import __version__
from talklike.errors import UserError
from training.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
from training.run_files import MetricsLog, load_run_experts

# An int8 artifact may differ from the float model by a little; beyond this the export is refused.
# Measured as total variation distance between next-character distributions (0 = same, 1 = disjoint).
INT8_MAX_MEAN_TV = 0.05
INT8_MAX_TV = 0.3


@dataclass
class ExportResult:
    path: str
    size_bytes: int
    max_logit_diff: float
    mean_tv: float  # mean total variation distance of next-character distributions, file vs checkpoint
    max_tv: float
    card: dict


def build_card(run_dir: str, ckpt: dict, n_params: int, quantize: str | None, which: str) -> dict:
    """The model card: what the model was trained on, how well it did, and how it was made."""
    data: dict = {}
    data_path = os.path.join(run_dir, "data.json")
    if os.path.exists(data_path):
        with open(data_path, encoding="utf-8") as handle:
            data = json.load(handle)
    loop = ckpt["loop"]
    evals = [r for r in MetricsLog(run_dir).rows() if r.get("kind") == "eval" and r.get("step") == loop["step"]]
    train_config = dict(ckpt.get("train_config") or {})
    return {
        "name": os.path.basename(os.path.abspath(run_dir)),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "talklike_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "preset": train_config.get("preset"),
        "parameters": n_params,
        "quantized": quantize,
        "checkpoint": which,
        "step": loop["step"],
        "metrics": {
            "val_bpc": evals[-1].get("val_bpc") if evals else loop.get("best_val_bpc"),
            "val_bpc_by_author": evals[-1].get("val_bpc_by_author") if evals else None,
            "best_val_bpc": loop.get("best_val_bpc"),
        },
        "data": {key: value for key, value in data.items() if key != "authors"},
        "authors": data.get("authors", {}),
        "train_config": {k: v for k, v in train_config.items() if k not in ("corpus", "run_dir")},
    }


def probe_inputs(vocab_size: int, n_authors: int, batch: int = 3, steps: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of (chars, authors) to compare the eager model with the file: BOS, then characters."""
    generator = torch.Generator().manual_seed(1234)
    first_char = min(Vocabulary.UNK + 1, vocab_size - 1)  # a vocabulary may in principle hold no characters
    chars = torch.randint(first_char, vocab_size, (batch, steps), generator=generator)  # (B, T)
    chars[:, 0] = Vocabulary.BOS
    authors = torch.randint(0, n_authors, (batch, 1), generator=generator).expand(batch, steps)
    return chars, authors.contiguous()


def export_run(run_dir: str, output: str, quantize: str | None = None, which: str = "best") -> ExportResult:
    """Script the run's checkpoint into `output` with metadata, card and guard; verify the written file."""
    if not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: not a run directory")
    source = checkpoint_path(run_dir, which)
    if not os.path.exists(source):
        raise UserError(f"{run_dir}: no checkpoints/{which}.pt (has this run trained yet?)")
    ckpt = load_checkpoint(source)
    model, vocab, authors = model_from_checkpoint(ckpt)
    guard = None
    guard_path = os.path.join(run_dir, "guard.bin")
    if os.path.exists(guard_path):
        with open(guard_path, "rb") as handle:
            try:
                guard = MemorizationGuard.from_bytes(handle.read())
            except ValueError as err:
                raise UserError(f"{guard_path}: {err}") from None
    card = build_card(run_dir, ckpt, parameter_count(model), quantize, which)
    config = ModelConfig.from_dict(ckpt["model_config"])
    experts = load_run_experts(run_dir)
    if config.experts and experts is None:
        raise UserError(f"{run_dir}: no experts.npz (the counts this model writes on top of); train the run again")
    size = save_artifact(output, model, vocab, authors, config, card, guard, quantize=quantize,
                         experts=experts if config.experts else None)

    # The file must give what the eager model gives: same logits (float), or close enough (int8).
    artifact = load_artifact(output)
    chars, who = probe_inputs(config.vocab_size, config.n_authors)
    with torch.no_grad():
        h, c = model.init_state(chars.shape[0])
        expected, expected_speaker, _, _ = model(chars, who, h, c)
        h, c = artifact.module.init_state(chars.shape[0])
        got, got_speaker, _, _ = artifact.module(chars, who, h, c)
    logit_diff = float((expected - got).abs().max())
    tv = 0.5 * (expected.softmax(-1) - got.softmax(-1)).abs().sum(-1)  # (B, T)
    mean_tv, max_tv = float(tv.mean()), float(tv.max())
    if quantize is None:
        ok = torch.allclose(expected, got, rtol=1e-4, atol=1e-5) and torch.allclose(
            expected_speaker, got_speaker, rtol=1e-4, atol=1e-5)
    else:
        ok = mean_tv <= INT8_MAX_MEAN_TV and max_tv <= INT8_MAX_TV
    if not ok:
        os.unlink(output)
        raise UserError(f"{output}: the exported model does not match the checkpoint (max logit difference "
                        f"{logit_diff:.3g}, distribution distance {mean_tv:.3g} mean / {max_tv:.3g} max); file removed")
    return ExportResult(output, size, logit_diff, mean_tv, max_tv, card)
