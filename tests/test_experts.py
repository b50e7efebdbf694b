"""The n-gram experts around the network: one view of a message's counts whichever way the text arrives
(a stream, a reply being written, chunks), one way to combine them, and the model file that carries them."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from model.artifact import ArtifactError, load_artifact, save_artifact
from model.config import ModelConfig
from model.experts import EXPERTS, NgramExperts, WithExperts, combine, combine_np
from model.generation import Generator
from model.network import CharLSTM
from model.stream import encode_message
from model.vocab import AuthorTable, Vocabulary

LINES = {"Alice": ["hi there from alice", "alice says hi again", "hello hello"],
         "Bob": ["bob talks about his green bicycle", "the river by the bicycle", "bob again"]}


@pytest.fixture(scope="module")
def tables():
    vocab = Vocabulary.build([t for texts in LINES.values() for t in texts] + ["xyz?!"])
    return vocab, AuthorTable(["Alice", "Bob"])


@pytest.fixture(scope="module")
def experts(tables):
    vocab, authors = tables
    encoded, who = [], []
    for name, texts in LINES.items():
        for text in texts * 3:
            encoded.append(vocab.encode(text))
            who.append(authors.id_of(name))
    return NgramExperts.fit(encoded, who, len(vocab), order=5)


def stream_of(vocab, authors, turns):
    chars, who = [], []
    for i, (name, text) in enumerate(turns):
        c, a = encode_message(vocab, authors.id_of(name), text, session=i == 0)
        chars += c
        who += a
    return np.array(chars), np.array(who)


def test_a_stream_and_a_reply_being_written_get_the_same_counts(tables, experts):
    vocab, authors = tables
    turns = [("Alice", "hi there"), ("Bob", "the green river"), ("Alice", "hello")]
    chars, who = stream_of(vocab, authors, turns)
    log_q = experts.stream_log_q(chars, who, np.arange(len(chars) - 1))
    bos = np.flatnonzero(chars == Vocabulary.BOS)
    for start, (name, text) in zip(bos, turns, strict=True):
        ids = vocab.encode(text)
        prefixes = [ids[:i] for i in range(len(ids) + 1)]  # after BOS, after each character
        expected = experts.prefix_log_q(prefixes, [authors.id_of(name)] * len(prefixes))
        got = log_q[start : start + len(prefixes)]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    # after an end of message and a session marker a new message begins: the counts abstain
    ends = np.flatnonzero((chars[:-1] == Vocabulary.EOS) | (chars[:-1] == Vocabulary.SESSION))
    assert ends.size and not log_q[ends].any()
    # a proper distribution everywhere else, the author's own counts differing from everyone's
    speaking = np.setdiff1d(np.arange(len(chars) - 1), ends)
    np.testing.assert_allclose(np.exp(log_q[speaking]).sum(axis=-1), 1.0, rtol=1e-5)
    assert not np.allclose(log_q[speaking, 0], log_q[speaking, 1])


def test_scoring_in_chunks_equals_one_pass(tables, experts):
    vocab, authors = tables
    chars, who = stream_of(vocab, authors, [("Alice", "hi there from alice"), ("Bob", "his green bicycle")] * 2)
    torch.manual_seed(0)
    network = CharLSTM(ModelConfig.from_preset("tiny", len(vocab), len(authors), experts=EXPERTS)).eval()
    module = WithExperts(network, experts, len(vocab))
    x, a = torch.from_numpy(np.stack([chars, chars[::-1].copy()])), torch.from_numpy(np.stack([who, who]))
    with torch.no_grad():
        whole, _, _, _ = module(x, a, *module.init_state(2))
        pieces, (h, c) = [], module.init_state(2)
        for cut in (slice(0, 7), slice(7, 30), slice(30, None)):  # cuts inside messages
            logits, _, h, c = module(x[:, cut], a[:, cut], h, c)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole)
    assert whole.shape[-1] == len(vocab)


def test_combine_is_the_same_in_torch_and_numpy():
    rng = np.random.default_rng(0)
    head = rng.normal(size=(3, 12)).astype(np.float32)
    log_q = np.log(rng.dirichlet(np.ones(10), size=(3, 2))).astype(np.float32)
    np.testing.assert_allclose(combine_np(head, log_q, 10),
                               combine(torch.from_numpy(head), torch.from_numpy(log_q), 10).numpy(), rtol=1e-5)
    # the weights are softplus of the two extra outputs: never negative, so a count is never inverted
    zero = np.zeros((1, 12), dtype=np.float32)
    zero[0, 10:] = -50.0
    np.testing.assert_allclose(combine_np(zero, log_q[:1], 10), 0.0, atol=1e-12)
    assert combine_np(head[:, :10], None, 10) is not None


def test_the_model_file_carries_the_experts(tmp_path, tables, experts):
    vocab, authors = tables
    config = ModelConfig.from_preset("tiny", len(vocab), len(authors), experts=EXPERTS)
    network = CharLSTM(config).eval()
    path = tmp_path / "model.pt"
    save_artifact(path, network, vocab, authors, config, {}, None, experts=experts)
    artifact = load_artifact(path)
    prefixes = [vocab.encode(p) for p in ("", "hi th", "bob ta", "zz")]
    np.testing.assert_array_equal(artifact.experts.prefix_log_q(prefixes, [1, 1, 2, 0]),
                                  experts.prefix_log_q(prefixes, [1, 1, 2, 0]))
    # Read back, the experts keep only their lookup table: the file's bytes are written out unchanged, and
    # leave-one-out (training's view, which needs the counts) is refused with a reason.
    assert artifact.experts.global_model is None
    assert artifact.experts.to_bytes() == experts.to_bytes()
    chars, who = stream_of(vocab, authors, [("Bob", "bob again")])
    with pytest.raises(ValueError, match="cannot leave training steps out"):
        artifact.experts.stream_log_q(chars, who, np.arange(len(chars) - 1), leave_one_out=True)
    with pytest.raises(ArtifactError, match="n-gram experts"):
        save_artifact(tmp_path / "bare.pt", network, vocab, authors, config, {}, None)
    # Writing needs them: without, the head's weight outputs would be read as characters.
    with pytest.raises(ValueError, match="n-gram experts"):
        Generator(artifact.module, vocab, authors)
    generator = Generator(artifact.module, vocab, authors, experts=artifact.experts)
    replies = generator.reply(generator.init_state(), authors.id_of("Bob"), n=3, max_chars=30, seed=1)
    assert len(replies) == 3 and all(set(r) <= set(vocab.chars) for r in replies)


def test_counts_under_a_silent_network_write_like_the_persona(tables, experts, tmp_path):
    """With the network's character logits zeroed (the counts at their initial weights), the reply engine
    writes the counts' own text: Bob's words from Bob."""
    from bot.engine.engine import Engine, EngineConfig

    vocab, authors = tables
    config = ModelConfig.from_preset("tiny", len(vocab), len(authors), experts=EXPERTS)
    torch.manual_seed(0)
    network = CharLSTM(config).eval()
    with torch.no_grad():
        network.char_head.weight.zero_()  # the network says nothing; the counts speak
        network.char_head.bias[: len(vocab)] = 0.0
    path = tmp_path / "model.pt"
    save_artifact(path, network, vocab, authors, config, {}, None, experts=experts)
    bob_words = {w for t in LINES["Bob"] for w in t.split()}
    with Engine(str(path), EngineConfig(guard=False)) as engine:
        replies = [engine.reply(f"c{i}", "Bob", "hello", author="Alice", seed=i,
                                settings={"temperature": 0.3, "max_chars": 40}) for i in range(6)]
    words = [w for r in replies for w in r.split()]
    assert words and sum(w in bob_words for w in words) >= 0.6 * len(words)


def test_author_dropout_hides_the_author_from_the_counts_too(tables, experts):
    from training.dataset import EncodedStream
    from training.expert_steps import ExpertSteps

    vocab, authors = tables
    chars, who = stream_of(vocab, authors, [("Alice", "hi there"), ("Bob", "the green river")])
    stream = EncodedStream(torch.tensor(chars), torch.tensor(who), torch.full((len(chars),), -100),
                           torch.zeros(len(chars), dtype=torch.long))
    steps = ExpertSteps(experts, stream, counted=False)
    positions = torch.arange(len(chars) - 1)[None]
    shown = torch.tensor(who[:-1])[None].clone()
    shown[0, 10:] = 0  # these steps are shown as ⟨other⟩
    log_q = steps.for_positions(positions, shown)[0]
    torch.testing.assert_close(log_q[10:, 1], log_q[10:, 0])
    random.seed(0)
    assert not torch.allclose(log_q[2:9, 1], log_q[2:9, 0])
