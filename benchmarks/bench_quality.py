"""Imitation quality beside a classical baseline, in one run: train for M minutes, evaluate, fit a character n-gram.

    python benchmarks/bench_quality.py CORPUS --minutes M [--preset P] [--json] [--workdir DIR] [--reuse]

CORPUS is anything `talklike import` reads (an export, a CSV such as ../shared/data/ubuntu-irc/train.csv, a
corpus .jsonl) or a speaker-labelled play (tinyshakespeare.txt, read by benchmarks/shakespeare_corpus.py).
Steps, as a user would take them: import into WORKDIR/corpus.jsonl; `talklike train corpus -o WORKDIR/run
--max-minutes M` with the defaults a user gets (plus --preset when given); `talklike evaluate`'s measures on
the held-out part (every held-out message scored); then `training.ngram_baseline` fitted on exactly the
training part the run trained on (interpolated Kneser-Ney and Witten-Bell, orders 5–7, the best on a tuning
slice of the training part, with per-author models mixed in) and scored on the same held-out characters.

Printed side by side: held-out bpc (per character and per message), author gain of both, the model's context
gain, self-attribution accuracy against the style classifier on the same messages, persona fidelity against
real fidelity, copy rate with the guard on and off, and training characters/s; where the bits go (bpc of both
by position in the message, and for messages that open a turn against those that continue one); then the
targets of issue 13
with whether each holds. Figures only, never message text. --reuse keeps an existing WORKDIR/run (no
training) to re-measure it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.shakespeare_corpus import shakespeare_messages  # noqa: E402
from talklike.cli import main as talklike  # noqa: E402
from training.corpus import read_corpus, write_corpus  # noqa: E402


def is_play(path: str) -> bool:
    """A tinyshakespeare-style text: a `Speaker:` line opening the first paragraph."""
    if not path.endswith(".txt"):
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip()
    return first.endswith(":") and 0 < len(first) <= 42


def prepare_corpus(source: str, corpus: str) -> None:
    if is_play(source):
        write_corpus(corpus, shakespeare_messages(source))
        return
    with contextlib.redirect_stdout(sys.stderr):  # the import report; stdout carries only the figures
        failed = talklike(["import", source, "-o", corpus]) != 0
    if failed:
        raise SystemExit(f"bench_quality: importing {source} failed")


def train(corpus: str, run_dir: str, minutes: float, preset: str | None) -> float:
    argv = ["train", corpus, "-o", run_dir, "--max-minutes", str(minutes)] + (["--preset", preset] if preset else [])
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        failed = talklike(argv) != 0
    if failed:
        raise SystemExit("bench_quality: training failed")
    return time.perf_counter() - started


def training_chars_per_s(run_dir: str) -> float | None:
    """The median characters/s of the run's logged training windows."""
    rates = []
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("kind") == "train" and row.get("chars_per_s"):
                rates.append(float(row["chars_per_s"]))
    return statistics.median(rates) if rates else None


def fitted_baseline(run_dir: str, corpus: str, val_fraction: float, gap: float):
    """(the model, the held-out part as evaluation reads it, the n-gram fitted on the run's training part)."""
    from training.evaluation.held_out import held_out_part
    from training.evaluation.scoring import load_model
    from training.ngram_baseline import fit_baseline

    model = load_model(run_dir)
    train_part, _, held = held_out_part(list(read_corpus(corpus)), val_fraction, model.authors, gap)
    baseline = fit_baseline(train_part, model.vocab, model.authors, log=lambda line: print(line, file=sys.stderr))
    return model, held, baseline


def held_texts(held) -> tuple[list[str], list[int]]:
    return [held.convs[it.conv][it.pos].text for it in held.items], [held.author_id(it) for it in held.items]


def baseline_bits(baseline, held) -> dict[str, list[np.ndarray]]:
    """Bits of each character of every held-out message under the n-gram, with the author mixed in and without."""
    texts, ids = held_texts(held)
    return {"with_author": baseline.message_bits(texts, ids), "global": baseline.message_bits(texts, ids, False)}


def baseline_figures(baseline, bits_by_model: dict[str, list[np.ndarray]]) -> dict:
    """The n-gram's held-out bpc with and without the author, on every held-out message."""
    figures = {}
    for label, per_message in bits_by_model.items():
        bits = [b for b in per_message if len(b)]
        chars = sum(len(b) for b in bits)
        figures[label] = {"bpc": sum(float(b.sum()) for b in bits) / chars,
                          "bpc_per_message": float(np.mean([b.mean() for b in bits]))}
    mixed, alone = figures["with_author"], figures["global"]
    return {"bpc": mixed["bpc"], "bpc_per_message": mixed["bpc_per_message"], "bpc_global": alone["bpc"],
            "author_gain_bpc": alone["bpc"] - mixed["bpc"],
            "author_gain_bpc_per_message": alone["bpc_per_message"] - mixed["bpc_per_message"],
            "messages": len(bits_by_model["with_author"]), **baseline.report["chosen"], "fit_seconds": baseline.report["fit_seconds"]}


POSITIONS = (0, 1, 5, 20)  # characters 1, 2–5, 6–20, 21 on
POSITION_LABELS = ("char 1", "chars 2-5", "chars 6-20", "chars 21+")


def where_bits_go(model, ngram_bits: list[np.ndarray], held, context_messages: int = 8,
                  segment_messages: int = 16) -> list[dict]:
    """Bits per character of both models by position in the message, and for messages that open a turn (another
    author, or a session, before them) against those that continue one: the same runs evaluation scores."""
    from training.evaluation.held_out import build_sequence
    from training.evaluation.scoring import pass_steps, score_sequences

    items = held.items
    runs = held.segments(segment_messages)
    sequences = [build_sequence(model.vocab, held.context(items[run[0]], context_messages),
                                [(i, held.entry(items[i].conv, items[i].pos)) for i in run]) for run in runs]
    limit = pass_steps(len(model.vocab), len(model.authors), 256)
    _, _, lstm = score_sequences(model.module, sequences, len(items), 32768, "cpu", limit, position_edges=POSITIONS)
    ngram = np.zeros_like(lstm)
    chars = np.zeros_like(lstm)
    for row, bits in enumerate(ngram_bits):
        for column, (low, high) in enumerate(zip(POSITIONS, (*POSITIONS[1:], None), strict=True)):
            ngram[row, column] = bits[low:high].sum()
            chars[row, column] = len(bits[low:high])
    opens = np.array([it.pos == 0 or held.convs[it.conv][it.pos - 1].author != held.convs[it.conv][it.pos].author
                      for it in items])
    rows = []
    for column, label in enumerate(POSITION_LABELS):
        rows.append(_bits_row(label, lstm[:, column], ngram[:, column], chars[:, column], chars.sum()))
    for label, chosen in (("opens a turn", opens), ("continues a turn", ~opens)):
        rows.append(_bits_row(label, lstm[chosen].sum(axis=1), ngram[chosen].sum(axis=1), chars[chosen].sum(axis=1),
                              chars.sum()))
    return rows


def _bits_row(label: str, lstm: np.ndarray, ngram: np.ndarray, chars: np.ndarray, all_chars: float) -> dict:
    n = float(chars.sum())
    return {"where": label, "chars_share": n / all_chars if all_chars else None,
            "talklike_bpc": float(lstm.sum()) / n if n else None, "baseline_bpc": float(ngram.sum()) / n if n else None}


def targets(model: dict, baseline: dict, minutes: float) -> list[tuple[str, bool | None]]:
    """Issue 13's bars (the 30-minute bpc margin from 30 minutes up, else the 8-minute one)."""
    margin = 0.25 if minutes >= 30 else 0.1

    def holds(value, test):
        return None if value is None else bool(test(value))

    return [
        (f"bpc ≥ {margin} below the baseline", holds(model["bpc"], lambda v: v <= baseline["bpc"] - margin)),
        ("author_gain_bpc ≥ 0.05", holds(model["author_gain_bpc"], lambda v: v >= 0.05)),
        ("context_gain_bpc ≥ 0.03", holds(model["context_gain_bpc"], lambda v: v >= 0.03)),
        ("self-attribution beats the style classifier",
         holds(model["self_attribution_accuracy"],
               lambda v: model["real_fidelity_same_candidates"] is not None and v > model["real_fidelity_same_candidates"])),
        ("persona fidelity ≥ 0.8 × real fidelity",
         holds(model["persona_fidelity"], lambda v: model["real_fidelity"] is not None and v >= 0.8 * model["real_fidelity"])),
        ("copy rate with the guard on = 0", holds(model["copy_rate"], lambda v: v == 0)),
    ]


def fmt(value, percent: bool = False) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def render(result: dict) -> str:
    m, b = result["talklike"], result["baseline"]
    rows = [
        ("held-out bpc", fmt(m["bpc"]), fmt(b["bpc"])),
        ("bpc per message", fmt(m["bpc_per_message"]), fmt(b["bpc_per_message"])),
        ("author gain (bpc)", fmt(m["author_gain_bpc"]), fmt(b["author_gain_bpc"])),
        ("context gain (bpc)", fmt(m["context_gain_bpc"]), "0 (reads no context)"),
        ("self-attribution", fmt(m["self_attribution_accuracy"], True),
         f"style classifier {fmt(m['real_fidelity_same_candidates'], True)}"),
        ("persona fidelity", fmt(m["persona_fidelity"], True), f"real fidelity {fmt(m['real_fidelity'], True)}"),
        ("copy rate, guard on", fmt(m["copy_rate"], True), f"off {fmt(m['copy_rate_unguarded'], True)}"),
        ("next-speaker guess", fmt(m.get("next_speaker_accuracy"), True), "the speaker head, at message ends"),
        ("training chars/s", f"{m['train_chars_per_s']:,.0f}" if m["train_chars_per_s"] else "—", ""),
    ]
    lines = [f"bench_quality {result['corpus']}: {result['minutes']} min, preset {result['preset']}, "
             f"{result['held_out_messages']:,} held-out messages; baseline {b['method']} order {b['order']} "
             f"(fitted in {b['fit_seconds']:.0f} s)",
             f"{'':<22}{'talklike':>12}  baseline", *(f"{k:<22}{v:>12}  {w}" for k, v, w in rows),
             f"bpc ratio talklike/baseline {m['bpc'] / b['bpc']:.3f}", "where the bits go (bpc):",
             *(f"  {row['where']:<20}{fmt(row['talklike_bpc']):>12}  {fmt(row['baseline_bpc'])}   "
               f"{fmt(row['chars_share'], True)} of the characters" for row in result["where_bits_go"]),
             "targets:"]
    lines += [f"  [{'yes' if ok else 'n/a' if ok is None else 'NO '}] {name}" for name, ok in result["targets"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", metavar="CORPUS")
    parser.add_argument("--minutes", type=float, required=True, help="training budget (talklike train --max-minutes)")
    parser.add_argument("--preset", help="model preset (default: what talklike train picks)")
    parser.add_argument("--workdir", help="where the corpus and run go (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="measure WORKDIR/run again instead of training")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.reuse and not args.workdir:
        parser.error("--reuse needs --workdir")
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-quality-")
    os.makedirs(workdir, exist_ok=True)
    corpus, run_dir = os.path.join(workdir, "corpus.jsonl"), os.path.join(workdir, "run")

    if not (args.reuse and os.path.exists(corpus)):
        prepare_corpus(args.corpus, corpus)
    wall = None if args.reuse else train(corpus, run_dir, args.minutes, args.preset)

    from training.evaluation import evaluate

    measured = evaluate(run_dir, corpus, max_messages=10**9)
    settings = measured["settings"]
    loaded, held, fitted = fitted_baseline(run_dir, corpus, settings["val_fraction"], settings["session_gap"])
    bits = baseline_bits(fitted, held)  # scored once: both the figures and the breakdown read them
    baseline = baseline_figures(fitted, bits)
    where = where_bits_go(loaded, bits["with_author"], held, settings["context_messages"], settings["segment_messages"])
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    keys = ("bpc", "bpc_per_message", "author_gain_bpc", "author_gain_bpc_per_message", "context_gain_bpc",
            "self_attribution_accuracy", "real_fidelity_same_candidates", "persona_fidelity", "real_fidelity",
            "copy_rate", "copy_rate_unguarded", "next_speaker_accuracy")
    model = {k: measured[k] for k in keys} | {"train_chars_per_s": training_chars_per_s(run_dir),
                                              "train_wall_s": None if wall is None else round(wall, 1)}
    result = {"corpus": args.corpus, "minutes": args.minutes,
              "preset": config.get("preset") or config.get("train", {}).get("preset") or args.preset,
              "held_out_messages": measured["counts"]["held_out_messages"], "talklike": model, "baseline": baseline,
              "bpc_ratio": model["bpc"] / baseline["bpc"], "where_bits_go": where, "workdir": workdir}
    result["targets"] = targets(model, baseline, args.minutes)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
