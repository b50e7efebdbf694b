"""One optimizer step of truncated BPTT, and what it needs: the optimizer, the autocast choice, the schedule.

`TrainStep` is shared by the training loop and the throughput benchmark, so the benchmark measures the
step that training runs.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import ModelConfig
from model.experts import combine
from model.names import NameOpinions
from training.dataset import IGNORE
from training.train_config import TrainConfig

log = logging.getLogger(__name__)

LOG2 = math.log(2.0)  # the losses are in nats; bits per character = nats / LOG2


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not biases, not embeddings: decaying a rare character's or
    author's row toward zero would erase it between its few updates)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.dim() >= 2 and "embed" not in name else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99), fused=fused)


def autocast_for(model: nn.Module, device: torch.device):
    """bf16 autocast on a CUDA device whose LSTM kernels take bf16; fp32 otherwise (and always on CPU, where
    oneDNN's fp32 LSTM is the fast path). A two-step probe decides, because bf16 RNN support depends on the
    GPU and the cuDNN build."""
    if device.type != "cuda" or not torch.cuda.is_bf16_supported():
        return nullcontext
    raw = model.module if hasattr(model, "module") else model
    try:
        # fork_rng: the probe's dropout must not shift the random stream (resume is exact on GPUs too).
        with torch.random.fork_rng(devices=[device]):
            chars = torch.zeros((1, 2), dtype=torch.long, device=device)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits, _, _, _ = raw(chars, chars, *raw.init_state(1))
            logits.float().sum().backward()
        raw.zero_grad(set_to_none=True)
    except RuntimeError as err:
        log.warning("bf16 autocast unavailable for this LSTM (%s); training in fp32", str(err).splitlines()[0])
        raw.zero_grad(set_to_none=True)
        return nullcontext
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16)


class TrainStep:
    """Forward, loss, backward, clip, update for one chunk; returns the detached loss and the new state.

    No host synchronization: the loss stays on the device until the loop asks for it at a log step.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
                 model_config: ModelConfig, device: torch.device):
        self.model = model
        self.optimizer = optimizer
        self.grad_clip = config.grad_clip
        self.speaker_weight = config.speaker_loss_weight
        self.vocab_size = model_config.vocab_size
        self.n_authors = model_config.n_authors
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.autocast = autocast_for(model, device)

    def __call__(self, chars: Tensor, authors: Tensor, char_targets: Tensor, speaker_targets: Tensor,
                 h: Tensor, c: Tensor, log_q: Tensor | None = None,
                 names: NameOpinions | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """`log_q` (B, T, 2, V): the n-gram experts' view of each step, for a model that has them; `names`: the
        names expert's opinions, for a model with its gate."""
        with self.autocast():
            head, speaker_logits, h, c = self.model(chars, authors, h, c)  # (B, T, V [+ 2]), (B, T, A)
        char_logits = combine(head, log_q, self.vocab_size, names)
        char_loss = F.cross_entropy(char_logits.float().reshape(-1, self.vocab_size), char_targets.reshape(-1))
        # The speaker head answers only at message ends: one more prediction per message, on the characters'
        # footing (summed, then divided by the chunk's steps). Averaged over the message ends instead, it
        # outweighed the whole character loss and cost 0.10 held-out bpc on tinyshakespeare (8 min, small).
        speaker_loss = F.cross_entropy(speaker_logits.float().reshape(-1, self.n_authors), speaker_targets.reshape(-1),
                                       ignore_index=IGNORE, reduction="sum") / speaker_targets.numel()
        loss = char_loss + self.speaker_weight * speaker_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        # Truncated BPTT: the state carries on, its history does not.
        return char_loss.detach(), h.detach(), c.detach()


WARMUP_SHARE = 0.05  # warm-up also ends once this share of the run (steps or time) has passed


def lr_factor(step: int, progress: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warm-up over `warmup_steps` (or the first 5 % of the run, if that is sooner: a short timed run on
    a slow machine must not spend itself warming up), then cosine decay to `min_ratio` as progress goes 0 → 1."""
    warm = min(1.0, max((step + 1) / max(1, warmup_steps), progress / WARMUP_SHARE))
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))
    return warm * (min_ratio + (1.0 - min_ratio) * cosine)
