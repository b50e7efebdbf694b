"""The settings of a training run (`TrainConfig`, defaults in code, checked on creation) and its outcome
(`TrainResult`).

The resolved config is written into the run directory (config.json) and into every checkpoint; a resumed
run may change only `RESUMABLE_OVERRIDES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from model.config import PRESETS
from model.experts import DEFAULT_ORDER
from model.stream import DEFAULT_SESSION_GAP
from talklike.errors import UserError

DEFAULT_EPOCHS = 10.0  # used when no limit (--epochs, --max-steps, --max-minutes) is given
DEFAULT_MAX_PERSONAS = 200
# Settings a resumed run may change; everything else must match the run it continues.
RESUMABLE_OVERRIDES = {"max_steps", "max_minutes", "epochs", "patience", "quiet", "device", "eval_every", "log_every"}


@dataclass
class TrainConfig:
    corpus: str = ""
    run_dir: str = ""
    preset: str = "small"
    personas: list[str] | None = None  # exactly these authors get an identity; None: the most active frequent ones
    min_author_messages: int = 10  # authors with fewer messages fold into ⟨other⟩
    # At most this many of them (the most active) become personas; None or 0: all. A public chat has thousands
    # of speakers: the 200th most active of ubuntu-irc's 4,430 with 10+ messages still wrote 101, the rest
    # mostly a few dozen each; each persona costs every step a row of the speaker head.
    max_personas: int | None = DEFAULT_MAX_PERSONAS
    min_char_count: int = 1  # characters seen fewer times become ⟨unk⟩
    dropout: float | None = None  # None: the preset's
    batch_size: int = 32  # parallel streams (per process under torchrun)
    seq_len: int = 128  # steps of backpropagation through time per chunk
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr × this
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    speaker_loss_weight: float = 1.0  # the next-speaker loss beside the characters' (training/train_step.py)
    author_dropout: float = 0.05  # share of named authors' messages shown as ⟨other⟩
    val_fraction: float = 0.1
    session_gap: float = DEFAULT_SESSION_GAP
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    epochs: float | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    eval_every: int = 200
    log_every: int = 20
    patience: int = 5  # evaluations without a better val bpc before stopping; 0 disables
    val_max_steps: int = 200_000  # validation reads at most this many steps of the held-out stream
    # With --max-minutes: validation and previews take at most this share of the time budget (the steps it
    # reads are fixed at the first evaluation, from its measured speed, and kept for the run)
    val_share: float = 0.1
    report_personas: int = 32  # metrics rows carry val bpc for the most active N personas, ⟨other⟩ and ⟨rest⟩
    preview_samples: int = 2
    preview_personas: int = 8  # previews are written for the most active N personas
    preview_chars: int = 160
    guard_n: int = 60
    # The n-gram experts the network writes on top of (model/experts.py): their order, or 0 for none.
    ngram_order: int = DEFAULT_ORDER
    # The names expert (model/names.py): recent speakers' names, mixed in through a gate; needs the n-gram experts.
    names_expert: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESETS)})")
        for name in ("batch_size", "seq_len", "eval_every", "log_every", "min_author_messages", "guard_n"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.ngram_order <= 10:
            raise UserError(f"--ngram-order must be 0 (no n-gram experts) to 10, got {self.ngram_order}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise UserError(f"--epochs must be positive, got {self.epochs}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise UserError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.author_dropout <= 1.0:
            raise UserError(f"author_dropout must be in [0, 1], got {self.author_dropout}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_personas is not None and self.max_personas < 0:
            raise UserError(f"--max-personas must be 0 (no limit) or more, got {self.max_personas}")
        if self.max_personas == 0:
            self.max_personas = None
        if not 0.0 <= self.val_share <= 1.0:
            raise UserError(f"val_share must be in [0, 1], got {self.val_share}")
        if self.preview_personas < 0 or self.report_personas < 0:
            raise UserError("preview_personas and report_personas must be 0 or more")
        if self.patience < 0:
            raise UserError(f"--patience must be 0 (never stop early) or more, got {self.patience}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            self.epochs = DEFAULT_EPOCHS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"train config: unknown key(s) {', '.join(sorted(unknown))}")
        if "max_personas" not in d:  # written before the cap existed: that run kept every frequent author
            d = {**d, "max_personas": None}
        if "ngram_order" not in d:  # written before the n-gram experts: that run had none
            d = {**d, "ngram_order": 0}
        if "names_expert" not in d:  # written before the names expert: that run had none
            d = {**d, "names_expert": False}
        return cls(**d)


@dataclass
class TrainResult:
    """What `train()` returns: where the run stopped and why, and (on rank 0) the rows of metrics.jsonl."""

    run_dir: str
    step: int
    best_val_bpc: float | None
    best_step: int | None
    stop_reason: str  # max_steps | epochs | max_minutes | early_stop | interrupted
    chars_per_s: float
    metrics: list[dict] = field(default_factory=list)
