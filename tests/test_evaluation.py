"""Evaluation: the style classifier, evaluate() on a tiny trained model, and `talklike evaluate`."""

from __future__ import annotations

import json
import math
import random

import pytest

from talklike.cli import main
from talklike.errors import UserError
from training.corpus import Message, write_corpus
from training.evaluation import evaluate
from training.style_classifier import StyleClassifier, ngram_ids

pytestmark = pytest.mark.usefixtures("one_torch_thread")


WORDS = ["bad", "cab", "dab", "bead", "face", "deed", "ace", "fade"]


def styled(author: str, rng: random.Random) -> str:
    """A message in one of three sharply different synthetic styles."""
    if author == "Ada":  # lowercase a-f words, ends with "lol"
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) + " lol"
    if author == "Boris":  # shouting in X/Y/Z
        return " ".join(rng.choice(["XYZ", "ZZY", "YX", "XXZ"]) for _ in range(rng.randint(1, 3))) + "!!!"
    return "".join(rng.choice("😂🎉🙂") for _ in range(rng.randint(1, 3))) + " 42"  # Chen: emoji and digits


AUTHORS = ("Ada", "Boris", "Chen")


def synthetic_texts(n_each: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for author in AUTHORS:
        for _ in range(n_each):
            texts.append(styled(author, rng))
            labels.append(author)
    return texts, labels


def test_classifier_separates_distinct_styles():
    texts, labels = synthetic_texts(60, seed=1)
    classifier = StyleClassifier().fit(texts, labels)
    test_texts, test_labels = synthetic_texts(40, seed=2)
    assert classifier.accuracy(test_texts, test_labels) > 0.95
    assert classifier.predict(["cab bead lol", "ZZY XYZ!!!", "🎉🙂 42"]) == ["Ada", "Boris", "Chen"]


def test_classifier_sees_where_in_a_message_an_ngram_sits():
    # Same characters, different place: only the start/end framing tells these two authors apart.
    rng = random.Random(3)
    texts, labels = [], []
    for _ in range(80):
        word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 8)))
        texts += ["?" + word, word + "?"]
        labels += ["Front", "Back"]
    classifier = StyleClassifier().fit(texts, labels)
    assert classifier.predict(["?hgfedcba", "hgfedcba?"]) == ["Front", "Back"]


def test_ngram_ids_are_distinct_and_deterministic():
    ids = ngram_ids("hello")
    # framed "\x02hello\x03": 6 distinct 1-grams, 6 2-grams, 5 3-grams, 4 4-grams
    assert len(ids) == 21
    assert ngram_ids("hello").tolist() == ids.tolist()
    assert len(ngram_ids("")) == 3  # start, end, start+end: an empty text still has features


def test_classifier_rejects_bad_training_data():
    with pytest.raises(ValueError, match="two authors"):
        StyleClassifier().fit(["a", "b"], ["Ada", "Ada"])
    with pytest.raises(ValueError, match="labels"):
        StyleClassifier().fit(["a", "b"], ["Ada"])
    with pytest.raises(RuntimeError):
        StyleClassifier().predict(["a"])


# ---------------------------------------------------------------------------------------------------
# evaluate() on a tiny model trained for a few seconds

KEYS = ("bpc", "bpc_by_author", "author_gain_bpc", "context_gain_bpc", "next_speaker_accuracy",
        "persona_fidelity", "real_fidelity", "copy_rate", "copy_rate_unguarded")


def write_styled_corpus(path, rotate: bool, conversations: int = 4, per_conversation: int = 100) -> None:
    """Three authors in sharply different styles; `rotate`: they always speak in turn Ada → Boris → Chen,
    so the conversation itself tells who writes next (else the speaker is random)."""
    rng = random.Random(7)
    messages = []
    for conv in range(conversations):
        for i in range(per_conversation):
            author = AUTHORS[i % 3] if rotate else rng.choice(AUTHORS)
            messages.append(Message(f"test:{conv}", "test", author, None, 1.6e9 + conv * 1e6 + 60 * i,
                                    styled(author, rng)))
    write_corpus(path, messages)


def train_tiny(corpus, run_dir, ngram_order: int | None = None) -> None:
    from training.train_config import TrainConfig
    from training.trainer import train

    extra = {} if ngram_order is None else {"ngram_order": ngram_order}
    train(TrainConfig(corpus=str(corpus), run_dir=str(run_dir), preset="tiny", max_steps=150, batch_size=8,
                      seq_len=32, lr=1e-2, warmup_steps=10, eval_every=1000, quiet=True, device="cpu", **extra))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run directory, corpus) of a tiny model trained on randomly alternating styled authors."""
    root = tmp_path_factory.mktemp("eval")
    corpus = root / "corpus.jsonl"
    write_styled_corpus(corpus, rotate=False)
    train_tiny(corpus, root / "run")
    return root / "run", corpus


def test_evaluate_reports_every_figure_within_its_range(trained):
    run_dir, corpus = trained
    result = evaluate(run_dir, corpus, samples_per_persona=6)
    for key in KEYS:
        assert key in result
    assert 0 < result["bpc"] < 4  # the styles are easy: far below log2(vocabulary)
    assert set(result["bpc_by_author"]) == set(AUTHORS)
    assert all(math.isfinite(v) and v > 0 for v in result["bpc_by_author"].values())
    assert 0 <= result["next_speaker_accuracy"] <= 1
    assert 0 <= result["persona_fidelity"] <= 1
    assert result["real_fidelity"] > 0.9  # the classifier's ceiling on clearly separable real messages
    counts = result["counts"]
    assert counts["held_out_messages"] == 4 * 10  # the training split: the latest 10% of each conversation
    assert counts["scored_messages"] == 40 and counts["personas_evaluated"] == 3
    assert counts["generated_replies"] == 3 * 6
    assert result["copy_rate"] == 0.0 and result["copy_guard"] == "model"
    assert result["settings"]["val_fraction"] == 0.1  # taken from the run's own config


def test_self_attribution_and_bpc_per_message(trained):
    run_dir, corpus = trained
    result = evaluate(run_dir, corpus, samples_per_persona=0)
    # Every persona is a candidate (3 ≤ 64): the model's own bits name the true author of the styled messages.
    assert result["self_attribution_accuracy"] > 0.9
    assert 0.9 < result["self_attribution_accuracy_with_turns"] <= 1  # speakers are random: the prior adds little
    assert result["self_attribution_chance"] == pytest.approx(1 / 3)
    # The style classifier is asked the same question on the same messages among the same candidates.
    assert result["real_fidelity_same_candidates"] > 0.9
    assert result["self_attribution_accuracy"] >= result["real_fidelity_same_candidates"] - 0.05
    counts = result["counts"]
    assert counts["self_attribution_messages"] == 40 and counts["self_attribution_candidates"] == 3
    assert set(result["self_attribution_by_author"]) == set(AUTHORS)
    confusion = result["self_attribution_confusion"]
    assert confusion["labels"] == result["personas_listed"]
    assert sum(map(sum, confusion["counts"])) == 40
    assert sum(confusion["counts"][i][i] for i in range(3)) / 40 == pytest.approx(result["self_attribution_accuracy"])
    # bpc per message: the mean of each message's own figure, near the per-character one for short messages
    assert 0 < result["bpc_per_message"] < 4 and abs(result["bpc_per_message"] - result["bpc"]) < 0.5
    assert result["author_gain_bpc_per_message"] > 0.1
    assert "replies_by_persona" not in result  # generated text only when asked for (the report)
    replies = evaluate(run_dir, corpus, samples_per_persona=3, keep_replies=2)["replies_by_persona"]
    assert set(replies) == set(AUTHORS) and all(len(texts) == 2 for texts in replies.values())


def test_author_conditioning_is_worth_bits_when_authors_differ(trained):
    run_dir, corpus = trained
    result = evaluate(run_dir, corpus, samples_per_persona=12)
    # Told ⟨other⟩, the model must guess the style from the message itself: clearly worse.
    assert result["author_gain_bpc"] > 0.1
    # Generated replies carry their persona's style well above chance (1/3).
    assert result["persona_fidelity"] > 0.6
    # Speakers alternate at random here, so another conversation's context costs next to nothing.
    assert abs(result["context_gain_bpc"]) < 0.2


def test_context_gain_when_the_conversation_tells_what_comes(tmp_path):
    corpus = tmp_path / "turns.jsonl"
    write_styled_corpus(corpus, rotate=True)
    # The network alone: with n-gram experts the per-author counts already carry each style, and what is
    # measured here is that evaluation sees the network read the conversation.
    train_tiny(corpus, tmp_path / "run", ngram_order=0)
    result = evaluate(tmp_path / "run", corpus, samples_per_persona=0)
    # Speakers take turns: the real context says who speaks (and so how) next; someone else's does not.
    assert result["context_gain_bpc"] > 0.2
    assert result["next_speaker_accuracy"] > 0.8
    assert result["persona_fidelity"] is None and result["counts"]["generated_replies"] == 0


def test_artifact_and_run_directory_give_the_same_figures(trained, tmp_path):
    from training.export import export_run

    run_dir, corpus = trained
    export_run(str(run_dir), str(tmp_path / "model.pt"))
    from_run = evaluate(run_dir, corpus, samples_per_persona=0)
    from_file = evaluate(tmp_path / "model.pt", corpus, samples_per_persona=0)
    assert from_file["model"]["kind"] == "artifact"
    assert from_file["bpc"] == pytest.approx(from_run["bpc"], rel=1e-4)
    assert from_file["author_gain_bpc"] == pytest.approx(from_run["author_gain_bpc"], rel=1e-3, abs=1e-4)


def test_evaluate_command_json_prints_the_figures(trained, capsys):
    run_dir, corpus = trained
    code = main(["evaluate", str(run_dir), str(corpus), "--json", "--samples-per-persona", "3"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    for key in KEYS:
        assert key in result
    assert "lol" not in out and "XYZ" not in out  # figures only, never message text


def test_evaluate_command_table(trained, capsys):
    run_dir, corpus = trained
    assert main(["evaluate", str(run_dir), str(corpus), "--samples-per-persona", "3"]) == 0
    out = capsys.readouterr().out
    assert "author_gain_bpc" in out and "persona_fidelity" in out
    for author in AUTHORS:
        assert author in out


def test_bad_inputs_are_user_errors(trained, tmp_path, capsys):
    run_dir, corpus = trained
    with pytest.raises(UserError, match="no such model"):
        evaluate(tmp_path / "missing.pt", corpus)
    with pytest.raises(UserError, match="no such corpus"):
        evaluate(run_dir, tmp_path / "missing.jsonl")
    strangers = tmp_path / "strangers.jsonl"
    write_corpus(strangers, [Message("x:1", "x", name, None, 1.6e9 + i, "hello") for i, name in
                             enumerate(["Zed", "Yan"] * 20)])
    with pytest.raises(UserError, match="none of the corpus"):
        evaluate(run_dir, strangers)
    # One message per conversation: nothing can be held out.
    single = tmp_path / "single.jsonl"
    write_corpus(single, [Message(f"x:{i}", "x", AUTHORS[i % 3], None, 1.6e9, "abc lol") for i in range(9)])
    with pytest.raises(UserError, match="held-out part is empty"):
        evaluate(run_dir, single)
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("not a model")
    with pytest.raises(UserError):
        evaluate(not_a_model, corpus)
    # Through the command line: one line on stderr, exit code 2, no traceback.
    assert main(["evaluate", str(tmp_path / "missing.pt"), str(corpus)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bench_train_reports_ratios(capsys):
    # A smoke run of the training benchmark's JSON shape on the tiny preset (figures are not checked).
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--json", "--presets", "tiny", "--seconds", "0.2", "--rounds", "1",
                       "--matmul-seconds", "0.05", "--batch-size", "4", "--seq-len", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matmul_gflops"] > 0
    tiny = result["presets"]["tiny"]
    assert tiny["chars_per_s"] > 0 and tiny["lstm_gflops"] > 0
    assert tiny["ratio"] == pytest.approx(tiny["lstm_gflops"] / result["matmul_gflops"])


# one sequence per batch; all in one padded batch; all in one batch read three (row, step) positions a pass
@pytest.mark.parametrize(("batch_tokens", "pass_steps"), [(1, None), (10_000, None), (10_000, 3)])
def test_batched_scoring_matches_one_sequence_at_a_time(batch_tokens, pass_steps):
    # Padding and batching must not change a target's bits: compare with a plain per-character loop.
    import torch

    from model.config import ModelConfig
    from model.network import CharLSTM
    from model.vocab import Vocabulary
    from training.evaluation.held_out import build_sequence
    from training.evaluation.scoring import score_sequences

    torch.manual_seed(0)
    vocab = Vocabulary.build(["abc lol", "XYZ!!!", "🎉 42"])
    model = CharLSTM(ModelConfig.from_preset("tiny", len(vocab), 3)).eval()
    sequences = [
        build_sequence(vocab, [(1, "abc", True), (2, "XYZ!", False)], [(0, (1, "cab lol", False))]),
        build_sequence(vocab, [], [(1, (2, "🎉 42", True)), (2, (1, "ab", False))]),
        build_sequence(vocab, [(0, "lol", True)], [(3, (0, "XYZ!!! abc", False))]),
    ]
    edges = (0, 1, 3)  # the first character, the second and third, the rest
    bits, speaker, by_position = score_sequences(model, sequences, 4, batch_tokens=batch_tokens, device="cpu",
                                                 max_pass_steps=pass_steps, position_edges=edges)
    assert by_position.shape == (4, 3) and by_position.sum(axis=1) == pytest.approx(bits)
    with torch.no_grad():
        for seq in sequences:
            chars = torch.tensor([seq.chars])
            h, c = model.init_state(1)
            logits, speaker_logits, _, _ = model(chars, torch.tensor([seq.authors]), h, c)
            logp = torch.log_softmax(logits[0], dim=-1)
            for index, bos, n in seq.targets:
                step = [-logp[bos + i, seq.chars[bos + i + 1]].item() / math.log(2) for i in range(n)]
                assert bits[index] == pytest.approx(sum(step), rel=1e-4)
                assert by_position[index] == pytest.approx([step[0], sum(step[1:3]), sum(step[3:])], rel=1e-4, abs=1e-9)
                assert n == len(vocab.encode(["cab lol", "🎉 42", "ab", "XYZ!!! abc"][index]))
                assert seq.chars[bos + n + 1] == vocab.EOS
                assert speaker[index] == int(speaker_logits[0, bos + n + 1].argmax())
