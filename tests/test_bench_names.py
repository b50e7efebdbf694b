"""benchmarks/bench_names.py: the recent speakers' names predictor it measures, and the run end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np

from training.corpus import Message, write_corpus

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_names.py"


def message(author: str, text: str, conversation: str) -> Message:
    return Message(conversation=conversation, platform="csv", author=author, author_id=None, timestamp=None, text=text)


def bench():
    spec = importlib.util.spec_from_file_location("bench_names", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_names_continue_the_word_typed_weighted_by_recency():
    names = ["bob", "bea", "al"]  # most recent first: weights 1, 1/2, 1/3
    q, first = bench().name_probabilities("be: hi al", names, first_word_only=False)
    offered = 1 + 1 / 2 + 1 / 3
    assert q[0] == (1 + 1 / 2) / offered and first[0]  # 'b' opens bob and bea
    assert q[1] == (1 / 2) / (1 + 1 / 2) and not first[1]  # after 'b': bob's 'o' or bea's 'e'
    assert q[2] == 0.0  # "be" continues only as "bea"
    assert math.isnan(q[3])  # no name continues "be:": the predictor abstains
    assert q[4] == 0.0 and first[4]  # no name starts with 'h'
    assert math.isnan(q[5]) and math.isnan(q[6])
    assert q[7] == (1 / 3) / offered and q[8] == 1.0  # "al", at a later word
    q_first, _ = bench().name_probabilities("be: hi al", names, first_word_only=True)
    np.testing.assert_array_equal(q_first[:4], q[:4])
    assert np.isnan(q_first[4:]).all()


def test_recent_speakers_are_distinct_most_recent_first_and_never_the_author():
    msgs = [message(a, "x", "c") for a in ("ann", "bob", "ann", "cy", "bob")]
    recent = bench().recent_speakers(msgs, limit=5)
    assert [recent[id(m)] for m in msgs] == [[], ["ann"], ["bob"], ["ann", "bob"], ["cy", "ann"]]
    known = bench().recent_speakers(msgs, limit=5, known={"ann", "bob"})  # cy is no persona: not named
    assert [known[id(m)] for m in msgs] == [[], ["ann"], ["bob"], ["ann", "bob"], ["ann"]]


def test_the_benchmark_runs_on_a_corpus(tmp_path, capsys):
    rng = random.Random(1)
    people = ["alice", "bobby", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    msgs, previous = [], None
    for i in range(600):
        author = rng.choice([p for p in people if p != previous])
        # every other message answers the one before: its opening name is the previous speaker's
        text = f"{previous}: " + rng.choice(["how are you", "fine thanks", "see you later"]) if i % 2 else "hello all"
        msgs.append(message(author, text, f"c{i // 200}"))
        previous = author
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, msgs)
    assert bench().main([str(corpus), "--json", "--order", "4"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["first_word"]["gain_bpc"] > 0.02  # half the messages open with the previous speaker's name
    assert figures["any_word"]["bpc"] <= figures["ngram_bpc"]
