"""The training loop: stateful truncated BPTT over parallel streams of the conversation stream.

The trainer knows the stream and the run directory, not the network's insides: it builds a `CharLSTM`
from a `ModelConfig`, feeds it (chars, authors) chunks and keeps its (h, c) state between chunks.

One command for every setting: CPU by default (oneDNN's fused LSTM), CUDA with bf16 autocast when
present, and DistributedDataParallel when started by `torchrun` (WORLD_SIZE > 1), where each rank takes
its own slice of the parallel streams and only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import PRESETS, ModelConfig
from model.generation import Generator
from model.guard import MemorizationGuard
from model.network import CharLSTM, parameter_count
from model.stream import DEFAULT_SESSION_GAP
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError
from training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from training.corpus import Message, read_corpus
from training.dataset import (
    IGNORE,
    EncodedStream,
    build_vocab_and_authors,
    corpus_summary,
    encode_corpus,
    fit_batch_size,
    guard_texts,
    split_messages,
    spoken,
    streams_for_epoch,
)

log = logging.getLogger(__name__)

LOG2 = math.log(2.0)
DEFAULT_EPOCHS = 10.0  # used when no limit (--epochs, --max-steps, --max-minutes) is given
# Settings a resumed run may change; everything else must match the run it continues.
RESUMABLE_OVERRIDES = {"max_steps", "max_minutes", "epochs", "patience", "quiet", "device", "eval_every", "log_every"}


@dataclass
class TrainConfig:
    corpus: str = ""
    run_dir: str = ""
    preset: str = "small"
    personas: list[str] | None = None  # exactly these authors get an identity; None: every frequent author
    min_author_messages: int = 10  # authors with fewer messages fold into ⟨other⟩
    min_char_count: int = 1  # characters seen fewer times become ⟨unk⟩
    dropout: float | None = None  # None: the preset's
    batch_size: int = 32  # parallel streams (per process under torchrun)
    seq_len: int = 128  # steps of backpropagation through time per chunk
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr × this
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    speaker_loss_weight: float = 0.2
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
    preview_samples: int = 2
    preview_chars: int = 160
    guard_n: int = 60
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESETS)})")
        for name in ("batch_size", "seq_len", "eval_every", "log_every", "min_author_messages", "guard_n"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
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
        return cls(**d)


@dataclass
class TrainResult:
    run_dir: str
    step: int
    best_val_bpc: float | None
    best_step: int | None
    stop_reason: str  # max_steps | epochs | max_minutes | early_stop | interrupted
    chars_per_s: float
    metrics: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# Processes, devices, signals


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


def resolve_device(name: str, dist: DistInfo) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (this torch build or machine has none)")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", dist.local_rank if dist.distributed else torch.cuda.current_device())
    return torch.device("cpu")


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


# ---------------------------------------------------------------------------------------------------
# The step (shared by the trainer and the benchmark)


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
                 h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        with self.autocast():
            char_logits, speaker_logits, h, c = self.model(chars, authors, h, c)  # (B, T, V), (B, T, A)
        char_loss = F.cross_entropy(char_logits.float().reshape(-1, self.vocab_size), char_targets.reshape(-1))
        # The speaker head answers only at message ends; average over those, 0 if the chunk has none.
        counted = (speaker_targets != IGNORE).sum().clamp_min(1)
        speaker_loss = F.cross_entropy(speaker_logits.float().reshape(-1, self.n_authors), speaker_targets.reshape(-1),
                                       ignore_index=IGNORE, reduction="sum") / counted
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


# ---------------------------------------------------------------------------------------------------
# Validation and previews


@torch.no_grad()
def validate(model: CharLSTM, stream: EncodedStream, n_authors: int, seq_len: int, device: torch.device,
             max_steps: int, batch_size: int = 16, autocast=nullcontext) -> tuple[float, Tensor, Tensor]:
    """Bits per character over the held-out stream: (overall, summed nats per author (A,), steps per author (A,)).

    The stream is cut into parallel segments read with carried state, like training, in eval mode.
    """
    n = min(len(stream), max_steps + 1)
    batch = max(1, min(batch_size, (n - 1) // max(1, seq_len)))
    length = (n - 1) // batch
    span = batch * length
    chars = stream.chars[:span].view(batch, length).to(device)  # (Bv, Lv)
    targets = stream.chars[1 : span + 1].view(batch, length).to(device)
    authors = stream.authors[:span].view(batch, length).to(device)
    nats = torch.zeros(n_authors, dtype=torch.float64, device=device)
    counts = torch.zeros(n_authors, dtype=torch.float64, device=device)
    h, c = model.init_state(batch)
    for start in range(0, length, seq_len):
        cols = slice(start, start + seq_len)
        with autocast():
            logits, _, h, c = model(chars[:, cols], authors[:, cols], h, c)
        loss = F.cross_entropy(logits.float().transpose(1, 2), targets[:, cols], reduction="none")  # (Bv, t)
        who = authors[:, cols].reshape(-1)
        nats.index_add_(0, who, loss.reshape(-1).double())
        counts.index_add_(0, who, torch.ones_like(who, dtype=torch.float64))
    total = float(nats.sum() / counts.sum().clamp_min(1)) / LOG2
    return total, nats.cpu(), counts.cpu()


def write_previews(model: CharLSTM, vocab: Vocabulary, authors: AuthorTable, path: str, step: int,
                   samples: int, max_chars: int) -> None:
    """A few replies per persona from a fresh conversation, written (not printed: they may echo real text)."""
    generator = Generator(model, vocab, authors)
    lines = [f"# samples at step {step} (temperature 0.8)", ""]
    for persona_id, name in enumerate(authors.names[1:], start=1):
        replies = generator.reply(generator.init_state(1), persona_id, n=samples, temperature=0.8,
                                  max_chars=max_chars, seed=step)
        lines.append(f"## {name}")
        lines.extend(f"- {reply!r}" for reply in replies)
        lines.append("")
    write_text_atomic(path, "\n".join(lines))


# ---------------------------------------------------------------------------------------------------
# Files


def write_text_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def prepare_run_dir(run_dir: str, resume: bool) -> None:
    """Create the run directory and prove it is writable; refuse to train over an existing run."""
    if not run_dir:
        raise UserError("no run directory given (-o RUN_DIR)")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: exists and is not a directory")
    try:
        for sub in ("", "checkpoints", "samples"):
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=os.path.join(run_dir, "checkpoints"))
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"{run_dir}: cannot write the run directory ({err.strerror})") from None
    has_run = os.path.exists(checkpoint_path(run_dir, "last"))
    if resume and not has_run:
        raise UserError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
    if not resume and has_run:
        raise UserError(f"{run_dir}: already holds a training run; add --resume to continue it or choose another -o")


def resume_config(run_dir: str, overrides: dict[str, Any]) -> TrainConfig:
    """The saved config of the run in `run_dir`, with the few settings a resumed run may change."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)["train"]
    except FileNotFoundError:
        raise UserError(f"{run_dir}: nothing to resume (no config.json)") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path}: damaged run config") from None
    config = TrainConfig.from_dict(saved)
    for key, value in overrides.items():
        if value is None or key in ("corpus", "run_dir"):
            continue
        if key not in RESUMABLE_OVERRIDES and value != saved.get(key):
            raise UserError(f"--{key.replace('_', '-')} differs from the run being resumed "
                            f"({saved.get(key)!r}); start a new run to change it")
        setattr(config, key, value)
    if overrides.get("corpus"):
        config.corpus = overrides["corpus"]
    config.run_dir = run_dir
    return config


def load_messages(path: str) -> list[Message]:
    if not path:
        raise UserError("no corpus given")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory; give the corpus file (talklike import writes corpus.jsonl)")
    messages = list(read_corpus(path))
    if not messages:
        raise UserError(f"{path}: the corpus is empty")
    talk = spoken(messages)
    if not talk:
        raise UserError(f"{path}: the corpus has no text messages to learn from")
    people = {m.author for m in talk}
    if len(people) < 2:
        raise UserError(f"{path}: the corpus has one author ({next(iter(people))}); "
                        "talklike learns from conversations between at least two people")
    return messages


def plot_losses(run_dir: str, rows: list[dict]) -> str | None:
    """loss.png: training and validation bits per character against steps; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [(r["step"], r["train_bpc"]) for r in rows if r.get("kind") == "train"]
    val = [(r["step"], r["val_bpc"]) for r in rows if r.get("kind") == "eval" and r.get("val_bpc") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title(os.path.basename(os.path.abspath(run_dir)))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(run_dir, "loss.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def read_metrics(run_dir: str) -> list[dict]:
    """The rows of run_dir/metrics.jsonl (train rows and eval rows), oldest first."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # blank, or the half line of a run killed mid-write
                continue
    return rows


# ---------------------------------------------------------------------------------------------------
# The loop


def train(config: TrainConfig, resume: bool = False, should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Train (or resume) the run `config.run_dir` on `config.corpus`; see TrainConfig for the knobs.

    `should_stop(step)` is asked after every step; True stops like Ctrl-C does (checkpoint, clean exit).
    """
    dist = DistInfo.from_env()
    device = resolve_device(config.device, dist)
    if dist.distributed and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend)
    try:
        result = _train(config, resume, should_stop, dist, device)
        if dist.distributed:
            # Leave together: rank 0 still writes the run when the others are done, and a gloo process whose
            # peer tears the group down under it can abort ("terminate called without an active exception").
            torch.distributed.barrier()
        return result
    finally:
        if dist.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, resume: bool, should_stop: Callable[[int], bool] | None, dist: DistInfo,
           device: torch.device) -> TrainResult:
    run_dir = config.run_dir
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if dist.main and not config.quiet else (lambda *a: None)
    # ---- data (checked before anything is written: a bad corpus leaves no empty run directory behind)
    messages = load_messages(config.corpus)
    train_messages, val_messages = split_messages(messages, config.val_fraction)
    vocab, authors = build_vocab_and_authors(messages, config.min_author_messages, config.personas,
                                             config.min_char_count)
    if len(authors) < 2:
        raise UserError(f"{config.corpus}: no author has {config.min_author_messages} messages; "
                        "lower --min-author-messages or name --personas")
    if dist.main:
        prepare_run_dir(run_dir, resume)
    if dist.distributed:
        torch.distributed.barrier()
    train_stream = encode_corpus(train_messages, vocab, authors, config.session_gap)
    val_stream = encode_corpus(val_messages, vocab, authors, config.session_gap)
    batch_size = fit_batch_size(len(train_stream), config.batch_size, config.seq_len, dist.world_size)
    if batch_size != config.batch_size:
        say(f"note: the corpus is small; using {batch_size} parallel streams instead of {config.batch_size}")

    # ---- model and optimizer
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    overrides = {} if config.dropout is None else {"dropout": config.dropout}
    model_config = ModelConfig.from_preset(config.preset, len(vocab), len(authors), **overrides)
    model = CharLSTM(model_config).to(device)
    optimizer = make_optimizer(model, config, device)
    fingerprint = train_stream.fingerprint()

    step, epoch, chunk, elapsed_before = 0, 0, 0, 0.0
    best_val, best_step, evals_since_best = None, None, 0
    h = c = None
    if resume:
        ckpt = load_checkpoint(checkpoint_path(run_dir, "last"), map_location="cpu")
        if ckpt["vocab"] != vocab.to_dict() or ckpt["authors"] != authors.to_dict():
            raise UserError(f"{run_dir}: the checkpoint's vocabulary or authors do not match {config.corpus}; "
                            "resume with the corpus the run started on, or start a new run")
        if ckpt.get("data_fingerprint") != fingerprint:
            raise UserError(f"{run_dir}: {config.corpus} is not the corpus this run was trained on "
                            "(its messages changed); start a new run")
        if ckpt["model_config"] != model_config.to_dict():
            raise UserError(f"{run_dir}: the checkpoint's model config differs from --preset {config.preset}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, epoch, chunk = ckpt["step"], ckpt["epoch"], ckpt["chunk"]
        elapsed_before = float(ckpt["elapsed"])
        best_val, best_step, evals_since_best = ckpt["best_val_bpc"], ckpt["best_step"], ckpt["evals_since_best"]
        saved_h, saved_c = ckpt["stream_state"]
        if saved_h.shape[1] == batch_size * dist.world_size:
            rows = slice(dist.rank * batch_size, (dist.rank + 1) * batch_size)
            h, c = saved_h[:, rows].to(device), saved_c[:, rows].to(device)
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        say(f"resuming {run_dir} at step {step} (epoch {epoch}, chunk {chunk})")
    elif dist.main:
        write_json(os.path.join(run_dir, "config.json"), {
            "train": config.to_dict(),
            "model": model_config.to_dict(),
            "batch_size_per_process": batch_size,  # after any shrinking for a small corpus
            "effective_batch_size": batch_size * dist.world_size,  # streams trained on together
            "world_size": dist.world_size,
            "parameters": parameter_count(model),
        })
        summary = corpus_summary(messages, authors, train_messages, val_messages)
        summary["corpus"] = os.path.basename(config.corpus)
        write_json(os.path.join(run_dir, "data.json"), summary)
        guard = MemorizationGuard.build(guard_texts(messages), n=config.guard_n)
        with open(os.path.join(run_dir, "guard.bin.tmp"), "wb") as out:
            out.write(guard.to_bytes())
        os.replace(os.path.join(run_dir, "guard.bin.tmp"), os.path.join(run_dir, "guard.bin"))
    if dist.distributed:
        # Different dropout masks per rank; the weights were already made identical above.
        torch.manual_seed(config.seed * 7919 + dist.rank + step)

    train_model: nn.Module = model
    if dist.distributed:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    stepper = TrainStep(train_model, optimizer, config, model_config, device)

    def batches_for(e: int):
        return streams_for_epoch(train_stream, batch_size, config.seq_len, e, config.seed, config.author_dropout,
                                 dist.rank, dist.world_size).to(device)

    batches = batches_for(epoch)
    steps_per_epoch = batches.steps
    if h is None:
        h, c = model.init_state(batch_size)
    if dist.main and not config.quiet:
        say(f"training {config.preset} ({parameter_count(model):,} parameters) on {device}"
            f"{f' × {dist.world_size} processes' if dist.distributed else ''}: {len(train_stream):,} training steps "
            f"of stream, {len(val_stream):,} held out, {len(authors) - 1} personas, vocabulary {len(vocab)}")
        if not len(val_stream):
            say("note: nothing is held out (conversations too short); best checkpoint = last")

    # ---- limits and schedule
    total_steps = None
    if config.max_steps is not None:
        total_steps = config.max_steps
    if config.epochs is not None:
        by_epochs = math.ceil(config.epochs * steps_per_epoch)
        total_steps = by_epochs if total_steps is None else min(total_steps, by_epochs)
    warmup = config.warmup_steps
    max_seconds = None if config.max_minutes is None else config.max_minutes * 60.0

    def progress(at_step: int, elapsed: float) -> float:
        parts = [0.0]
        if total_steps:
            parts.append(at_step / total_steps)
        if max_seconds:
            parts.append(elapsed / max_seconds)
        return max(parts)

    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if resume and dist.main:
        # Rows logged after the checkpoint (a run killed without saving) are about to be redone: drop them.
        kept = [row for row in read_metrics(run_dir) if row.get("step", 0) <= step]
        write_text_atomic(metrics_path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
    metrics_file = open(metrics_path, "a" if resume else "w", encoding="utf-8") if dist.main else None

    def record(row: dict) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(row, ensure_ascii=False) + "\n")
            metrics_file.flush()

    def state_dict_now() -> dict:
        hs, cs = h.detach(), c.detach()
        if dist.distributed:  # every rank's streams, so a resume picks each rank's rows back up
            gathered_h = [torch.empty_like(hs) for _ in range(dist.world_size)]
            gathered_c = [torch.empty_like(cs) for _ in range(dist.world_size)]
            torch.distributed.all_gather(gathered_h, hs)
            torch.distributed.all_gather(gathered_c, cs)
            hs, cs = torch.cat(gathered_h, dim=1), torch.cat(gathered_c, dim=1)
        return {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "model_config": model_config.to_dict(),
            "vocab": vocab.to_dict(),
            "authors": authors.to_dict(),
            "train_config": config.to_dict(),
            "step": step,
            "epoch": epoch,
            "chunk": chunk,
            "elapsed": elapsed_before + (time.monotonic() - started),
            "best_val_bpc": best_val,
            "best_step": best_step,
            "evals_since_best": evals_since_best,
            "stream_state": [hs.cpu(), cs.cpu()],
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "data_fingerprint": fingerprint,
            "batch_size": batch_size,
            "world_size": dist.world_size,
        }

    def save(which: str, state: dict) -> None:
        if dist.main:
            save_checkpoint(checkpoint_path(run_dir, which), state)

    def run_eval() -> dict:
        """Validation (rank 0), previews, best/last checkpoints; returns the metrics row."""
        nonlocal best_val, best_step, evals_since_best
        state = state_dict_now()  # collective under DDP: every rank takes part
        row: dict[str, Any] = {"kind": "eval", "step": step, "epoch": round(epoch + chunk / max(1, steps_per_epoch), 4)}
        if dist.main:
            model.eval()
            if len(val_stream) > 1:
                bpc, nats, counts = validate(model, val_stream, len(authors), config.seq_len, device,
                                             config.val_max_steps, autocast=stepper.autocast)
                row["val_bpc"] = bpc
                row["val_bpc_by_author"] = {
                    authors.name_of(i): float(nats[i] / counts[i]) / LOG2 for i in range(len(authors)) if counts[i] > 0
                }
            if config.preview_samples > 0:
                write_previews(model, vocab, authors, os.path.join(run_dir, "samples", f"step_{step:07d}.txt"),
                               step, config.preview_samples, config.preview_chars)
            model.train()
            val = row.get("val_bpc")
            improved = val is None or best_val is None or val < best_val - 1e-4
            if val is not None and improved:
                best_val, best_step, evals_since_best = val, step, 0
            elif val is not None:
                evals_since_best += 1
            state.update(best_val_bpc=best_val, best_step=best_step, evals_since_best=evals_since_best)
            if improved:
                save("best", state)
            save("last", state)
            record(row)
        return row

    # ---- loop
    stop = StopFlag()
    started = time.monotonic()
    last_log_time, last_log_step = started, step
    start_progress = progress(step, elapsed_before)  # for the ETA of this session
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    chars_per_step = batch_size * config.seq_len * dist.world_size
    shown = {"loss": "-", "val_bpc": "-" if best_val is None else f"{best_val:.3f}"}
    bar = None
    if dist.main and not config.quiet:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr,
                   disable=None, leave=True)
    stop_reason = ""
    last_eval_step = step if resume else -1
    chars_per_s = 0.0
    model.train()
    with stop:
        while True:
            # -- limits that every rank computes the same way
            if config.max_steps is not None and step >= config.max_steps:
                stop_reason = "max_steps"
            elif config.epochs is not None and epoch + chunk / max(1, steps_per_epoch) >= config.epochs - 1e-9:
                stop_reason = "epochs"
            if stop_reason:
                break
            if chunk >= steps_per_epoch:  # epoch wrap: new offset and dropout; streams start afresh
                epoch, chunk = epoch + 1, 0
                batches = batches_for(epoch)
                steps_per_epoch = batches.steps
                h, c = model.init_state(batch_size)
                continue
            elapsed = elapsed_before + (time.monotonic() - started)
            lr = config.lr * lr_factor(step, progress(step, elapsed), warmup, config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, a, y, s = batches.chunk(chunk)  # each (B, T)
            loss, h, c = stepper(x, a, y, s, h, c)
            loss_sum += loss
            loss_count += 1
            step, chunk = step + 1, chunk + 1
            if bar is not None:
                bar.update(1)

            # -- occasional: log (the only host sync of the loop), stop checks, evaluation
            halt = stop.set or (should_stop is not None and should_stop(step))
            time_up = max_seconds is not None and elapsed_before + (time.monotonic() - started) >= max_seconds
            if dist.distributed and (step % config.log_every == 0 or step % config.eval_every == 0):
                flags = torch.tensor([float(halt), float(time_up)], device=device)
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
                halt, time_up = bool(flags[0]), bool(flags[1])
            elif dist.distributed:
                halt = time_up = False  # decided together at the next log step
            if step % config.log_every == 0 or halt or time_up:
                now = time.monotonic()
                train_bpc = float(loss_sum / max(1, loss_count)) / LOG2
                chars_per_s = (step - last_log_step) * chars_per_step / max(1e-9, now - last_log_time)
                last_log_time, last_log_step = now, step
                loss_sum.zero_()
                loss_count = 0
                elapsed_now = elapsed_before + (now - started)
                done = progress(step, elapsed_now)
                record({"kind": "train", "step": step, "epoch": round(epoch + chunk / max(1, steps_per_epoch), 4),
                        "train_bpc": train_bpc, "lr": lr, "chars_per_s": chars_per_s, "elapsed": elapsed_now})
                shown["loss"] = f"{train_bpc:.3f}"
                if bar is not None:
                    session = now - started
                    gained = done - start_progress
                    eta = session * (1 - done) / gained if gained > 0 else float("nan")
                    bar.set_postfix_str(f"bpc={shown['loss']} val={shown['val_bpc']} chars/s={chars_per_s:,.0f}"
                                        f"{'' if math.isnan(eta) else f' eta={_duration(eta)}'}", refresh=False)
            if halt:
                stop_reason = "interrupted"
                break
            if step % config.eval_every == 0:
                row = run_eval()
                last_eval_step = step
                last_log_time = time.monotonic()  # chars/s measures training, not evaluation
                if row.get("val_bpc") is not None:
                    shown["val_bpc"] = f"{row['val_bpc']:.3f}"
                early = dist.main and config.patience > 0 and evals_since_best >= config.patience
                if dist.distributed:
                    flag = torch.tensor([float(early)], device=device)
                    torch.distributed.broadcast(flag, 0)
                    early = bool(flag[0])
                if early:
                    stop_reason = "early_stop"
                    break
            if time_up:
                stop_reason = "max_minutes"
                break

    if bar is not None:
        bar.close()
    if stop_reason == "interrupted":
        state = state_dict_now()
        save("last", state)
        if dist.main:  # said even with --quiet: the user asked for the stop and needs to know what was kept
            print(f"stopped at step {step}; saved {checkpoint_path(run_dir, 'last')} — continue with --resume",
                  file=sys.stderr, flush=True)
    elif last_eval_step != step:
        run_eval()
    if metrics_file is not None:
        metrics_file.close()
    if dist.main:
        if not os.path.exists(checkpoint_path(run_dir, "best")) and os.path.exists(checkpoint_path(run_dir, "last")):
            save("best", load_checkpoint(checkpoint_path(run_dir, "last")))
        rows = read_metrics(run_dir)
        if stop_reason != "interrupted":
            if plot_losses(run_dir, rows) is None:
                say("note: matplotlib is not installed; skipped loss.png (pip install 'talklike[train]')")
            best = "-" if best_val is None else f"{best_val:.3f} bpc at step {best_step}"
            say(f"done ({stop_reason.replace('_', ' ')}): {step} steps, best validation {best}; "
                f"next: talklike export {run_dir} -o model.pt")
    else:
        rows = []
    return TrainResult(run_dir, step, best_val, best_step, stop_reason, chars_per_s, rows)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
