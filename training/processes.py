"""Processes and devices: one process, or one of several started by `torchrun`.

`DistInfo` says which process this is; `resolve_device` picks the device; `process_group` joins and
leaves the group; the collectives the loop needs (the streams' state gathered for a checkpoint, stop flags
agreed on by every rank) live here so the loop reads the same in one process and in many. `StopFlag` turns
Ctrl-C / SIGTERM into a request to stop after the current step.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from talklike.errors import UserError


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> DistInfo:
        """torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; a plain `talklike train` is one process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This rank's rows among all ranks' parallel streams (each rank has `batch_size` of them)."""
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in one process)."""
        if self.distributed:
            torch.distributed.barrier()


def resolve_device(name: str, dist: DistInfo) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (this torch build or machine has none)")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", dist.local_rank if dist.distributed else torch.cuda.current_device())
    return torch.device("cpu")


@contextmanager
def process_group(dist: DistInfo, device: torch.device) -> Iterator[None]:
    """Join the torchrun group (nccl on CUDA, gloo on CPU) for the body, and leave it together afterwards."""
    if dist.distributed and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend)
    try:
        yield
        # Leave together: rank 0 still writes the run when the others are done, and a gloo process whose
        # peer tears the group down under it can abort ("terminate called without an active exception").
        dist.barrier()
    finally:
        if dist.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def gather_streams(dist: DistInfo, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Every rank's stream state (h, c), each (L, B × world, H), so a resume picks each rank's rows back up.
    Collective under torchrun: every rank must call it."""
    hs, cs = h.detach(), c.detach()
    if not dist.distributed:
        return hs, cs
    gathered_h = [torch.empty_like(hs) for _ in range(dist.world_size)]
    gathered_c = [torch.empty_like(cs) for _ in range(dist.world_size)]
    torch.distributed.all_gather(gathered_h, hs)
    torch.distributed.all_gather(gathered_c, cs)
    return torch.cat(gathered_h, dim=1), torch.cat(gathered_c, dim=1)


def any_rank(dist: DistInfo, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true if it is true on any rank (collective under torchrun)."""
    if not dist.distributed:
        return flags
    reduced = torch.tensor([float(f) for f in flags], device=device)
    torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.MAX)
    return tuple(bool(f) for f in reduced)


def from_main(dist: DistInfo, device: torch.device, flag: bool) -> bool:
    """Rank 0's value of `flag` on every rank (collective under torchrun)."""
    if not dist.distributed:
        return flag
    shared = torch.tensor([float(flag)], device=device)
    torch.distributed.broadcast(shared, 0)
    return bool(shared[0])


class StopFlag:
    """Ctrl-C / SIGTERM ask the loop to stop after the current step; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: stopping after this step and saving a checkpoint "
              "(Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with whoever owns them
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def set(self) -> bool:
        return self.signal_name is not None
