"""Author conditioning works end to end: trained on the demo exports, each persona writes in its own style.

The demo personas have known, machine-checkable style markers (capitals, emoji, French, lowercase
"lol"s, long clauses). A tiny model is trained on the imported demo exports, exported, and asked for
replies as each persona; each persona's replies must show its own markers far more often than any
other persona's markers. This test fails if the author input is ignored.
"""

from __future__ import annotations

import pytest
import torch

from model.artifact import load_artifact
from model.generation import Generator
from training.corpus import write_corpus
from training.demo.generate import generate_demo_exports
from training.demo.personas import PERSONAS, style_hit_rate
from training.export import export_run
from training.import_pipeline import ImportSettings, run_import
from training.train_config import TrainConfig
from training.trainer import train


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("persona-style")
    generate_demo_exports(root / "exports", seed=7, messages=1500)
    result = run_import([str(root / "exports")], ImportSettings())
    write_corpus(root / "corpus.jsonl", result.messages)
    train(TrainConfig(corpus=str(root / "corpus.jsonl"), run_dir=str(root / "run"), preset="tiny",
                      max_steps=1000, eval_every=1000, patience=0, quiet=True, seed=0))
    export_run(str(root / "run"), str(root / "model.pt"))
    return load_artifact(root / "model.pt")


def test_replies_carry_the_personas_own_style(demo_model):
    generator = Generator(demo_model.module, demo_model.vocab, demo_model.authors, experts=demo_model.experts)
    # Each persona answers a stranger's opening message, as a bot would.
    opening = generator.feed(generator.init_state(), 0, "hey everyone, what's up?", session=True)
    hit_rates = {}
    for persona in PERSONAS:
        replies = generator.reply(opening, demo_model.authors.id_of(persona.name), n=40, temperature=0.7,
                                  max_chars=150, seed=1)
        hit_rates[persona.name] = {marker.name: style_hit_rate(marker.name, replies) for marker in PERSONAS}
    for name, rates in hit_rates.items():
        own = rates[name]
        strongest_other = max(rate for marker, rate in rates.items() if marker != name)
        assert own >= 0.3, (name, rates)
        assert own >= strongest_other + 0.25, (name, rates)


def test_model_card_lists_the_demo_personas(demo_model):
    assert set(demo_model.personas) == {persona.name for persona in PERSONAS}
