"""Copy rate: generated replies that repeat training text, with the memorization guard off and on."""

from __future__ import annotations

import random

import pytest

from model.guard import MemorizationGuard
from training.corpus import Message, write_corpus
from training.evaluation import evaluate
from training.evaluation.copy_rate import copy_rate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECRET = "the door code is 7781 and the key is under the mat"
OTHER = "meet me at the station tomorrow morning"


def test_guard_on_resamples_then_cuts_and_the_detector_reads_the_result():
    training = [SECRET, OTHER, "ok"]
    detector = MemorizationGuard.build(training)
    replies = [f"well {SECRET} see you", "fine by me", OTHER.upper()]
    fresh = {0: ["still: " + SECRET, "nothing to copy here"], 2: [OTHER, OTHER, OTHER]}

    def regenerate(i, attempt):
        return fresh[i][min(attempt, len(fresh[i])) - 1]

    rate = copy_rate(replies, regenerate, detector, detector, retries=3)
    assert rate.unguarded == pytest.approx(2 / 3)  # the secret inside a reply, and a whole message (case aside)
    assert rate.guarded == 0.0
    assert (rate.replies, rate.resampled, rate.cut) == (3, 2, 1)  # reply 2 kept copying: cut to nothing


def test_a_stale_guard_shows_as_a_copy_rate_above_zero():
    detector = MemorizationGuard.build([SECRET, OTHER])
    stale = MemorizationGuard.build([OTHER])  # shipped before SECRET was in the training text
    rate = copy_rate([SECRET, "hello"], lambda i, attempt: SECRET, detector, stale)
    assert rate.guarded == 0.5 and rate.resampled == 0


def test_without_a_guard_on_equals_off():
    detector = MemorizationGuard.build([SECRET])
    rate = copy_rate([SECRET, "hi"], lambda i, attempt: "", detector, None)
    assert rate.unguarded == rate.guarded == 0.5 and rate.guard == "none"
    assert copy_rate([], lambda i, attempt: "", detector, detector).guarded is None


CATCHPHRASES = {"Ada": "honestly the best pancakes are at the corner cafe lol",
                "Boris": "WHO LEFT THE WINDOW OPEN AGAIN IN THE KITCHEN!!!"}


def test_evaluate_reports_the_copy_rate_of_a_model_that_memorized(tmp_path):
    """A tiny model trained on people who mostly repeat one line copies it; the guard holds every copy back."""
    from training.train_config import TrainConfig
    from training.trainer import train

    rng = random.Random(5)
    messages = []
    for conv in range(3):
        for i in range(120):
            author = rng.choice(sorted(CATCHPHRASES))
            text = CATCHPHRASES[author] if rng.random() < 0.8 else rng.choice(["ok", "sure", "hm"])
            messages.append(Message(f"t:{conv}", "test", author, None, 1.6e9 + conv * 1e6 + 60 * i, text))
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, messages)
    run_dir = tmp_path / "run"
    train(TrainConfig(corpus=str(corpus), run_dir=str(run_dir), preset="tiny", max_steps=200, batch_size=8,
                      seq_len=64, lr=1e-2, warmup_steps=10, eval_every=1000, quiet=True, device="cpu"))

    result = evaluate(run_dir, corpus, samples_per_persona=12, temperature=0.5, attribution_messages=0)
    assert result["copy_guard"] == "model"  # the run's guard.bin
    assert result["copy_rate_unguarded"] > 0.3  # the catchphrases come back verbatim
    assert result["copy_rate"] == 0.0
    assert result["counts"]["copy_resampled"] > 0
