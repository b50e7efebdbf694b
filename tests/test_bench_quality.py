"""benchmarks/bench_quality.py end to end on a small speaker-labelled play: both sides measured on one split."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_quality.py"
LINES = {"ROMEO": ["but soft, what light through yonder window", "she speaks, yet she says nothing"],
         "NURSE": ["faith, I can tell you, madam", "go, girl, seek happy nights"],
         "FRIAR": ["these violent delights have violent ends", "wisely and slow, they stumble"]}


def bench():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_play(path: Path, speeches: int = 600) -> None:
    rng = random.Random(3)
    parts = []
    for _ in range(speeches):
        speaker = rng.choice(sorted(LINES))
        parts.append(f"{speaker}:\n{rng.choice(LINES[speaker])}\n")
    path.write_text("\n".join(parts), encoding="utf-8")


def test_bench_quality_measures_model_and_baseline_on_the_same_split(tmp_path, capsys):
    play = tmp_path / "play.txt"
    write_play(play)
    quality = bench()
    assert quality.is_play(str(play))
    workdir = tmp_path / "work"
    assert quality.main([str(play), "--minutes", "0.15", "--preset", "tiny", "--workdir", str(workdir),
                         "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model, baseline = result["talklike"], result["baseline"]
    assert result["preset"] == "tiny" and result["held_out_messages"] == 60  # 10% of each 100-speech block
    assert baseline["messages"] == result["held_out_messages"]
    # Six fixed lines, each always said by the same speaker: the n-gram learns them, and the author helps it.
    assert 0 < baseline["bpc"] < 1.0 and baseline["author_gain_bpc"] > 0
    assert baseline["order"] in (5, 6, 7) and baseline["method"] in ("kn", "wb")
    assert math.isfinite(model["bpc"]) and model["train_chars_per_s"] > 0
    assert result["bpc_ratio"] == pytest.approx(model["bpc"] / baseline["bpc"])
    assert model["copy_rate"] == 0.0
    # Where the bits go: the position rows split exactly the characters both sides scored.
    positions = result["where_bits_go"][:4]
    assert sum(row["chars_share"] for row in positions) == pytest.approx(1.0)
    for side, figure in (("talklike_bpc", model["bpc"]), ("baseline_bpc", baseline["bpc"])):
        assert sum(row[side] * row["chars_share"] for row in positions) == pytest.approx(figure, rel=1e-6)
    assert [row["where"] for row in result["where_bits_go"][4:]] == ["opens a turn", "continues a turn"]
    names = [name for name, _ in result["targets"]]
    assert names[0] == "bpc ≥ 0.1 below the baseline" and len(names) == 6

    # --reuse measures the same run again without training: the same figures.
    assert quality.main([str(play), "--minutes", "0.15", "--workdir", str(workdir), "--reuse"]) == 0
    table = capsys.readouterr().out
    assert f"{baseline['bpc']:.3f}" in table and "targets:" in table


def test_an_imported_corpus_keeps_stdout_for_the_figures(tmp_path, capsys):
    source = tmp_path / "chat.csv"
    source.write_text("author,text,timestamp,conversation\n"
                      + "".join(f"{a},{t},{1.6e9 + i},c\n" for i, (a, t) in enumerate([("Ada", "hi"), ("Bo", "yo")] * 5)),
                      encoding="utf-8")
    bench().prepare_corpus(str(source), str(tmp_path / "corpus.jsonl"))
    captured = capsys.readouterr()
    assert captured.out == "" and "wrote" in captured.err  # the import report went to stderr
    assert (tmp_path / "corpus.jsonl").stat().st_size > 0
