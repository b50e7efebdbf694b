"""Stepping the char-LSTM outside training: one interface, two implementations.

Every caller that writes text one character at a time (the reply engine's worker, `Generator` for previews,
evaluation and `talklike sample`) goes through a `Stepper`:

- `step(chars (B,), authors (B,), h, c (L, B, H))` → char logits (B, V), speaker logits (B, A), h, c:
  one character for each of B independent rows;
- `read(chars [T], authors [T], h, c (L, 1, H))` → char logits after the last input (1, V), speaker logits
  after the last EOS read (A,) or None, h, c: one conversation's inputs, T ≥ 1 steps.

All arrays are numpy float32 on the host. `TorchStep` runs the module (eager or TorchScript, fp32 or int8,
any device); `NumpyStep` (model/numpy_step.py) is the same arithmetic in numpy, several times cheaper per
character on a CPU, and is only used where it agrees with the module. `stepper_for` picks.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import torch

from model.vocab import Vocabulary

log = logging.getLogger(__name__)

StepOutput = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
ReadOutput = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]


class Stepper(Protocol):
    num_layers: int
    hidden_size: int

    def step(self, chars: np.ndarray, authors: np.ndarray, h: np.ndarray, c: np.ndarray) -> StepOutput: ...

    def read(self, chars: list[int], authors: list[int], h: np.ndarray, c: np.ndarray) -> ReadOutput: ...


class TorchStep:
    """A `Stepper` over the module itself. The caller chooses oneDNN or the native LSTM kernel around it
    (`native_lstm()`): for one-character steps on a CPU the native one is several times faster."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        h, _ = module.init_state(1)
        self.num_layers, self.hidden_size = int(h.shape[0]), int(h.shape[2])
        self.device = h.device

    def _tensor(self, x, dtype=None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype).to(self.device)

    @torch.no_grad()
    def step(self, chars, authors, h, c) -> StepOutput:
        logits, speaker, h2, c2 = self.module(self._tensor(chars, torch.long)[:, None],
                                              self._tensor(authors, torch.long)[:, None],
                                              self._tensor(h), self._tensor(c))
        return _host(logits[:, 0]), _host(speaker[:, 0]), _host(h2), _host(c2)

    @torch.no_grad()
    def read(self, chars, authors, h, c) -> ReadOutput:
        logits, speaker, h2, c2 = self.module(self._tensor([chars], torch.long), self._tensor([authors], torch.long),
                                              self._tensor(h), self._tensor(c))
        last_eos = last_eos_index(chars)
        return (_host(logits[:, -1]), None if last_eos is None else _host(speaker[0, last_eos]),
                _host(h2), _host(c2))


def stepper_for(module: torch.nn.Module, fast: bool = True) -> Stepper:
    """The numpy step where it applies to `module` and agrees with it (`fast`), else the module itself."""
    if fast:
        from model.numpy_step import NumpyStep

        numpy_step = NumpyStep.from_module(module)
        if numpy_step is not None:
            return numpy_step
    return TorchStep(module)


def native_lstm():
    """Context with oneDNN off: its LSTM is several times slower than the native kernel for one-step calls
    on CPU. Only the enabled flag is touched (the other oneDNN flags stay as they are)."""
    return torch.backends.mkldnn.flags(enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None)


def last_eos_index(chars: list[int]) -> int | None:
    """Position of the last end of message in `chars`, or None."""
    return max((t for t, ch in enumerate(chars) if ch == Vocabulary.EOS), default=None)


def _host(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()
