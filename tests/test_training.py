"""training/: split, stream, batches, the training loop (overfit, resume, stop), bad inputs, export."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model.artifact import load_artifact
from model.vocab import AuthorTable, Vocabulary
from talklike.cli import main as talklike_main
from talklike.errors import UserError
from training.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
from training.corpus import Message, write_corpus
from training.dataset import (
    IGNORE,
    build_vocab_and_authors,
    encode_corpus,
    encode_stream,
    split_messages,
    streams_for_epoch,
)
from training.export import export_run
from training.run_files import load_run_experts
from training.train_config import TrainConfig
from training.trainer import train

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0
STYLES = {
    "Alice": ["hey!! 😂 see u at 8", "lol ok 😂😂", "omg yes!!", "noooo 😂"],
    "Bob": ["Certainly. I will be there.", "Good evening, all.", "Indeed; quite so.", "Thank you, Alice."],
    "Carl": ["k", "sure thing mate", "nah mate", "k k"],
}


def chat(n: int = 240, conversations: int = 3, seed: int = 0) -> list[Message]:
    """A small multi-person chat where each author has a fixed repertoire (easy to overfit)."""
    rng = random.Random(seed)
    messages = []
    t = 1_600_000_000.0
    for conv in range(conversations):
        for _ in range(n // conversations):
            author = rng.choice(list(STYLES))
            t += rng.choice([40.0, 90.0, 300.0, 9 * HOUR])
            messages.append(Message(f"test:{conv}", "test", author, None, t, rng.choice(STYLES[author])))
    return messages


def write_chat(path: Path, **kwargs) -> Path:
    write_corpus(path, chat(**kwargs))
    return path


def config_for(corpus: Path, run_dir: Path, **overrides) -> TrainConfig:
    settings = dict(corpus=str(corpus), run_dir=str(run_dir), preset="tiny", batch_size=8, seq_len=32,
                    max_steps=40, eval_every=20, log_every=5, min_author_messages=5, lr=1e-2, quiet=True,
                    preview_samples=1, preview_chars=40)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, object]:
    """One tiny run shared by the tests that only read its results."""
    base = tmp_path_factory.mktemp("trained")
    corpus = write_chat(base / "corpus.jsonl", n=300)
    result = train(config_for(corpus, base / "run", max_steps=240, eval_every=60))
    return corpus, base / "run", result


# ---------------------------------------------------------------------------------------------------
# split and stream


def test_split_holds_out_the_latest_messages_of_each_conversation():
    messages = chat(n=90, conversations=3)
    train_part, val_part = split_messages(messages, 0.2)
    assert len(train_part) + len(val_part) == 90 and len(val_part) == 18
    for conv in {m.conversation for m in messages}:
        trained = [m.timestamp for m in train_part if m.conversation == conv]
        held = [m.timestamp for m in val_part if m.conversation == conv]
        assert len(held) == 6 and max(trained) < min(held)
    assert all(any(v is m for m in messages) for v in val_part)  # the same objects, matchable by identity
    single = [Message("c:1", "test", "A", None, 1.0, "hi")]
    assert split_messages(single, 0.5) == (single, [])


def test_stream_sessions_and_speaker_targets():
    t = 1_000_000.0
    messages = [
        Message("a", "t", "Alice", None, t, "hi"),
        Message("a", "t", "Bob", None, t + 60, "yo"),
        Message("a", "t", "Bob", None, t + 60, ""),  # a photo without caption takes no steps
        Message("a", "t", "Alice", None, t + 10 * HOUR, "back"),  # long gap: a new session
        Message("b", "t", "Zed", None, t + 11 * HOUR, "x"),  # new conversation: a new session
    ]
    vocab, authors = build_vocab_and_authors(messages, min_author_messages=1)
    a, b, z = authors.id_of("Alice"), authors.id_of("Bob"), authors.id_of("Zed")
    stream = encode_corpus(messages, vocab, authors)
    S, B, E = Vocabulary.SESSION, Vocabulary.BOS, Vocabulary.EOS
    enc = vocab.encode
    assert stream.chars.tolist() == [S, B, *enc("hi"), E, B, *enc("yo"), E, S, B, *enc("back"), E, S, B, *enc("x"), E]
    assert stream.authors.tolist() == [a] * 5 + [b] * 4 + [a] * 7 + [z] * 4
    speakers = stream.speaker_targets.tolist()
    eos = [i for i, ch in enumerate(stream.chars.tolist()) if ch == E]
    assert [speakers[i] for i in eos] == [b, IGNORE, IGNORE, IGNORE]  # Bob answered; then a break, a break, the end
    assert all(speakers[i] == IGNORE for i in range(len(speakers)) if i not in eos)


def test_author_dropout_replaces_whole_messages():
    messages = chat(n=60, conversations=1)
    vocab, authors = build_vocab_and_authors(messages, min_author_messages=1)
    chars, who, _ = encode_stream(messages, vocab, authors, author_dropout=0.0)
    assert (who > 0).all()
    _, dropped, _ = encode_stream(messages, vocab, authors, author_dropout=0.5, rng=torch.Generator().manual_seed(0))
    assert 0 < int((dropped == 0).sum()) < len(dropped)
    stream = encode_corpus(messages, vocab, authors)
    for index in range(int(stream.message_index[-1]) + 1):  # per message: all steps kept or all dropped
        assert len(set(dropped[stream.message_index == index].tolist())) == 1
    _, everyone, _ = encode_stream(messages, vocab, authors, author_dropout=1.0, rng=torch.Generator())
    assert (everyone == 0).all()


def test_parallel_streams_are_shifted_and_split_by_rank():
    messages = chat(n=120)
    vocab, authors = build_vocab_and_authors(messages, min_author_messages=1)
    stream = encode_corpus(messages, vocab, authors)
    batches = streams_for_epoch(stream, batch_size=4, seq_len=16, epoch=0, seed=0)
    assert batches.inputs.shape == batches.char_targets.shape == (4, batches.inputs.shape[1])
    assert batches.steps == batches.inputs.shape[1] // 16
    assert torch.equal(batches.inputs[:, 1:], batches.char_targets[:, :-1])
    x, a, y, s = batches.chunk(1)
    assert x.shape == a.shape == y.shape == s.shape == (4, 16)
    ranks = [streams_for_epoch(stream, 2, 16, 0, 0, rank=r, world_size=2).inputs for r in range(2)]
    assert torch.equal(torch.cat(ranks), batches.inputs)
    other_epoch = streams_for_epoch(stream, 4, 16, epoch=1, seed=0)
    assert torch.equal(streams_for_epoch(stream, 4, 16, 0, 0).inputs, batches.inputs)  # depends on (seed, epoch) only
    assert other_epoch.inputs.shape[1] > 0


# ---------------------------------------------------------------------------------------------------
# the loop


def test_tiny_model_overfits_a_small_corpus(trained):
    _, run_dir, result = trained
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    # A few fixed phrases per author: the model must get far below the ~5 bits of a uniform guess. It writes on
    # top of n-gram counts, which (each step left out of its own count) already know most of them.
    assert train_rows[0]["train_bpc"] < 2.0
    assert train_rows[-1]["train_bpc"] < 0.6
    assert result.best_val_bpc is not None and result.best_val_bpc < 0.8
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [60, 120, 180, 240]
    assert set(evals[-1]["val_bpc_by_author"]) == {"Alice", "Bob", "Carl"}
    for name in ("config.json", "data.json", "guard.bin", "experts.npz", "loss.png", "checkpoints/best.pt",
                 "checkpoints/last.pt"):
        assert (run_dir / name).exists(), name
    assert len(list((run_dir / "samples").glob("step_*.txt"))) == 4
    data = json.loads((run_dir / "data.json").read_text())
    assert data["authors"]["Alice"]["messages"] > 0 and data["conversations"] == 3
    assert not [p for p in os.listdir(run_dir / "checkpoints") if p.endswith(".tmp")]


def test_the_network_alone_learns_from_a_uniform_guess(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl", n=300)
    result = train(config_for(corpus, tmp_path / "run", max_steps=160, eval_every=80, ngram_order=0))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert train_rows[0]["train_bpc"] > 2.0 and train_rows[-1]["train_bpc"] < 1.0
    assert result.best_val_bpc is not None and result.best_val_bpc < 1.2
    assert not (tmp_path / "run" / "experts.npz").exists()


def test_trained_personas_write_in_their_own_style(trained):
    _, run_dir, _ = trained
    from model.generation import Generator

    model, vocab, authors = model_from_checkpoint(load_checkpoint(run_dir))
    generator = Generator(model, vocab, authors, experts=load_run_experts(str(run_dir)))
    state = generator.init_state()
    alice = generator.reply(state, authors.id_of("Alice"), n=20, temperature=0.5, max_chars=40, seed=1)
    bob = generator.reply(state, authors.id_of("Bob"), n=20, temperature=0.5, max_chars=40, seed=1)
    # Alice's markers (emoji, "!!", lowercase) against Bob's (capitals, full stops), same seed and state.
    marked = lambda replies: sum("😂" in r or "!!" in r for r in replies)  # noqa: E731
    capital = lambda replies: sum(r[:1].isupper() for r in replies)  # noqa: E731
    assert marked(alice) >= 12 and marked(bob) <= 5
    assert capital(bob) >= 10 and capital(alice) <= 2


def assert_same(a, b, where: str = "checkpoint") -> None:
    """Nested dicts and lists of tensors and plain values, equal to the bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, set(a) ^ set(b))
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def as_format_1(path: Path) -> None:
    """Rewrite a checkpoint as talklike wrote it before format 2: the loop's state at the top level."""
    state = torch.load(path, weights_only=True)
    state.update(state.pop("loop"), format=1)
    torch.save(state, path)


def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl")
    # dropout exercises the saved random state; eval_every puts evaluations before and after each stop
    settings = dict(max_steps=40, eval_every=8, dropout=0.2, author_dropout=0.2, seq_len=16)
    full = train(config_for(corpus, tmp_path / "full", **settings))
    assert full.stop_reason == "max_steps" and full.step == 40
    config = config_for(corpus, tmp_path / "part", **settings)
    last = checkpoint_path(tmp_path / "part", "last")
    stops = []
    for at in (13, 35):  # one stop in each epoch
        part = train(config, resume=bool(stops), should_stop=lambda step, at=at: step == at)
        assert part.stop_reason == "interrupted" and part.step == at
        stops.append(load_checkpoint(last)["loop"])
    first, second = stops
    assert (first["epoch"], first["chunk"]) == (0, 13) and second["epoch"] == 1 and second["chunk"] > 0
    assert first["stream_state"][0].abs().sum() > 0  # mid-epoch, the streams carry state across the stop
    as_format_1(last)  # the last resume also reads a checkpoint written before the loop state was one entry
    rest = train(config, resume=True)
    assert rest.step == 40 and rest.stop_reason == "max_steps"
    assert (rest.best_val_bpc, rest.best_step) == (full.best_val_bpc, full.best_step)

    # The whole last checkpoint matches: weights, optimizer, and the loop state (position, best, streams, random).
    a, b = load_checkpoint(checkpoint_path(tmp_path / "full", "last")), load_checkpoint(last)
    assert b["loop"]["elapsed"] > second["elapsed"] > first["elapsed"] > 0  # training time adds up over sessions
    for checkpoint in (a, b):
        del checkpoint["path"], checkpoint["loop"]["elapsed"], checkpoint["train_config"]["run_dir"]
    assert_same(a, b)
    # So do the evaluations, and the learning rate at every step both runs logged.
    rows = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("full", "part")]
    evals = [[r for r in run if r["kind"] == "eval"] for run in rows]
    assert [r["step"] for r in evals[0]] == [8, 16, 24, 32, 40] and evals[0] == evals[1]
    lrs = [{r["step"]: r["lr"] for r in run if r["kind"] == "train"} for run in rows]
    assert set(lrs[0]) < set(lrs[1]) and all(lrs[1][step] == lr for step, lr in lrs[0].items())


def test_resume_keeps_the_best_and_the_patience(tmp_path):
    # lr 1e-7: validation never improves after its first figure, so the best stays at step 2 and the third
    # evaluation without gain (step 8) stops the run; a resume in between must count on from where it was
    corpus = write_chat(tmp_path / "corpus.jsonl")
    settings = dict(lr=1e-7, eval_every=2, patience=3, max_steps=50)
    full = train(config_for(corpus, tmp_path / "full", **settings))
    assert (full.stop_reason, full.step, full.best_step) == ("early_stop", 8, 2)
    config = config_for(corpus, tmp_path / "part", **settings)
    part = train(config, should_stop=lambda step: step == 5)
    loop = load_checkpoint(checkpoint_path(tmp_path / "part", "last"))["loop"]
    assert (part.stop_reason, loop["best_step"], loop["evals_since_best"]) == ("interrupted", 2, 1)
    rest = train(config, resume=True)
    assert (rest.stop_reason, rest.step, rest.best_step, rest.best_val_bpc) == (
        "early_stop", 8, 2, full.best_val_bpc)


def test_stop_conditions(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl")
    stalled = train(config_for(corpus, tmp_path / "stalled", lr=1e-7, eval_every=1, patience=2, max_steps=50))
    assert stalled.stop_reason == "early_stop" and stalled.step == 3  # best at 1, then two evaluations without gain
    one_epoch = train(config_for(corpus, tmp_path / "epoch", max_steps=None, epochs=1.0, eval_every=1000))
    steps_per_epoch = json.loads((tmp_path / "epoch" / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert one_epoch.stop_reason == "epochs" and one_epoch.step == steps_per_epoch > 5
    timed = train(config_for(corpus, tmp_path / "timed", max_steps=None, max_minutes=0.002, eval_every=1000))
    assert timed.stop_reason == "max_minutes" and timed.step >= 1


def test_resume_refuses_a_different_corpus(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl")
    train(config_for(corpus, tmp_path / "run", max_steps=4))
    changed = chat()
    changed[0].text = "a brand new character: ß"
    write_corpus(tmp_path / "other.jsonl", changed)
    with pytest.raises(UserError, match="vocabulary or authors do not match"):
        train(config_for(tmp_path / "other.jsonl", tmp_path / "run", max_steps=8), resume=True)
    with pytest.raises(UserError, match="already holds a training run"):
        train(config_for(corpus, tmp_path / "run", max_steps=8))


def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "talklike", "train", str(corpus), "-o", str(run_dir), "--preset", "tiny",
               "--max-steps", "100000", "--batch-size", "4", "--seq-len", "16", "--eval-every", "5",
               "--min-author-messages", "5", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(checkpoint_path(run_dir, "last")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "SIGTERM" in err and "--resume" in err
    stopped = load_checkpoint(checkpoint_path(run_dir, "last"))["loop"]["step"]
    assert stopped >= 5
    assert talklike_main(["train", str(corpus), "-o", str(run_dir), "--resume", "--max-steps", str(stopped + 3),
                          "--quiet"]) == 0
    assert load_checkpoint(checkpoint_path(run_dir, "last"))["loop"]["step"] == stopped + 3


# ---------------------------------------------------------------------------------------------------
# bad input


def corpus_with(path: Path, messages: list[Message]) -> Path:
    write_corpus(path, messages)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("empty", "the corpus is empty"),
        ("one_author", "one author (Alice)"),
        ("unknown_persona", "persona(s) not in the corpus: Zed"),
        ("unwritable", "cannot write the run directory"),
        ("not_a_corpus", "not valid JSON"),
        ("binary", "not UTF-8"),
        ("missing", "cannot read corpus"),
        ("bad_dropout", "--dropout must be in [0, 1)"),
        ("zero_steps", "--max-steps must be at least 1"),
    ],
)
def test_bad_inputs_fail_with_one_clear_line(tmp_path, capsys, case, expected):
    corpus = tmp_path / "corpus.jsonl"
    run_dir = tmp_path / "run"
    extra: list[str] = []
    if case == "empty":
        corpus.write_text("")
    elif case == "one_author":
        corpus_with(corpus, [m for m in chat() if m.author == "Alice"])
    elif case == "unknown_persona":
        write_chat(corpus)
        extra = ["--personas", "Alice,Zed"]
    elif case == "unwritable":
        write_chat(corpus)
        blocker = tmp_path / "file"
        blocker.write_text("x")
        run_dir = blocker / "run"
    elif case == "not_a_corpus":
        corpus.write_text("Alice: hi\nBob: hello\n")
    elif case == "binary":
        corpus.write_bytes(b"\xff\xfe\x00\x01garbage")
    elif case == "missing":
        corpus = tmp_path / "nope.jsonl"
    elif case == "bad_dropout":
        extra = ["--dropout", "1.5"]
    elif case == "zero_steps":
        extra = ["--max-steps", "0"]
    code = talklike_main(["train", str(corpus), "-o", str(run_dir), "--preset", "tiny", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_personas_choose_the_author_table(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl")
    result = train(config_for(corpus, tmp_path / "run", personas=["Bob", "Alice"], max_steps=4))
    _, _, authors = model_from_checkpoint(load_checkpoint(result.run_dir))
    assert authors.names == [AuthorTable.OTHER, "Bob", "Alice"]  # Carl reads as ⟨other⟩


# ---------------------------------------------------------------------------------------------------
# export and info


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_export_round_trip(trained, tmp_path, quantize):
    _, run_dir, _ = trained
    out = tmp_path / "model.pt"
    result = export_run(str(run_dir), str(out), quantize=quantize)
    assert result.size_bytes == out.stat().st_size
    artifact = load_artifact(out)
    model, vocab, authors = model_from_checkpoint(load_checkpoint(run_dir))
    assert artifact.vocab == vocab and artifact.authors == authors and artifact.quantized == quantize
    assert artifact.personas == authors.names[1:]
    card = artifact.card
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = min((r for r in evals if r.get("kind") == "eval"), key=lambda r: r["val_bpc"])
    assert card["preset"] == "tiny" and card["parameters"] > 0 and card["step"] == best["step"]  # the best checkpoint
    assert card["metrics"]["best_val_bpc"] == pytest.approx(best["val_bpc"])
    assert card["authors"]["Alice"]["messages"] > 0 and card["metrics"]["val_bpc"] is not None
    assert artifact.guard is not None
    chars = torch.tensor([[Vocabulary.BOS, *vocab.encode("omg yes!!")]])
    who = torch.full_like(chars, authors.id_of("Alice"))
    with torch.no_grad():
        expected = model(chars, who, *model.init_state(1))[0].softmax(-1)
        got = artifact.module(chars, who, *artifact.module.init_state(1))[0].softmax(-1)
    if quantize is None:
        assert (expected - got).abs().max() < 1e-5 and result.max_logit_diff < 1e-4
        # golden: one seed, the same text from the file as from the checkpoint
        from model.generation import Generator

        replies = []
        for module in (model, artifact.module):
            generator = Generator(module, vocab, authors, experts=artifact.experts)
            state = generator.feed(generator.init_state(), authors.id_of("Bob"), "Good evening, all.", session=True)
            replies.append(generator.reply(state, authors.id_of("Alice"), n=4, temperature=0.9, seed=11))
        assert replies[0] == replies[1]
    else:
        distance = 0.5 * (expected - got).abs().sum(-1)  # total variation per step
        assert 0 < distance.mean() < 0.05 and 0 < result.mean_tv < 0.05


def test_guard_in_the_export_knows_long_training_messages(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    long_message = "this is a long message that somebody typed once and must never be repeated verbatim"
    messages = chat()
    messages[5].text = long_message
    write_corpus(corpus, messages)
    train(config_for(corpus, tmp_path / "run", max_steps=2))
    export_run(str(tmp_path / "run"), str(tmp_path / "model.pt"))
    guard = load_artifact(tmp_path / "model.pt").guard
    assert guard.contains_memorized("so: " + long_message[10:75])
    assert not guard.contains_memorized("hey!! 😂 see u at 8 " * 5)


def test_export_and_info_commands(trained, tmp_path, capsys):
    _, run_dir, _ = trained
    out = tmp_path / "model.pt"
    assert talklike_main(["export", str(run_dir), "-o", str(out), "--quantize", "int8"]) == 0
    assert "int8" in capsys.readouterr().out
    import argparse

    from talklike import info_command

    parser = argparse.ArgumentParser()
    info_command.register(parser.add_subparsers())
    args = parser.parse_args(["info", str(out), "--json"])
    assert args.handler(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(info["personas"]) == ["Alice", "Bob", "Carl"]
    assert info["quantized"] == "int8" and info["card"]["preset"] == "tiny"
    args = parser.parse_args(["info", str(out)])
    assert args.handler(args) == 0
    assert "Alice" in capsys.readouterr().out
    (tmp_path / "notes.txt").write_text("not a model")
    args = parser.parse_args(["info", str(tmp_path / "notes.txt")])
    with pytest.raises(UserError, match="not a talklike model file"):
        args.handler(args)
    assert talklike_main(["export", str(tmp_path / "nowhere"), "-o", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_loss_plot_is_skipped_without_matplotlib(tmp_path, monkeypatch):
    from training.run_files import plot_losses

    rows = [{"kind": "train", "step": 1, "train_bpc": 3.0}, {"kind": "eval", "step": 1, "val_bpc": 3.1}]
    assert plot_losses(str(tmp_path), rows) == str(tmp_path / "loss.png")
    (tmp_path / "loss.png").unlink()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert plot_losses(str(tmp_path), rows) is None
    assert not (tmp_path / "loss.png").exists()


def test_the_same_command_under_torchrun(tmp_path):
    """Two CPU processes (gloo): each takes its own streams, rank 0 alone writes the run."""
    import socket

    corpus = write_chat(tmp_path / "corpus.jsonl")
    run_dir = tmp_path / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               "--master_addr=127.0.0.1", "-m", "talklike", "train", str(corpus), "-o", str(run_dir),
               "--preset", "tiny", "--max-steps", "6", "--batch-size", "2", "--seq-len", "16", "--eval-every", "3",
               "--min-author-messages", "5", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    last = load_checkpoint(checkpoint_path(run_dir, "last"))
    assert last["loop"]["step"] == 6 and last["world_size"] == 2
    assert last["loop"]["stream_state"][0].shape[1] == 4  # both ranks' streams, gathered
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["world_size"], config["batch_size_per_process"], config["effective_batch_size"]) == (2, 2, 4)
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if r["kind"] == "eval"] == [3, 6]
