"""model/ngram.py beyond the baseline's use: scoring a training step without its own count, whole next-symbol
distributions for text being written, and the counts as arrays for a model file."""

from __future__ import annotations

import numpy as np
import pytest

from model.ngram import CountModel, Framed
from model.ngram_table import DistributionTable
from model.vocab import Vocabulary

TEXTS = ["hello world", "hello there", "help me", "the world is here", "where is the hello", "oh well", "hello"]
LONER = "qjkz"  # shares no character with TEXTS: its steps' counts come from its own copies alone


def framed(texts: list[str], vocab: Vocabulary, author_ids: list[int] | None = None) -> Framed:
    return Framed.build([vocab.encode(t) for t in texts], author_ids or [0] * len(texts))


@pytest.mark.parametrize("order", [2, 3, 5])
@pytest.mark.parametrize("by_author", [False, True])
def test_leave_one_out_equals_a_fit_without_that_message(order, by_author):
    # Kneser-Ney: below the top order it reads continuation counts, which the other copy keeps as they are, so
    # taking each step's own count off is the same as never having seen the message. (Witten-Bell's raw
    # lower orders would also lose the message's other steps there; the experts use Kneser-Ney.)
    method = "kn"
    corpus = [LONER, *TEXTS, LONER, "hello world"]
    authors = [1, *[i % 2 for i in range(len(TEXTS))], 1, 0]
    vocab = Vocabulary.build(corpus)
    full = CountModel(len(vocab), max_order=5, by_author=by_author).fit(framed(corpus, vocab, authors))
    rest = CountModel(len(vocab), max_order=5, by_author=by_author).fit(framed(corpus[1:], vocab, authors[1:]))
    for mine, theirs in zip(full.raw + full.cont, rest.raw + rest.cont, strict=True):
        theirs.discounts = mine.discounts  # one message fewer shifts the estimated discounts; not what is tested
    everything = framed(corpus, vocab, authors)
    first = everything.owner == 0
    loo = full.probabilities(everything, order, method, leave_one_out=True)[first]
    without = rest.probabilities(framed([LONER], vocab, authors[:1]), order, method)
    np.testing.assert_allclose(loo, without, rtol=1e-12)
    assert not np.allclose(loo, full.probabilities(everything, order, method)[first])


@pytest.mark.parametrize("method", ["kn", "wb"])
@pytest.mark.parametrize("by_author", [False, True])
def test_distributions_are_the_probabilities_of_every_next_symbol(method, by_author):
    vocab = Vocabulary.build(TEXTS)
    model = CountModel(len(vocab), max_order=5, by_author=by_author).fit(
        framed(TEXTS, vocab, [i % 2 for i in range(len(TEXTS))]))
    prefixes = ["", "hel", "wor", "xyz", "the world"]
    authors = [0, 1, 1, 7, 0]
    base = np.random.default_rng(0).dirichlet(np.ones(len(vocab)), size=len(prefixes))
    for order in (1, 3, 5):
        for with_base in (False, True):
            dist = model.distributions([vocab.encode(p) for p in prefixes], authors, order, method,
                                       base=base if with_base else None)
            assert dist.shape == (len(prefixes), len(vocab))
            for row, (prefix, author) in enumerate(zip(prefixes, authors, strict=True)):
                ids = vocab.encode(prefix)
                queries = Framed.build([ids + [c] for c in range(len(vocab))], [author] * len(vocab))
                last = np.concatenate([np.flatnonzero(queries.owner == m)[-2:-1] for m in range(len(vocab))])
                step_base = np.full(len(queries.positions), 1.0 / len(vocab))
                step_base[last] = base[row]
                expected = model.probabilities(queries, order, method, base=step_base if with_base else None)[last]
                np.testing.assert_allclose(dist[row], expected, rtol=1e-12)
                assert dist[row].sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", ["kn", "wb"])
def test_arrays_round_trip_keeps_the_distributions(method):
    vocab = Vocabulary.build(TEXTS)
    model = CountModel(len(vocab), max_order=4, by_author=True).fit(framed(TEXTS, vocab, [1, 2] * 3 + [1]))
    loaded, order, loaded_method = CountModel.from_arrays(model.to_arrays(4, method))
    assert (order, loaded_method, loaded.by_author) == (4, method, True)
    prefixes = [vocab.encode(p) for p in ("", "he", "hello w", "ere is")]
    np.testing.assert_array_equal(loaded.distributions(prefixes, [1, 2, 1, 0], 4, method),
                                  model.distributions(prefixes, [1, 2, 1, 0], 4, method))


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("by_author", [False, True])
def test_leave_one_out_distributions_agree_with_leave_one_out_steps(order, by_author):
    corpus = [LONER, *TEXTS, LONER, "hello world"]
    authors = [1, *[i % 2 for i in range(len(TEXTS))], 1, 0]
    vocab = Vocabulary.build(corpus)
    model = CountModel(len(vocab), max_order=5, by_author=by_author).fit(framed(corpus, vocab, authors))
    everything = framed(corpus, vocab, authors)
    expected = model.probabilities(everything, order, "kn", leave_one_out=True)
    prefixes, targets = [], []
    for text in corpus:
        ids = vocab.encode(text) + [Vocabulary.EOS]
        prefixes += [ids[:i] for i in range(len(ids))]
        targets += ids
    back = model.back_symbols(prefixes, order)
    dist = model.distributions_back(back, everything.authors, order, "kn", targets=np.array(targets))
    np.testing.assert_allclose(dist[np.arange(len(targets)), targets], expected, rtol=1e-12)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("method", ["kn", "wb"])
@pytest.mark.parametrize("by_author", [False, True])
@pytest.mark.parametrize("order", [1, 2, 5])
def test_distribution_table_gives_the_same_distributions(method, by_author, order):
    vocab = Vocabulary.build(TEXTS)
    model = CountModel(len(vocab), max_order=5, by_author=by_author).fit(
        framed(TEXTS, vocab, [i % 2 for i in range(len(TEXTS))]))
    table = DistributionTable([model], order, method)
    prefixes = [vocab.encode(p) for p in ("", "h", "hel", "wor", "xyz", "the world", "hello there you")]
    authors = [0, 1, 1, 7, 0, 1, 0]
    back = model.back_symbols(prefixes, order)
    expected_keys = model._row_contexts(back, authors, order - 1)
    np.testing.assert_array_equal(table.context_keys(back, authors), np.stack(expected_keys, axis=1)[:, None, :])
    base = np.random.default_rng(1).dirichlet(np.ones(len(vocab)), size=len(prefixes))
    for given in (None, base):
        np.testing.assert_allclose(table.distributions(back, authors, base=given),
                                   model.distributions_back(back, authors, order, method, base=given), rtol=2e-6)
    assert table.nbytes() > 0


def test_distribution_table_of_an_author_the_counts_never_saw_is_its_base():
    vocab = Vocabulary.build(TEXTS)
    model = CountModel(len(vocab), max_order=3, by_author=True).fit(framed(TEXTS, vocab))
    table = DistributionTable([model], 3, "kn")
    back = model.back_symbols([vocab.encode("hel"), []], 3)
    base = np.random.default_rng(2).dirichlet(np.ones(len(vocab)), size=2)
    np.testing.assert_allclose(table.distributions(back, [5, 6], base=base), base, rtol=1e-12)
    np.testing.assert_allclose(table.distributions(back, [5, 6]), 1.0 / len(vocab))
