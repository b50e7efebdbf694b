"""`CharLSTM`: the author-conditioned character LSTM with a next-speaker head.

With n-gram experts (config.experts = 2) the character head has two more outputs, the weights of the
experts' log-probabilities, and with the names expert too (config.experts = 3) a third, its gate
(model/names.py); model/experts.py's `combine` turns the head into character logits.

The scripted surface is only `forward` and `init_state`; everything that writes text steps it through
model/stepping.py (in numpy where it can), so a later change of export format touches one module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.config import ModelConfig


class CharLSTM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_layers = config.num_layers
        self.hidden_size = config.hidden_size
        self.char_embed = nn.Embedding(config.vocab_size, config.char_embed_dim)
        self.author_embed = nn.Embedding(config.n_authors, config.author_embed_dim)
        self.lstm = nn.LSTM(
            config.char_embed_dim + config.author_embed_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.char_head = nn.Linear(config.hidden_size, config.vocab_size + config.experts)
        if config.experts:
            from model.experts import INITIAL_WEIGHT_BIAS
            from model.names import INITIAL_GATE_BIAS

            with torch.no_grad():
                # Start as the counts alone: small character logits, the global counts at full weight.
                self.char_head.weight[: config.vocab_size] *= 0.1
                bias = INITIAL_WEIGHT_BIAS + ((INITIAL_GATE_BIAS,) if config.experts == 3 else ())
                self.char_head.bias[config.vocab_size :] = torch.tensor(bias)
        self.speaker_head = nn.Linear(config.hidden_size, config.n_authors)

    def forward(self, chars: Tensor, authors: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One chunk of the stream: chars, authors (B, T) and state (L, B, H) → logits and the new state."""
        # The author goes in at every step, so a long message cannot drift away from its writer.
        x = torch.cat([self.char_embed(chars), self.author_embed(authors)], dim=-1)  # (B, T, Ec + Ea)
        y, (h, c) = self.lstm(x, (h, c))  # y: (B, T, H)
        y = self.drop(y)
        return self.char_head(y), self.speaker_head(y), h, c  # (B, T, V [+ 2 or 3]), (B, T, A), (L, B, H) x2

    @torch.jit.export
    def init_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Zero state (h, c), each (L, B, H), on the model's device."""
        # The embedding is never quantized, so its weight is a plain tensor even in an int8 artifact.
        weight = self.char_embed.weight
        h = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=weight.device, dtype=weight.dtype)
        return h, torch.zeros_like(h)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())
