"""The names expert: recent speakers' names as the opinions it gives, the same wherever text arrives (a
training stream, an evaluation sequence, a reply being written), mixed in through the head's gate."""

from __future__ import annotations

import numpy as np
import torch

from model.artifact import save_artifact
from model.config import ModelConfig
from model.experts import EXPERTS, NgramExperts, WithExperts, combine, combine_np
from model.names import (
    NameHints,
    NameOpinions,
    at_symbol,
    message_opinions,
    mix_names,
    mix_names_np,
    prefix_q,
    recent_speakers,
)
from model.network import CharLSTM
from model.stream import Entry
from model.vocab import AuthorTable, Vocabulary
from training.corpus import Message
from training.dataset import encode_corpus
from training.evaluation.held_out import build_sequence
from training.evaluation.scoring import score_sequences

TEXTS = ["hi there from alice", "bob talks about his green bicycle", "the river", "hello hello", "zed here"]
VOCAB = Vocabulary.build(TEXTS + ["Alice Bob Zed Ann @:"])
AUTHORS = AuthorTable(["Alice", "Bob"])


def _opinions(text, names):
    return [(k, {VOCAB.decode([s]): round(w, 3) for s, w in votes.items()})
            for k, votes in message_opinions(VOCAB.encode(text), [VOCAB.encode(n) for n in names], at_symbol(VOCAB))]


def test_recent_speakers_are_the_last_distinct_others_most_recent_first():
    assert recent_speakers(["a", "b", "a", "c", None, "b"]) == [[], ["a"], ["b"], ["a", "b"], ["c", "a", "b"],
                                                                ["c", "a"]]
    assert recent_speakers(["a", "b", "c", "d"], limit=2)[3] == ["c", "b"]


def test_names_vote_for_their_next_character_while_the_first_word_could_be_one():
    # Bob (most recent) weighs 1, Ann 1/2: the first character; then only the name that fits.
    assert _opinions("Bob: hi", ["Bob", "Ann"]) == [(0, {"B": 0.667, "A": 0.333}), (1, {"o": 1.0}), (2, {"b": 1.0})]
    assert _opinions("Ann", ["Bob", "Ann"])[-1] == (2, {"n": 1.0})  # the whole name typed: it abstains after
    assert _opinions("hi Bob", ["Bob"]) == [(0, {"B": 1.0})]  # not a name: nothing after the first character
    assert [k for k, _ in _opinions("@Ann x", ["Bob", "Ann"])] == [0, 1, 2, 3]  # "@" may open the word
    assert _opinions("Bob", []) == []


def test_hints_hold_the_opinions_sparsely_and_give_them_back_dense():
    names = [VOCAB.encode("Bob"), VOCAB.encode("Ann")]
    first = NameHints.build([(3, VOCAB.encode("Bob: hi"), names)], at_symbol(VOCAB))
    second = NameHints.build([(1, VOCAB.encode("Ann"), names)], at_symbol(VOCAB))
    merged = NameHints.concat([(first, 0), (None, 5), (second, 20)])
    np.testing.assert_array_equal(merged.steps, [3, 4, 5, 21, 22, 23])
    index = merged.lookup(30)
    opinions = NameOpinions.gather(merged, index, np.arange(30).reshape(3, 10), len(VOCAB))
    np.testing.assert_array_equal(opinions.at.numpy(), [3, 4, 5, 21, 22, 23])
    torch.testing.assert_close(opinions.q.sum(-1), torch.ones(6))
    assert opinions.q[0, VOCAB.encode("B")[0]] > opinions.q[0, VOCAB.encode("A")[0]] > 0
    assert opinions.q[4, VOCAB.encode("n")[0]] == 1.0
    assert NameOpinions.gather(merged, index, np.arange(6, 20), len(VOCAB)) is None
    # A reply being written gets the same q as a stream step.
    np.testing.assert_array_equal(prefix_q(VOCAB.encode("B"), names, at_symbol(VOCAB), len(VOCAB)),
                                  opinions.q[1].numpy())
    assert prefix_q(VOCAB.encode("Bx"), names, at_symbol(VOCAB), len(VOCAB)) is None


def test_the_mixture_is_the_gated_sum_of_the_two_distributions():
    torch.manual_seed(0)
    logits, gate = torch.randn(4, 7), torch.randn(4)
    q = torch.softmax(torch.randn(4, 7) * 3, -1)
    q[0] = 0.0
    q[0, 2] = 1.0
    lam = torch.sigmoid(gate)[:, None]
    expected = torch.log((1 - lam) * torch.softmax(logits, -1) + lam * q)
    torch.testing.assert_close(mix_names(logits, gate, q), expected)
    np.testing.assert_allclose(mix_names_np(logits.numpy(), gate.numpy(), q.numpy()), expected.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_combine_mixes_only_where_the_names_expert_has_an_opinion_and_trains_the_gate():
    V = 6
    head = torch.randn(2, 3, V + EXPERTS + 1, requires_grad=True)
    log_q = torch.log_softmax(torch.randn(2, 3, 2, V), -1)
    q = torch.zeros(1, V)
    q[0, 4] = 1.0
    names = NameOpinions(torch.tensor([4]), q)  # row 1, step 1
    plain, mixed = combine(head, log_q, V), combine(head, log_q, V, names)
    torch.testing.assert_close(mixed.reshape(-1, V)[[0, 1, 2, 3, 5]], plain.reshape(-1, V)[[0, 1, 2, 3, 5]])
    torch.testing.assert_close(mixed[1, 1], mix_names(plain[1, 1][None], head[1, 1, V + EXPERTS][None], q)[0])
    torch.nn.functional.cross_entropy(mixed.reshape(-1, V), torch.full((6,), 4)).backward()
    assert head.grad[1, 1, V + EXPERTS] < 0  # the name was right: open the gate
    assert torch.all(head.grad[:, :, V + EXPERTS].reshape(-1)[[0, 1, 2, 3, 5]] == 0)
    heads = head.detach().reshape(-1, V + EXPERTS + 1).numpy()
    np.testing.assert_allclose(combine_np(heads, log_q.reshape(-1, 2, V).numpy(), V, [None] * 4 + [q[0].numpy(), None]),
                               mixed.detach().reshape(-1, V).numpy(), rtol=1e-5, atol=1e-5)


def test_a_training_stream_knows_everyone_s_name_folded_people_too():
    messages = [Message("test:c", "test", a, None, float(i), t)
                for i, (a, t) in enumerate([("Zed", "hello hello"), ("Alice", "Zed here"), ("Bob", "the river")])]
    stream = encode_corpus(messages, VOCAB, AUTHORS, names=True)
    bos = np.flatnonzero(stream.chars.numpy() == Vocabulary.BOS)
    hints = stream.name_hints
    # Alice's message opens with Zed's name (Zed reads as ⟨other⟩ to the network): opinions over "Zed".
    assert [int(s) - bos[1] for s in hints.steps if bos[1] <= s < bos[2]] == [0, 1, 2]
    first = hints.dense(np.array([int(np.searchsorted(hints.steps, bos[1]))]), len(VOCAB))[0]
    assert first[VOCAB.encode("Z")[0]] == 1.0
    assert not any(s < bos[1] for s in hints.steps)  # the first message: nobody spoke before
    assert encode_corpus(messages, VOCAB, AUTHORS).name_hints is None


def _gated_model(gate_bias: float):
    config = ModelConfig.from_preset("tiny", len(VOCAB), len(AUTHORS), experts=EXPERTS + 1)
    torch.manual_seed(0)
    network = CharLSTM(config).eval()
    with torch.no_grad():
        network.char_head.weight.zero_()
        network.char_head.bias[: len(VOCAB)] = 0.0
        network.char_head.bias[len(VOCAB) + EXPERTS] = gate_bias
    encoded = [VOCAB.encode(t) for t in TEXTS * 3]
    experts = NgramExperts.fit(encoded, [1, 2, 0, 1, 0] * 3, len(VOCAB), order=4)
    return config, network, experts


def test_evaluation_reads_the_names_of_the_context_it_is_given():
    """A message that addresses the last speaker costs fewer bits after its real context than after one
    where someone else spoke: what context gain measures."""
    _, network, experts = _gated_model(4.0)
    module = WithExperts(network, experts, len(VOCAB))
    target = Entry(1, "Zed here", False, "Alice")
    real = build_sequence(VOCAB, [Entry(0, "hello hello", True, "Zed")], [(0, target)])
    foreign = build_sequence(VOCAB, [Entry(0, "hello hello", True, "Ann")], [(1, target)])
    assert len(real.names.steps) == 3 and len(foreign.names.steps) == 1  # "Ann" stops at the first character
    bits, _ = score_sequences(module, [real, foreign], 2, 4096, "cpu")
    assert bits[0] < bits[1] - 3.0


def test_the_reply_engine_offers_the_names_of_who_spoke(tmp_path, capsys):
    from bot.engine.engine import Engine, EngineConfig
    from talklike.cli import main

    config, network, experts = _gated_model(9.0)  # the gate wide open: a reply opens with a recent name
    path = tmp_path / "model.pt"
    save_artifact(path, network, VOCAB, AUTHORS, config, {}, None, experts=experts)
    assert main(["info", str(path)]) == 0 and "names expert  on" in capsys.readouterr().out
    settings = {"temperature": 0.5, "max_chars": 30}
    with Engine(str(path), EngineConfig(guard=False)) as engine:
        assert engine.reply("c1", "Bob", "hello", author="Alice", seed=1, settings=settings).startswith("Alice")
        engine.observe("c2", "Zed", "hello there")  # a name the model does not know as a persona
        assert engine.reply("c2", "Bob", "hi", seed=2, settings=settings).startswith("Zed")
        assert engine.memory.store.get("c2").speakers == ["Bob", "Zed"]
        # A persona is never offered its own name; with nobody else, the expert abstains.
        reply = engine.reply("c3", "Alice", "hello", author="Alice", seed=3, settings=settings)
        assert not reply.startswith("Alice")
        engine.reset("c2")
        assert engine.memory.store.get("c2").speakers == []
