"""Training on corpora with many authors: who becomes a persona, bounded previews and per-author figures, and
validation held to a share of a time budget."""

from __future__ import annotations

import json
import random

from test_training import HOUR, config_for, write_chat

from talklike.cli import main as talklike_main
from training.checkpoint import checkpoint_path, load_checkpoint
from training.corpus import Message, write_corpus
from training.dataset import build_vocab_and_authors
from training.train_config import TrainConfig
from training.trainer import train


def crowd(path, people: int = 30, seed: int = 0):
    """A channel where author k writes in proportion to (people - k + 10): n00 the most, n29 the least."""
    rng = random.Random(seed)
    names = [f"n{k:02d}" for k in range(people)]
    weights = [people - k + 10 for k in range(people)]
    t = 1.6e9
    messages = []
    for i in range(1500):
        t += rng.choice([30.0, 60.0, 2 * HOUR])
        author = rng.choices(names, weights)[0]
        messages.append(Message(f"irc:{i // 500}", "irc", author, None, t, rng.choice(["ok", "hi all", "lol no"])))
    write_corpus(path, messages)
    return path, names


def test_max_personas_keeps_the_most_active(tmp_path):
    path, names = crowd(tmp_path / "crowd.jsonl")
    from training.corpus import read_corpus

    messages = list(read_corpus(str(path)))
    _, everyone = build_vocab_and_authors(messages, min_author_messages=5)
    _, capped = build_vocab_and_authors(messages, min_author_messages=5, max_personas=4)
    assert capped.personas == everyone.personas[:4] and len(everyone.personas) > 4
    assert TrainConfig(max_personas=0).max_personas is None  # 0: no cap
    assert TrainConfig().max_personas == 200
    # a run configured before the cap existed kept every frequent author, and resumes so
    assert TrainConfig.from_dict({"preset": "tiny"}).max_personas is None


def test_train_says_who_became_a_persona(tmp_path, capsys):
    path, _ = crowd(tmp_path / "crowd.jsonl")
    args = ["train", str(path), "--preset", "tiny", "--max-steps", "2", "--batch-size", "4", "--seq-len", "16",
            "--min-author-messages", "5"]
    assert talklike_main([*args, "-o", str(tmp_path / "capped"), "--max-personas", "4"]) == 0
    err = capsys.readouterr().err
    assert "personas: the 4 most active of 30 authors with at least 5 messages" in err
    assert "--max-personas N" in err and "--personas A,B" in err
    assert talklike_main([*args, "-o", str(tmp_path / "all"), "--max-personas", "0"]) == 0
    assert "personas: 30, every author with at least 5 messages; nobody is folded" in capsys.readouterr().err
    assert talklike_main([*args, "-o", str(tmp_path / "named"), "--personas", "n03,n07"]) == 0
    assert "personas: 2, named with --personas" in capsys.readouterr().err


def test_previews_and_metrics_name_the_most_active_personas(tmp_path):
    path, names = crowd(tmp_path / "crowd.jsonl")
    run_dir = tmp_path / "run"
    train(config_for(path, run_dir, max_steps=4, eval_every=4, max_personas=None, preview_personas=3,
                     report_personas=5))
    [samples] = (run_dir / "samples").glob("step_*.txt")
    text = samples.read_text(encoding="utf-8")
    assert text.count("\n## ") == 3 and "the 3 most active of 30 personas" in text
    assert "## n00" in text and "## n29" not in text
    [row] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    named = set(row["val_bpc_by_author"]) - {"⟨rest⟩", "⟨other⟩"}
    assert len(named) <= 5 and named <= {f"n{k:02d}" for k in range(8)}  # the most active (give or take ties)
    assert "⟨rest⟩" in row["val_bpc_by_author"]


def test_a_timed_run_fixes_its_validation_steps_within_its_share(tmp_path):
    corpus = write_chat(tmp_path / "corpus.jsonl", n=600)
    # val_share 0: validation reads only the short probe it measures its speed on, the same at every evaluation
    result = train(config_for(corpus, tmp_path / "run", max_steps=12, eval_every=4, max_minutes=30, val_share=0.0,
                              val_max_steps=10_000, seq_len=8))
    assert result.step == 12
    rows = [r for r in result.metrics if r["kind"] == "eval"]
    loop = load_checkpoint(checkpoint_path(tmp_path / "run", "last"))["loop"]
    assert loop["val_steps"] == 16 * 8 * 2  # the probe: 16 streams × seq_len × 2 chunks
    assert len(rows) == 3 and {r["val_steps"] for r in rows} <= {loop["val_steps"]}
    # a generous share reads the whole held-out stream (capped by val_max_steps)
    generous = train(config_for(corpus, tmp_path / "generous", max_steps=4, eval_every=4, max_minutes=30,
                                val_share=1.0, seq_len=8))
    untimed = train(config_for(corpus, tmp_path / "untimed", max_steps=4, eval_every=4, seq_len=8))
    last = [r for r in generous.metrics if r["kind"] == "eval"][-1]
    assert last["val_steps"] == [r for r in untimed.metrics if r["kind"] == "eval"][-1]["val_steps"]
