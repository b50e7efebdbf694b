"""Self-attribution at scale: candidate sets, and scoring in passes that stay bounded at thousands of personas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.attribution import author_bits, message_bits, read_context
from model.config import ModelConfig
from model.network import CharLSTM
from model.vocab import AuthorTable, Vocabulary
from training.corpus import Message
from training.evaluation.held_out import HeldOut, Item
from training.evaluation.self_attribution import candidate_ids
from training.style_classifier import StyleClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_few_personas_are_all_candidates_and_many_get_a_fixed_mixed_set():
    names = [f"p{i}" for i in range(500)]
    authors = AuthorTable(names)
    # one conversation where p1..p5 talk around message 50, written by p7
    conv = [Message("c", "x", f"p{1 + i % 5}", None, 1e9 + i, "hi") for i in range(100)]
    conv[50] = Message("c", "x", "p7", None, 1e9 + 50, "hello")
    held = HeldOut([conv], [Item(0, 50)], authors, 3600.0)
    true_id = authors.id_of("p7")
    few = [authors.id_of(n) for n in ("p7", "p2", "p9")]
    assert candidate_ids(held, held.items[0], true_id, few, 64, np.random.default_rng(0)) == sorted(few)

    eligible = list(range(1, len(authors)))
    chosen = candidate_ids(held, held.items[0], true_id, eligible, 16, np.random.default_rng(0))
    assert len(chosen) == 16 == len(set(chosen)) and chosen == sorted(chosen)
    assert true_id in chosen
    assert {authors.id_of(f"p{i}") for i in range(1, 6)} <= set(chosen)  # the people speaking around it
    again = candidate_ids(held, held.items[0], true_id, eligible, 16, np.random.default_rng(0))
    assert again == chosen  # seeded
    other = candidate_ids(held, held.items[0], true_id, eligible, 16, np.random.default_rng(1))
    assert other != chosen  # the distractors beyond the nearby speakers are a sample


def test_bounded_passes_give_the_same_bits_as_one_pass():
    torch.manual_seed(0)
    vocab = Vocabulary.build(["hello there, how are you?", "fine thanks"])
    model = CharLSTM(ModelConfig.from_preset("tiny", len(vocab), 3000)).eval()
    context = [(5, "hello there", True), (17, "how are you?", False)] * 4
    text = "fine thanks, and you? " * 6
    candidates = list(range(0, 3000, 7))
    whole = message_bits(model, vocab, read_context(model, vocab, context)[:2], text, candidates, False,
                         logit_bytes=1 << 40)
    # a pass of a few hundred (row, step) positions: one candidate at a time, the message in pieces
    state = read_context(model, vocab, context, logit_bytes=4 * (2 * len(vocab) + 3000) * 50)
    pieces = message_bits(model, vocab, state[:2], text, candidates, False,
                          logit_bytes=4 * (2 * len(vocab) + 3000) * 50)
    assert torch.allclose(whole, pieces, rtol=1e-4)
    bits, prior = author_bits(model, vocab, text, candidates, context, session=False)
    assert torch.allclose(bits, whole, rtol=1e-4) and prior.shape == (len(candidates),) and bool((prior > 0).all())
    assert author_bits(model, vocab, text, candidates[:3])[1] is None  # no context: no speaker prior


def test_classifier_sparse_table_is_naive_bayes():
    # The sparse table gives exactly the dense multinomial naive Bayes log-likelihoods.
    from training.style_classifier import ngram_ids

    texts = ["hello there", "hi", "hello hello", "what's up", "yo", "hey there"]
    labels = ["A", "B", "A", "C", "B", "C"]
    clf = StyleClassifier(bits=10).fit(texts, labels)
    size = 1 << 10
    dense = np.zeros((3, size))
    for text, label in zip(texts, labels, strict=True):
        dense["ABC".index(label)] += np.bincount(ngram_ids(text, 4, 10), minlength=size)
    log_prob = np.log(dense + 0.1) - np.log((dense + 0.1).sum(axis=1, keepdims=True))
    probe = ["hello you", "yo yo", "there"]
    expected = np.array([[log_prob[c, ngram_ids(t, 4, 10)].sum() - np.log(3) for c in range(3)] for t in probe])
    assert np.allclose(clf.scores(probe), expected)
    # per-text candidate sets, and a shared restriction
    rows = np.array([[2, 0], [1, 2], [0, 1]])
    assert np.allclose(clf.log_likelihoods(probe, rows), np.take_along_axis(expected, rows, axis=1))
    assert clf.predict(["hello"], among=["B", "C"])[0] in {"B", "C"}
