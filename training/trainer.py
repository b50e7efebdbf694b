"""`train()`: set a training run up (data, model, optimizer, run directory, resume) and hand it to the loop.

The trainer knows the stream and the run directory, not the network's insides: it builds a `CharLSTM`
from a `ModelConfig`, feeds it (chars, authors) chunks and keeps its (h, c) state between chunks
(training/loop.py).

One command for every setting: CPU by default (oneDNN's fused LSTM), CUDA with bf16 autocast when
present, and DistributedDataParallel when started by `torchrun` (WORLD_SIZE > 1), where each rank takes
its own slice of the parallel streams and only rank 0 writes files.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from model.config import ModelConfig
from model.experts import EXPERTS
from model.guard import MemorizationGuard
from model.network import CharLSTM, parameter_count
from model.vocab import AuthorTable
from talklike.errors import UserError
from training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from training.corpus import Message
from training.dataset import (
    build_vocab_and_authors,
    corpus_summary,
    encode_corpus,
    fit_batch_size,
    guard_texts,
    split_messages,
    spoken,
)
from training.expert_steps import ExpertSteps, fit_experts
from training.loop import Run, TrainLoop
from training.loop_state import LoopState
from training.processes import DistInfo, process_group, resolve_device
from training.run_files import (
    MetricsLog,
    experts_path,
    load_messages,
    plot_losses,
    prepare_run_dir,
    write_bytes_atomic,
    write_json,
)
from training.train_config import TrainConfig, TrainResult
from training.train_step import TrainStep, make_optimizer

Say = Callable[..., None]


def train(config: TrainConfig, resume: bool = False, should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Train (or resume) the run `config.run_dir` on `config.corpus`; see TrainConfig for the knobs.

    `should_stop(step)` is asked after every step; True stops like Ctrl-C does (checkpoint, clean exit).
    """
    dist = DistInfo.from_env()
    device = resolve_device(config.device, dist)
    with process_group(dist, device):
        return _train(config, resume, should_stop, dist, device)


@dataclass
class _Corpus:
    """The corpus's messages as the run split them (data.json and the guard describe them)."""

    messages: list[Message]
    train: list[Message]
    val: list[Message]


def _train(config: TrainConfig, resume: bool, should_stop: Callable[[int], bool] | None, dist: DistInfo,
           device: torch.device) -> TrainResult:
    say: Say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if dist.main and not config.quiet else (lambda *a: None)
    run, corpus = _prepare(config, resume, dist, device, say)
    if resume:
        state = _resume(run)
        say(f"resuming {config.run_dir} at step {state.step} (epoch {state.epoch}, chunk {state.chunk})")
    else:
        state = LoopState()
        state.elapsed = run.experts_seconds  # counting is training time too: --max-minutes covers both
        if dist.main:
            _describe_run(run, corpus)
    if dist.distributed:
        # Different dropout masks per rank; the weights were already made identical above.
        torch.manual_seed(config.seed * 7919 + dist.rank + state.step)
    train_model: nn.Module = run.model
    if dist.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.type == "cuda" else None)
    train_step = TrainStep(train_model, run.optimizer, config, run.model_config, device)
    metrics = MetricsLog(config.run_dir)
    loop = TrainLoop(run, train_step, state, metrics, resumed=resume, should_stop=should_stop)
    say(f"training {config.preset} ({parameter_count(run.model):,} parameters) on {device}"
        f"{f' × {dist.world_size} processes' if dist.distributed else ''}: {len(run.train_stream):,} training "
        f"steps of stream, {len(run.val_stream):,} held out, {len(run.authors) - 1} personas, "
        f"vocabulary {len(run.vocab)}")
    if not len(run.val_stream):
        say("note: nothing is held out (conversations too short); best checkpoint = last")
    if dist.main:
        metrics.open(resume_step=state.step if resume else None)
    try:
        reason = loop.run_until_stopped()
        loop.finish(reason)
    finally:
        metrics.close()
    rows = _conclude(run, loop, reason, metrics, say) if dist.main else []
    return TrainResult(config.run_dir, state.step, state.best_val_bpc, state.best_step, reason,
                       loop.progress.chars_per_s, rows)


def _prepare(config: TrainConfig, resume: bool, dist: DistInfo, device: torch.device,
             say: Say) -> tuple[Run, _Corpus]:
    """Read, split and encode the corpus (checked before anything is written: a bad corpus leaves no empty run
    directory behind), create the run directory, and build the model and optimizer."""
    messages = load_messages(config.corpus)
    train_messages, val_messages = split_messages(messages, config.val_fraction)
    vocab, authors = build_vocab_and_authors(messages, config.min_author_messages, config.personas,
                                             config.min_char_count, config.max_personas)
    if len(authors) < 2:
        raise UserError(f"{config.corpus}: no author has {config.min_author_messages} messages; "
                        "lower --min-author-messages or name --personas")
    if dist.main:
        prepare_run_dir(config.run_dir, resume)
    dist.barrier()
    say(persona_rule(config, Counter(m.author for m in spoken(messages)), authors))
    names = bool(config.ngram_order and config.names_expert)
    train_stream = encode_corpus(train_messages, vocab, authors, config.session_gap, names=names)
    val_stream = encode_corpus(val_messages, vocab, authors, config.session_gap, names=names)
    batch_size = fit_batch_size(len(train_stream), config.batch_size, config.seq_len, dist.world_size)
    if batch_size != config.batch_size:
        say(f"note: the corpus is small; using {batch_size} parallel streams instead of {config.batch_size}")

    experts = expert_steps = val_expert_steps = None
    seconds = 0.0
    if config.ngram_order:
        experts, seconds = fit_experts(train_messages, vocab, authors, config.ngram_order)
        say(f"counted {config.ngram_order}-grams of the training part in {seconds:.1f} s (the n-gram experts)")
        expert_steps = ExpertSteps(experts, train_stream, counted=True)
        val_expert_steps = ExpertSteps(experts, val_stream, counted=False)
        if dist.main:
            write_bytes_atomic(experts_path(config.run_dir), experts.to_bytes())

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    overrides = {} if config.dropout is None else {"dropout": config.dropout}
    if experts is not None:
        overrides["experts"] = EXPERTS + (1 if names else 0)  # the names expert's gate
    model_config = ModelConfig.from_preset(config.preset, len(vocab), len(authors), **overrides)
    model = CharLSTM(model_config).to(device)
    optimizer = make_optimizer(model, config, device)
    activity = Counter(authors.id_of(m.author) for m in spoken(train_messages))
    ranked = sorted(range(1, len(authors)), key=lambda i: (-activity[i], i))  # most training messages first
    run = Run(config, dist, device, model, optimizer, model_config, vocab, authors, train_stream, val_stream,
              batch_size, train_stream.fingerprint(), ranked, experts, expert_steps, val_expert_steps, seconds)
    return run, _Corpus(messages, train_messages, val_messages)


def _resume(run: Run) -> LoopState:
    """Load last.pt into the model and optimizer after checking it belongs to this corpus and preset; its loop
    state, with the random state put back."""
    config, run_dir = run.config, run.config.run_dir
    ckpt = load_checkpoint(checkpoint_path(run_dir, "last"), map_location="cpu")
    if ckpt["vocab"] != run.vocab.to_dict() or ckpt["authors"] != run.authors.to_dict():
        raise UserError(f"{run_dir}: the checkpoint's vocabulary or authors do not match {config.corpus}; "
                        "resume with the corpus the run started on, or start a new run")
    if ckpt.get("data_fingerprint") != run.fingerprint:
        raise UserError(f"{run_dir}: {config.corpus} is not the corpus this run was trained on "
                        "(its messages changed); start a new run")
    if ckpt["model_config"] != run.model_config.to_dict():
        raise UserError(f"{run_dir}: the checkpoint's model config differs from --preset {config.preset}")
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    state = LoopState.from_dict(ckpt["loop"], run.dist, run.batch_size, run.device)
    state.restore_rng(run.device)
    return state


def _describe_run(run: Run, corpus: _Corpus) -> None:
    """config.json, data.json and guard.bin: what a new run trains, on what, and the memorization guard."""
    config = run.config
    write_json(os.path.join(config.run_dir, "config.json"), {
        "train": config.to_dict(),
        "model": run.model_config.to_dict(),
        "batch_size_per_process": run.batch_size,  # after any shrinking for a small corpus
        "effective_batch_size": run.batch_size * run.dist.world_size,  # streams trained on together
        "world_size": run.dist.world_size,
        "parameters": parameter_count(run.model),
    })
    summary = corpus_summary(corpus.messages, run.authors, corpus.train, corpus.val)
    summary["corpus"] = os.path.basename(config.corpus)
    write_json(os.path.join(config.run_dir, "data.json"), summary)
    guard = MemorizationGuard.build(guard_texts(corpus.messages), n=config.guard_n)
    with open(os.path.join(config.run_dir, "guard.bin.tmp"), "wb") as out:
        out.write(guard.to_bytes())
    os.replace(os.path.join(config.run_dir, "guard.bin.tmp"), os.path.join(config.run_dir, "guard.bin"))


def persona_rule(config: TrainConfig, counts: Counter, authors: AuthorTable) -> str:
    """The line `talklike train` says about who became a persona, by which rule, and how to change it."""
    n = len(authors) - 1
    if config.personas:
        return f"personas: {n}, named with --personas; everyone else reads as ⟨other⟩"
    frequent = sum(1 for name, k in counts.items() if k >= config.min_author_messages and name != AuthorTable.OTHER)
    rare = len(counts) - frequent
    rarer = f"{rare:,} rarer author{'s' if rare != 1 else ''}"
    if n < frequent:
        return (f"personas: the {n:,} most active of {frequent:,} authors with at least {config.min_author_messages} "
                f"messages; the other {frequent - n:,}{f' and {rarer}' if rare else ''} read as ⟨other⟩ "
                f"(--max-personas N changes the cap, 0 for all; --min-author-messages N the threshold; "
                f"--personas A,B names them)")
    folded = f"{rarer} read{'s' if rare == 1 else ''} as ⟨other⟩" if rare else "nobody is folded"
    return (f"personas: {n:,}, every author with at least {config.min_author_messages} messages; {folded} "
            f"(--min-author-messages N changes the threshold; --personas A,B names them)")


def _conclude(run: Run, loop: TrainLoop, reason: str, metrics: MetricsLog, say: Say) -> list[dict]:
    """On rank 0 after the loop: best.pt exists, loss.png, the closing line; the rows of metrics.jsonl."""
    state = loop.state
    run_dir = run.config.run_dir
    if not os.path.exists(checkpoint_path(run_dir, "best")) and os.path.exists(checkpoint_path(run_dir, "last")):
        save_checkpoint(checkpoint_path(run_dir, "best"), load_checkpoint(checkpoint_path(run_dir, "last")))
    rows = metrics.rows()
    if reason != "interrupted":
        if plot_losses(run_dir, rows) is None:
            say("note: matplotlib is not installed; skipped loss.png (pip install 'talklike[train]')")
        best = "-" if state.best_val_bpc is None else f"{state.best_val_bpc:.3f} bpc at step {state.best_step}"
        session = time.monotonic() - loop.started
        say(f"done ({reason.replace('_', ' ')}): {state.step} steps, best validation {best}; "
            f"evaluations took {loop.eval_seconds:.1f} s of {session:.1f} s "
            f"({100 * loop.eval_seconds / max(session, 1e-9):.0f}%); next: talklike export {run_dir} -o model.pt")
    return rows
