"""The character n-gram baseline: a proper distribution, the textbook formulas, and what an author is worth."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from model.vocab import AuthorTable, Vocabulary
from training.corpus import Message
from training.dataset import build_vocab_and_authors, split_messages
from training.ngram_baseline import CountModel, Framed, fit_baseline

TEXTS = ["hello world", "hello there", "help me", "the world is here", "where is the hello", "oh well", "hello"]


def framed(texts: list[str], vocab: Vocabulary, author_ids: list[int] | None = None) -> Framed:
    return Framed.build([vocab.encode(t) for t in texts], author_ids or [0] * len(texts))


@pytest.mark.parametrize("method", ["kn", "wb"])
@pytest.mark.parametrize("order", [1, 3, 5])
@pytest.mark.parametrize("by_author", [False, True])
def test_probabilities_sum_to_one_over_the_vocabulary(method, order, by_author):
    vocab = Vocabulary.build(TEXTS)
    train = framed(TEXTS, vocab, [i % 2 for i in range(len(TEXTS))])
    model = CountModel(len(vocab), max_order=5, by_author=by_author).fit(train)
    for prefix in ["", "hel", "wor", "xyz", "the world"]:
        for author in (0, 1, 7):
            ids = vocab.encode(prefix)
            # every possible next symbol after this prefix, one message each
            queries = Framed.build([ids + [c] for c in range(len(vocab))], [author] * len(vocab))
            last = np.concatenate([np.flatnonzero(queries.owner == m)[-2:-1] for m in range(len(vocab))])
            p = model.probabilities(queries, order, method)[last]
            assert p.sum() == pytest.approx(1.0, abs=1e-9)
            assert (p > 0).all()


def reference_probabilities(train: list[list[int]], test: list[list[int]], vocab_size: int, order: int,
                            method: str) -> list[float]:
    """Interpolated Kneser-Ney / Witten-Bell written out with dictionaries (messages framed ⟨bos⟩ … ⟨eos⟩)."""
    pad = vocab_size
    top = order - 1

    def steps(messages):
        for msg in messages:
            seq = [Vocabulary.BOS, *msg, Vocabulary.EOS]
            for i in range(1, len(seq)):
                yield [seq[i - d] if d <= i else pad for d in range(1, top + 2)], seq[i], i

    raw = [defaultdict(int) for _ in range(top + 1)]
    longer = [defaultdict(set) for _ in range(top + 1)]
    anchored_raw = [defaultdict(int) for _ in range(top + 1)]
    for back, c, room in steps(train):
        for k in range(top + 1):
            ctx = tuple(back[:k])
            raw[k][ctx, c] += 1
            if k >= room:  # the context reaches the message start: plain counts
                anchored_raw[k][ctx, c] += 1
            else:
                longer[k][ctx, c].add(back[k])
    cont = [dict(anchored_raw[k]) | {key: len(xs) for key, xs in longer[k].items()} for k in range(top + 1)]

    def tables(counts):
        total, types = defaultdict(float), defaultdict(lambda: [0, 0, 0])
        for (ctx, _), n in counts.items():
            total[ctx] += n
            types[ctx][min(n, 3) - 1] += 1
        n = [sum(1 for v in counts.values() if v == j) for j in (1, 2, 3, 4)]
        y = n[0] / (n[0] + 2 * n[1]) if n[0] and n[1] else None
        d = [0.5, 1.0, 1.5] if y is None else np.clip(
            [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / max(n[2], 1)],
            [0.05, 0.1, 0.15], [0.95, 1.9, 2.9])
        return total, types, d

    levels = [tables(raw[k] if (k == top or method == "wb") else cont[k]) + (
        raw[k] if (k == top or method == "wb") else cont[k],) for k in range(top + 1)]
    out = []
    for back, c, _ in steps(test):
        p = 1.0 / vocab_size
        for k in range(top + 1):
            total, types, d, counts = levels[k]
            ctx = tuple(back[:k])
            if total.get(ctx, 0) == 0:
                continue
            n = counts.get((ctx, c), 0)
            if method == "kn":
                discount = 0 if n == 0 else d[min(n, 3) - 1]
                p = (max(n - discount, 0) + float(np.dot(types[ctx], d)) * p) / total[ctx]
            else:
                distinct = sum(types[ctx])
                p = (n + distinct * p) / (total[ctx] + distinct)
        out.append(p)
    return out


@pytest.mark.parametrize("method", ["kn", "wb"])
@pytest.mark.parametrize("order", [2, 4])
def test_matches_the_formulas_written_out(method, order):
    rng = random.Random(5)
    words = ["ab", "abc", "ca", "bca", "aab", "cc"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(60)]
    vocab = Vocabulary.build(texts)
    encoded = [vocab.encode(t) for t in texts]
    train, test = encoded[:50], encoded[50:]
    model = CountModel(len(vocab), max_order=4).fit(Framed.build(train, [0] * len(train)))
    got = model.probabilities(Framed.build(test, [0] * len(test)), order, method)
    want = reference_probabilities(train, test, len(vocab), order, method)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_a_seen_context_costs_fewer_bits_than_an_unseen_one():
    vocab = Vocabulary.build(TEXTS + ["xqzjv"])
    model = CountModel(len(vocab), max_order=5).fit(framed(TEXTS * 3, vocab))
    p = model.probabilities(framed(["hello", "xqzjv"], vocab), 5, "kn")
    f = framed(["hello", "xqzjv"], vocab)
    bits = [-np.log2(p[(f.owner == m) & f.scored]).sum() for m in (0, 1)]
    assert bits[0] < bits[1] / 3


def styled_corpus(seed: int = 0) -> list[Message]:
    """Two people who share a vocabulary but not its habits, taking turns in a few conversations."""
    rng = random.Random(seed)
    words = ["ok", "sure", "maybe", "later", "now", "yes", "no", "lunch", "where", "here"]
    messages = []
    for conv in range(6):
        for i in range(120):
            author = ("ann", "bob")[i % 2]
            text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
            text = text.upper() + "!!" if author == "bob" else text + " :)"
            messages.append(Message(f"c{conv}", "test", author, None, float(i), text))
    return messages


def test_knowing_the_author_helps_when_authors_differ():
    messages = styled_corpus()
    train, val = split_messages(messages, 0.1)
    vocab, authors = build_vocab_and_authors(messages, min_author_messages=5)
    baseline = fit_baseline(train, vocab, authors, orders=(4, 5), methods=("kn", "wb"))
    texts, ids = [m.text for m in val], [authors.id_of(m.author) for m in val]
    with_author = baseline.bpc(texts, ids, with_author=True)
    without = baseline.bpc(texts, ids, with_author=False)
    assert with_author < without - 0.03  # the first character (case) is where the author tells
    assert max(baseline.lambdas.values()) > 0
    assert {row["order"] for row in baseline.report["tuning"]} == {4, 5}
    assert baseline.report["chosen"]["method"] in ("kn", "wb")
    # the wrong author costs bits: scoring bob's messages as ann's is worse than as bob's
    bob = [m.text for m in val if m.author == "bob"]
    right = baseline.bpc(bob, [authors.id_of("bob")] * len(bob))
    wrong = baseline.bpc(bob, [authors.id_of("ann")] * len(bob))
    assert right < wrong


def test_message_bits_cover_exactly_the_message_characters():
    messages = styled_corpus(1)
    vocab, authors = build_vocab_and_authors(messages, min_author_messages=5)
    baseline = fit_baseline(messages, vocab, authors, orders=(3,), methods=("kn",))
    texts = ["ok now :)", "", "YES!!", "ünseen ✓"]
    bits = baseline.message_bits(texts, [1, 2, 0, 1])
    assert [len(b) for b in bits] == [len(t) for t in texts]
    assert all(np.isfinite(b).all() and (b > 0).all() for b in bits)
    assert AuthorTable.OTHER == authors.name_of(0)
