"""The training loop: stateful truncated BPTT over parallel streams of the conversation stream.

`TrainLoop` steps the run's model chunk after chunk and changes nothing else but its `LoopState`: it logs
every `log_every` steps, evaluates every `eval_every` (validation, previews, best/last checkpoints) and stops
at a limit, on a stop request (Ctrl-C, SIGTERM, `should_stop`) or when validation stops improving. Under
torchrun every rank runs the same loop on its own streams and the ranks agree on stopping at log and eval
steps.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from model.config import ModelConfig
from model.experts import NgramExperts
from model.network import CharLSTM
from model.vocab import AuthorTable, Vocabulary
from training.checkpoint import checkpoint_path, save_checkpoint
from training.dataset import EncodedStream, EpochBatches, streams_for_epoch
from training.expert_steps import ExpertSteps
from training.loop_state import LoopState
from training.processes import DistInfo, StopFlag, any_rank, from_main, gather_streams
from training.run_files import MetricsLog
from training.train_config import TrainConfig
from training.train_step import LOG2, TrainStep, lr_factor
from training.validation import validation_row, write_previews


@dataclass
class Run:
    """What a run trains, on what and where; fixed for the run (built by `train()`, read by the loop)."""

    config: TrainConfig
    dist: DistInfo
    device: torch.device
    model: CharLSTM  # the plain model (not the DistributedDataParallel wrapper): checkpoints, validation
    optimizer: torch.optim.Optimizer
    model_config: ModelConfig
    vocab: Vocabulary
    authors: AuthorTable
    train_stream: EncodedStream
    val_stream: EncodedStream
    batch_size: int  # parallel streams of this process
    fingerprint: str  # of the training stream: a resume checks that it trains on the same data
    ranked_personas: list[int]  # persona ids, most training messages first: whose previews and figures are shown
    experts: NgramExperts | None = None  # the n-gram experts the network writes on top of
    expert_steps: ExpertSteps | None = None  # their view of the training stream
    val_expert_steps: ExpertSteps | None = None  # and of the held-out stream
    experts_seconds: float = 0.0  # counting them took this long: a fresh run's time budget includes it

    def batches(self, epoch: int) -> EpochBatches:
        """This rank's streams of `epoch`, on the device; their offset and author dropout depend on (seed, epoch)."""
        c = self.config
        return streams_for_epoch(self.train_stream, self.batch_size, c.seq_len, epoch, c.seed, c.author_dropout,
                                 self.dist.rank, self.dist.world_size).to(self.device)

    def checkpoint(self, loop: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint: the weights, the optimizer, the tables and config, and the loop's state as one entry."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "model_config": self.model_config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "authors": self.authors.to_dict(),
            "train_config": self.config.to_dict(),
            "loop": loop,
            "data_fingerprint": self.fingerprint,
            "batch_size": self.batch_size,
            "world_size": self.dist.world_size,
        }

    def save(self, which: str, checkpoint: dict[str, Any]) -> None:
        """checkpoints/{which}.pt; rank 0 alone writes files."""
        if self.dist.main:
            save_checkpoint(checkpoint_path(self.config.run_dir, which), checkpoint)


@dataclass(frozen=True)
class Limits:
    """How far the run has come, 0 → 1, by steps (--max-steps, --epochs) or by time (--max-minutes), whichever
    is further: the learning-rate schedule and the ETA follow it."""

    total_steps: int | None
    max_seconds: float | None

    @classmethod
    def of(cls, config: TrainConfig, steps_per_epoch: int) -> Limits:
        total = config.max_steps
        if config.epochs is not None:
            by_epochs = math.ceil(config.epochs * steps_per_epoch)
            total = by_epochs if total is None else min(total, by_epochs)
        return cls(total, None if config.max_minutes is None else config.max_minutes * 60.0)

    def progress(self, step: int, elapsed: float) -> float:
        parts = [0.0]
        if self.total_steps:
            parts.append(step / self.total_steps)
        if self.max_seconds:
            parts.append(elapsed / self.max_seconds)
        return max(parts)


class Progress:
    """What one session reports as it trains: train rows of metrics.jsonl (mean loss since the last log step,
    learning rate, characters per second) and, on rank 0 unless quiet, a progress bar with an ETA."""

    def __init__(self, run: Run, state: LoopState, metrics: MetricsLog, limits: Limits, started: float):
        self.metrics = metrics
        self.limits = limits
        self.started = started
        self.start_progress = limits.progress(state.step, state.elapsed)  # for the ETA of this session
        self.loss_sum = torch.zeros((), device=run.device)  # stays on the device until a log step
        self.loss_count = 0
        self.lr = 0.0
        self.chars_per_step = run.batch_size * run.config.seq_len * run.dist.world_size
        self.chars_per_s = 0.0
        self.last_time, self.last_step = started, state.step
        self.shown = {"loss": "-", "val_bpc": "-" if state.best_val_bpc is None else f"{state.best_val_bpc:.3f}"}
        self.bar = None
        if run.dist.main and not run.config.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=limits.total_steps, initial=state.step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, disable=None, leave=True)

    def stepped(self, loss: Tensor, lr: float) -> None:
        """One step done with learning rate `lr`; its loss (a device scalar, nats) joins the sum."""
        self.loss_sum += loss
        self.loss_count += 1
        self.lr = lr
        if self.bar is not None:
            self.bar.update(1)

    def log(self, step: int, epoch: float, now: float, elapsed: float) -> None:
        """A train row at `step` (the loop's only host sync); `now` is time.monotonic(), `elapsed` the run's time."""
        train_bpc = float(self.loss_sum / max(1, self.loss_count)) / LOG2
        self.chars_per_s = (step - self.last_step) * self.chars_per_step / max(1e-9, now - self.last_time)
        self.last_time, self.last_step = now, step
        self.loss_sum.zero_()
        self.loss_count = 0
        self.metrics.record({"kind": "train", "step": step, "epoch": epoch, "train_bpc": train_bpc, "lr": self.lr,
                             "chars_per_s": self.chars_per_s, "elapsed": elapsed})
        self.shown["loss"] = f"{train_bpc:.3f}"
        if self.bar is not None:
            done = self.limits.progress(step, elapsed)
            gained = done - self.start_progress
            eta = (now - self.started) * (1 - done) / gained if gained > 0 else float("nan")
            self.bar.set_postfix_str(f"bpc={self.shown['loss']} val={self.shown['val_bpc']} "
                                     f"chars/s={self.chars_per_s:,.0f}"
                                     f"{'' if math.isnan(eta) else f' eta={_duration(eta)}'}", refresh=False)

    def evaluated(self, row: dict) -> None:
        """After an evaluation: chars/s goes on measuring training, not evaluation; the bar shows the new figure."""
        self.last_time = time.monotonic()
        if row.get("val_bpc") is not None:
            self.shown["val_bpc"] = f"{row['val_bpc']:.3f}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TrainLoop:
    """Trains `run` from `state` with `train_step` (which steps the model, DDP-wrapped under torchrun).

    `run_until_stopped()` trains and returns why it stopped; `finish(reason)` saves what that reason calls for.
    """

    def __init__(self, run: Run, train_step: TrainStep, state: LoopState, metrics: MetricsLog,
                 resumed: bool = False, should_stop: Callable[[int], bool] | None = None):
        self.run = run
        self.train_step = train_step
        self.state = state
        self.metrics = metrics
        self.should_stop = should_stop
        self.batches = run.batches(state.epoch)
        if state.h is None:
            state.h, state.c = run.model.init_state(run.batch_size)
        self.limits = Limits.of(run.config, self.batches.steps)
        self.last_eval_step = state.step if resumed else -1  # a resumed run's checkpoint step was evaluated
        self.stop = StopFlag()
        self.progress: Progress | None = None  # this session's, from the start of run_until_stopped()
        self.eval_seconds = 0.0  # this session's time in evaluations (validation, previews)
        self._started = self._elapsed_before = 0.0  # when this session started; the run's time before it

    def run_until_stopped(self) -> str:
        """Train; the reason it stopped: max_steps | epochs | max_minutes | early_stop | interrupted."""
        self._started, self._elapsed_before = time.monotonic(), self.state.elapsed
        self.progress = Progress(self.run, self.state, self.metrics, self.limits, self._started)
        self.run.model.train()
        with self.stop:
            while True:
                reason = self._limit_reached()
                if reason:
                    return reason
                if self.state.chunk >= self.batches.steps:
                    self._next_epoch()
                    continue
                self._train_chunk()
                reason = self._after_step()
                if reason:
                    return reason

    def finish(self, reason: str) -> None:
        """An interrupted run saves last.pt to resume from; any other ends with an evaluation of its last step."""
        if self.progress is not None:
            self.progress.close()
        if reason == "interrupted":
            self.run.save("last", self.run.checkpoint(self.state.to_dict(self._snapshot())))
            if self.run.dist.main:  # said even with --quiet: the user asked for the stop and needs to know what was kept
                print(f"stopped at step {self.state.step}; saved {checkpoint_path(self.run.config.run_dir, 'last')} "
                      "— continue with --resume", file=sys.stderr, flush=True)
        elif self.last_eval_step != self.state.step:
            self.evaluate(last=True)

    def evaluate(self, last: bool = False) -> dict:
        """Validation (rank 0), previews, best/last checkpoints; returns the metrics row. `last`: the run's
        closing evaluation (none follows it)."""
        run, state = self.run, self.state
        streams = self._snapshot()  # before validation; collective under torchrun: every rank takes part
        row: dict[str, Any] = {"kind": "eval", "step": state.step, "epoch": round(self._epochs_done(), 4)}
        if not run.dist.main:
            return row
        began = time.monotonic()
        run.model.eval()
        previews = self._write_previews()
        row.update(self._validate(previews, last))
        run.model.train()
        self.eval_seconds += time.monotonic() - began
        improved = state.note_validation(row.get("val_bpc"))
        checkpoint = run.checkpoint(state.to_dict(streams))
        if improved:
            run.save("best", checkpoint)
        run.save("last", checkpoint)
        self.metrics.record(row)
        return row

    def _write_previews(self) -> float:
        """samples/step_N.txt for the most active personas; the seconds it took."""
        run, config = self.run, self.run.config
        began = time.monotonic()
        if config.preview_samples > 0 and config.preview_personas > 0:
            write_previews(run.model, run.vocab, run.authors,
                           os.path.join(config.run_dir, "samples", f"step_{self.state.step:07d}.txt"),
                           self.state.step, config.preview_samples, config.preview_chars,
                           run.ranked_personas[: config.preview_personas], run.experts)
        return time.monotonic() - began

    def _validate(self, preview_seconds: float, last: bool) -> dict:
        """The validation figures of a metrics row, over `val_max_steps` of the held-out stream, or in a run with
        a time budget over the steps it fixed at its first evaluation so that every evaluation (previews
        included) stays within `val_share` of the budget: the budget's share over this and the evaluations
        still to come (every eval_every steps at the speed trained so far, and the closing one), less the
        previews' time, at the validation speed measured on a short stretch. The number is kept in the loop
        state: every later evaluation (and a resumed run) reads the same steps, so their figures compare."""
        run, state, config = self.run, self.state, self.run.config

        def validation(steps: int) -> dict:
            return validation_row(run.model, run.val_stream, run.authors, config.seq_len, run.device, steps,
                                  run.ranked_personas[: config.report_personas], autocast=self.train_step.autocast,
                                  expert_steps=run.val_expert_steps)

        if self.limits.max_seconds is None or len(run.val_stream) <= 1:
            return validation(config.val_max_steps)
        if state.val_steps is not None:
            return validation(state.val_steps)
        seconds_per_step = state.elapsed / max(1, state.step)  # training so far, evaluations not yet included
        steps_left = (self.limits.max_seconds - state.elapsed) / max(seconds_per_step, 1e-9)
        if self.limits.total_steps is not None:
            steps_left = min(steps_left, self.limits.total_steps - state.step)
        evaluations = 1 if last else 2 + math.floor(max(0.0, steps_left) / config.eval_every)
        budget = config.val_share * self.limits.max_seconds / evaluations - preview_seconds
        probe = min(config.val_max_steps, len(run.val_stream) - 1, 16 * config.seq_len * 2)
        began = time.monotonic()
        row = validation(probe)
        per_step = (time.monotonic() - began) / probe
        state.val_steps = int(min(config.val_max_steps, max(probe, budget / max(per_step, 1e-12))))
        return row if state.val_steps == probe else validation(state.val_steps)

    # ---- the steps of the loop

    def _limit_reached(self) -> str:
        """The limits every rank computes the same way: max_steps, epochs, or "" to go on."""
        config = self.run.config
        if config.max_steps is not None and self.state.step >= config.max_steps:
            return "max_steps"
        if config.epochs is not None and self._epochs_done() >= config.epochs - 1e-9:
            return "epochs"
        return ""

    def _next_epoch(self) -> None:
        """Epoch wrap: a new offset and author dropout; the streams start afresh."""
        state = self.state
        state.epoch, state.chunk = state.epoch + 1, 0
        self.batches = self.run.batches(state.epoch)
        state.h, state.c = self.run.model.init_state(self.run.batch_size)

    def _train_chunk(self) -> None:
        state, config = self.state, self.run.config
        progress = self.limits.progress(state.step, self._elapsed())
        lr = config.lr * lr_factor(state.step, progress, config.warmup_steps, config.min_lr_ratio)
        for group in self.run.optimizer.param_groups:
            group["lr"] = lr
        x, a, y, s = self.batches.chunk(state.chunk)  # each (B, T)
        log_q = names = None
        if self.run.expert_steps is not None:
            positions = self.batches.chunk_positions(state.chunk)
            log_q = self.run.expert_steps.for_positions(positions, a, self.run.device)
            names = self.run.expert_steps.names_for_positions(positions, self.run.device)
        loss, state.h, state.c = self.train_step(x, a, y, s, state.h, state.c, log_q, names)
        state.step, state.chunk = state.step + 1, state.chunk + 1
        self.progress.stepped(loss, lr)

    def _after_step(self) -> str:
        """The occasional work after a step: stop checks, a log row, an evaluation; the reason to stop, or ""."""
        state, config, dist = self.state, self.run.config, self.run.dist
        halt = self.stop.set or (self.should_stop is not None and self.should_stop(state.step))
        time_up = self.limits.max_seconds is not None and self._elapsed() >= self.limits.max_seconds
        if dist.distributed:
            if state.step % config.log_every == 0 or state.step % config.eval_every == 0:
                halt, time_up = any_rank(dist, self.run.device, halt, time_up)
            else:
                halt = time_up = False  # decided together at the next log step
        if state.step % config.log_every == 0 or halt or time_up:
            now = time.monotonic()
            self.progress.log(state.step, round(self._epochs_done(), 4), now, self._elapsed(now))
        if halt:
            return "interrupted"
        if state.step % config.eval_every == 0 and self._evaluate_and_judge():
            return "early_stop"
        return "max_minutes" if time_up else ""

    def _evaluate_and_judge(self) -> bool:
        """Evaluate; True when validation has not improved for --patience evaluations (rank 0 decides)."""
        row = self.evaluate()
        self.last_eval_step = self.state.step
        self.progress.evaluated(row)
        patience = self.run.config.patience
        early = self.run.dist.main and patience > 0 and self.state.evals_since_best >= patience
        return from_main(self.run.dist, self.run.device, early)

    # ---- helpers

    @property
    def started(self) -> float:
        """When this session started training (time.monotonic())."""
        return self._started

    def _epochs_done(self) -> float:
        return self.state.epoch + self.state.chunk / max(1, self.batches.steps)

    def _elapsed(self, now: float | None = None) -> float:
        """Bring the state's training time up to `now` (time.monotonic(); default: this moment) and return it."""
        now = time.monotonic() if now is None else now
        self.state.elapsed = self._elapsed_before + (now - self._started)
        return self.state.elapsed

    def _snapshot(self) -> tuple[Tensor, Tensor]:
        """Every rank's streams (collective under torchrun); the state takes the random state and the time now."""
        streams = gather_streams(self.run.dist, self.state.h, self.state.c)
        self.state.capture_rng(self.run.device)
        self._elapsed()
        return streams


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
