"""`talklike evaluate --report DIR`: the page and its plots, and no real message text unless asked for."""

from __future__ import annotations

import random

import pytest
from test_evaluation import AUTHORS, styled, train_tiny

from talklike.cli import main
from training.corpus import Message, write_corpus
from training.evaluation import evaluate
from training.report import write_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Ada says this again and again, in training and in the held-out part: a model may well learn it by heart.
SECRET = "meet me at the old mill at midnight lol"
NOVEL = "YX ZZY XXZ YX XYZ!!!"  # in Boris's style, but five words: his real messages have one to three
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained_with_a_secret(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    rng = random.Random(11)
    messages = []
    for conv in range(4):
        for i in range(100):
            author = "Ada" if i % 5 == 0 else rng.choice(AUTHORS)
            text = SECRET if i % 5 == 0 else styled(author, rng)
            messages.append(Message(f"test:{conv}", "test", author, None, 1.6e9 + conv * 1e6 + 60 * i, text))
    corpus = root / "corpus.jsonl"
    write_corpus(corpus, messages)
    train_tiny(corpus, root / "run")
    return root / "run", corpus


def test_report_renders_plots_and_keeps_real_text_out(trained_with_a_secret, tmp_path):
    run_dir, corpus = trained_with_a_secret
    result = evaluate(run_dir, corpus, samples_per_persona=12, keep_replies=6)
    assert sum(len(texts) for texts in result["replies_by_persona"].values()) == 3 * 6
    # The tiny model may write only messages the corpus has (its styles are small): one it never saw is added,
    # and the page must show it among the rest.
    result["replies_by_persona"]["Boris"].append(NOVEL)
    path = write_report(tmp_path / "report", result, corpus, baseline_bpc={"Ada": 2.5, "Boris": 3.25})
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert path == str(tmp_path / "report" / "report.html")
    for png in ("curves.png", "bpc_by_persona.png", "attribution.png"):
        assert (tmp_path / "report" / png).read_bytes().startswith(PNG)
        assert f'src="{png}"' in page
    for name in AUTHORS:
        assert f"<td>{name}</td>" in page
    assert "self_attribution_accuracy" in page and "2.500" in page and "3.250" in page  # the baseline column
    assert "No real message text" in page
    assert any(SECRET in reply for reply in result["replies_by_persona"]["Ada"])  # the model did learn it
    assert SECRET not in page and "old mill" not in page  # yet the page shows no reply that repeats it
    assert f"<li>{NOVEL}</li>" in page  # a reply that repeats no real message is shown

    # Asked for, real held-out messages are in the page.
    write_report(tmp_path / "real", result, corpus, include_real=True)
    real_page = (tmp_path / "real" / "report.html").read_text(encoding="utf-8")
    assert SECRET in real_page and "Contains real messages" in real_page


def test_report_from_an_artifact_needs_the_run_for_its_curves(trained_with_a_secret, tmp_path, capsys):
    from training.export import export_run

    run_dir, corpus = trained_with_a_secret
    model = tmp_path / "model.pt"
    export_run(str(run_dir), str(model))
    assert main(["evaluate", str(model), str(corpus), "--samples-per-persona", "3", "--report",
                 str(tmp_path / "plain")]) == 0
    assert "old mill" not in capsys.readouterr().out
    page = (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")
    assert "No training curves" in page and "--run RUN_DIR" in page
    assert not (tmp_path / "plain" / "curves.png").exists()
    assert main(["evaluate", str(model), str(corpus), "--samples-per-persona", "0", "--report",
                 str(tmp_path / "with_run"), "--run", str(run_dir)]) == 0
    assert (tmp_path / "with_run" / "curves.png").read_bytes().startswith(PNG)
    assert main(["evaluate", str(model), str(corpus), "--include-real"]) == 2
    assert "--report" in capsys.readouterr().err
