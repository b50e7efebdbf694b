"""`talklike who` and the console's "who would say this?": authorship by the model's own likelihood."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ALICE_LINE, BOB_LINE
from test_chat_cli import run

from bot.app import create_app
from bot.engine.engine import Engine
from model.artifact import load_artifact
from model.attribution import message_bits, rank_authors, read_context
from model.stream import encode_message

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_persona_is_picked_for_its_own_line(trained_artifact):
    with Engine(str(trained_artifact)) as engine:
        for line, author in ((ALICE_LINE, "Alice"), (BOB_LINE, "Bob")):
            ranking = engine.who(line)
            assert ranking[0][0] == author and ranking[0][2] > 0.5
            assert abs(sum(share for _, _, share in ranking) - 1.0) < 1e-6
            assert ranking[0][1] < ranking[1][1]  # fewest bits first
        after_alice = engine.who(BOB_LINE[:30], context=[("Alice", ALICE_LINE)])
        assert after_alice[0][0] == "Bob"


def test_the_bits_are_the_models_own_sum_over_the_message(trained_artifact):
    artifact = load_artifact(trained_artifact)
    module, vocab = artifact.module, artifact.vocab
    alice = artifact.authors.id_of("Alice")
    state = read_context(module, vocab, [])
    [bits] = message_bits(module, vocab, state, "hi there", [alice], session=True).tolist()
    chars, authors = encode_message(vocab, alice, "hi there", session=True)
    with torch.no_grad():
        logits, _, _, _ = module(torch.tensor([chars]), torch.tensor([authors]), *module.init_state(1))
    logp = torch.log_softmax(logits[0], dim=-1)
    bos = chars.index(1)
    expected = -sum(float(logp[t, chars[t + 1]]) for t in range(bos, len(chars) - 1)) / 0.6931471805599453
    assert bits == pytest.approx(expected, rel=1e-4)
    # thousands of candidates go through in bounded batches, and rank the same as one by one
    many = [alice, artifact.authors.id_of("Bob")] * 300
    ranking = rank_authors(module, vocab, "hi there", many)
    assert len(ranking.scores) == 600 and ranking.scores[0][1] == pytest.approx(bits, rel=1e-4)


def test_talklike_who_prints_a_ranking(capsys, monkeypatch, trained_artifact, tmp_path):
    context = tmp_path / "context.txt"
    context.write_text(f"Alice: {ALICE_LINE}\nsomeone else: hello\n", encoding="utf-8")
    code, out, _ = run(capsys, monkeypatch, ["who", str(trained_artifact), BOB_LINE, "--context", str(context),
                                             "--json"])
    assert code == 0
    ranking = json.loads(out)["ranking"]
    assert ranking[0]["persona"] == "Bob" and {"bits", "share"} <= set(ranking[0])
    code, out, _ = run(capsys, monkeypatch, ["who", str(trained_artifact), ALICE_LINE, "--top", "1"])
    assert code == 0 and out.startswith("Alice") and len(out.splitlines()) == 1
    code, _, err = run(capsys, monkeypatch, ["who", str(trained_artifact), "hi", "--context", str(tmp_path / "no")])
    assert code == 2 and "cannot read the context" in err


def test_the_console_asks_who_would_say_it(trained_artifact):
    client = create_app({"TALKLIKE_MODEL": str(trained_artifact), "TALKLIKE_STORE_URL": "memory://"},
                        local=True).test_client()
    answer = client.post("/api/who", json={"text": BOB_LINE})
    assert answer.status_code == 200
    assert answer.get_json()["ranking"][0]["persona"] == "Bob"
    empty = client.post("/api/who", json={"text": "  "})
    assert empty.status_code == 400 and empty.get_json()["field"] == "text"
