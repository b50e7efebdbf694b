"""`ModelConfig`: the shape of the network, with named size presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# Sizes per preset. tiny: tests run in seconds; small: minutes on a CPU; medium: hours on a CPU or
# minutes on a GPU; large: a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"char_embed_dim": 16, "author_embed_dim": 8, "hidden_size": 64, "num_layers": 1, "dropout": 0.0},
    "small": {"char_embed_dim": 48, "author_embed_dim": 16, "hidden_size": 256, "num_layers": 2, "dropout": 0.1},
    "medium": {"char_embed_dim": 64, "author_embed_dim": 32, "hidden_size": 512, "num_layers": 2, "dropout": 0.2},
    "large": {"char_embed_dim": 128, "author_embed_dim": 64, "hidden_size": 1024, "num_layers": 3, "dropout": 0.25},
}


@dataclass
class ModelConfig:
    vocab_size: int
    n_authors: int
    char_embed_dim: int = 48
    author_embed_dim: int = 16
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    # Outputs beside the character logits: 0 (none); 2, the n-gram experts' weights (model/experts.py); 3, those
    # and the names expert's gate (model/names.py).
    experts: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_authors", "char_embed_dim", "author_embed_dim", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model config: {name} must be a positive integer, got {value!r}")
        if self.experts not in (0, 2, 3):
            raise ValueError(f"model config: experts must be 0, 2 or 3, got {self.experts!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"model config: dropout must be in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)

    @classmethod
    def from_preset(cls, name: str, vocab_size: int, n_authors: int, **overrides: Any) -> ModelConfig:
        """The config of preset `name` for a given vocabulary and author table; `overrides` replace sizes."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r} (choose from {', '.join(PRESETS)})")
        return cls.from_dict({**PRESETS[name], **overrides, "vocab_size": vocab_size, "n_authors": n_authors})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model config: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**d)
