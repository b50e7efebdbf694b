"""The training loop's state: everything the loop changes as it runs, in one object that the checkpoint
holds as one entry ("loop") and a resume restores whole.

What is not here is fixed for the run (config, tables, data: the rest of the checkpoint) or belongs to one
session only (the progress bar, the loss summed since the last log step).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from training.processes import DistInfo

IMPROVEMENT = 1e-4  # a validation bpc must beat the best by this much to count as better


@dataclass
class LoopState:
    """Where the loop is (step, epoch, chunk, time), how validation went, the streams' (h, c), the random state."""

    step: int = 0  # optimizer steps taken, all sessions together
    epoch: int = 0
    chunk: int = 0  # the next chunk of this epoch's batches
    elapsed: float = 0.0  # seconds of training, all sessions together (brought up to date by the loop)
    best_val_bpc: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    val_steps: int | None = None  # held-out steps validation reads, fixed at the first evaluation of a timed run
    h: Tensor | None = None  # (L, B, H): this process's parallel streams; None: start them afresh
    c: Tensor | None = None
    rng: dict[str, Tensor | None] = field(default_factory=dict)  # as of the last capture_rng()

    def note_validation(self, val_bpc: float | None) -> bool:
        """Count one evaluation at this step; True when it is the best so far (or there is nothing to judge by,
        when every evaluation counts as best and best.pt follows last.pt)."""
        improved = val_bpc is None or self.best_val_bpc is None or val_bpc < self.best_val_bpc - IMPROVEMENT
        if val_bpc is not None and improved:
            self.best_val_bpc, self.best_step, self.evals_since_best = val_bpc, self.step, 0
        elif val_bpc is not None:
            self.evals_since_best += 1
        return improved

    def capture_rng(self, device: torch.device) -> None:
        """Take torch's random state (and the CUDA device's) into `rng`; dropout draws from it."""
        self.rng = {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}

    def restore_rng(self, device: torch.device) -> None:
        """Put the captured random state back, so the dropout masks go on where they stopped."""
        torch.set_rng_state(self.rng["torch"])
        if device.type == "cuda" and self.rng.get("cuda") is not None:
            torch.cuda.set_rng_state(self.rng["cuda"], device)

    def to_dict(self, stream_state: tuple[Tensor, Tensor]) -> dict[str, Any]:
        """The checkpoint's "loop" entry; `stream_state` is every rank's (h, c), each (L, B × world, H)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("h", "c")}
        d["stream_state"] = [stream_state[0].cpu(), stream_state[1].cpu()]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], dist: DistInfo, batch_size: int, device: torch.device) -> LoopState:
        """The state a checkpoint's "loop" entry holds, with this rank's rows of the streams on `device`
        (none, so they start afresh, when the run had another number of streams)."""
        saved_h, saved_c = d["stream_state"]
        h = c = None
        if saved_h.shape[1] == batch_size * dist.world_size:
            rows = dist.rows(batch_size)
            h, c = saved_h[:, rows].to(device), saved_c[:, rows].to(device)
        names = {f.name for f in fields(cls)} - {"h", "c"}
        state = cls(**{k: v for k, v in d.items() if k in names}, h=h, c=c)
        state.elapsed = float(state.elapsed)
        return state
