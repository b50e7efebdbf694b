"""Training throughput of the trainer's own step on synthetic data (benchmarks/bench_train.py reports it)."""

from __future__ import annotations

import time
from typing import Any

import torch

from model.config import ModelConfig
from model.network import CharLSTM
from training.dataset import IGNORE
from training.train_config import TrainConfig
from training.train_step import TrainStep, make_optimizer


def train_steps_benchmark(model_config: ModelConfig, batch_size: int = 64, seq_len: int = 128,
                          steps: int | None = None, device: str = "cpu", seconds: float | None = None,
                          warmup_steps: int = 3) -> dict[str, Any]:
    """Training throughput of the trainer's own step on synthetic data.

    Runs `warmup_steps` untimed steps, then `steps` steps (or as many as fit in `seconds`; 20 steps if
    neither is given). Returns {"chars_per_s", "batch_size", "seq_len", "steps", "seconds", "device"}.
    """
    dev = torch.device(device)
    config = TrainConfig(batch_size=batch_size, seq_len=seq_len, max_steps=1)
    model = CharLSTM(model_config).to(dev).train()
    optimizer = make_optimizer(model, config, dev)
    step = TrainStep(model, optimizer, config, model_config, dev)
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, seq_len)
    chars = torch.randint(0, model_config.vocab_size, shape, generator=generator).to(dev)
    authors = torch.randint(0, model_config.n_authors, shape, generator=generator).to(dev)
    targets = torch.randint(0, model_config.vocab_size, shape, generator=generator).to(dev)
    speakers = torch.full(shape, IGNORE, dtype=torch.long)
    speakers[:, ::40] = torch.randint(0, model_config.n_authors, speakers[:, ::40].shape, generator=generator)
    speakers = speakers.to(dev)
    h, c = model.init_state(batch_size)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup_steps):
        loss, h, c = step(chars, authors, targets, speakers, h, c)
    sync()
    if steps is None and seconds is None:
        steps = 20
    done = 0
    start = time.perf_counter()
    while True:
        loss, h, c = step(chars, authors, targets, speakers, h, c)
        done += 1
        if steps is not None and done >= steps:
            break
        if seconds is not None and steps is None and done % 5 == 0:
            sync()
            if time.perf_counter() - start >= seconds:
                break
    float(loss)  # waits for the last step
    elapsed = time.perf_counter() - start
    return {
        "chars_per_s": done * batch_size * seq_len / elapsed,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "steps": done,
        "seconds": elapsed,
        "device": str(dev),
    }
