"""What knowing who spoke recently could be worth: a character n-gram alone against the same n-gram mixed with a
"recent speakers' names" predictor, on a corpus's held-out part. Issue 13's context gain is ≈ 0: the network
reads the conversation but gains nothing from it; in a multi-party chat the most predictable thing the
conversation gives is whom a message addresses (ubuntu-irc: 39% of messages open with a recent speaker's nick).

    python benchmarks/bench_names.py CORPUS.jsonl [--recent 20] [--known N] [--json]

The predictor: at each character of a message's words, the recent speakers (the last R distinct authors of
the conversation before this message, not its own author) whose name continues the word typed so far, each
weighted 1 / (recency rank); it abstains where no name fits. Mixed in as λ·q + (1 − λ)·P_ngram where it has an
opinion, λ apart for a word's first character and the rest, at the message's first word or any word; the λ
are the best of a grid on the held-out part itself (four numbers: an estimate of what a learned weight
could reach, not a tuned result). The n-gram is `training.ngram_baseline`'s global Kneser-Ney 7-gram fitted on
the training part. Figures only, never message text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model.ngram import CountModel, Framed  # noqa: E402
from model.vocab import Vocabulary  # noqa: E402
from training.corpus import read_corpus  # noqa: E402
from training.dataset import conversations, split_messages, spoken  # noqa: E402

GRID = np.round(np.linspace(0.0, 0.95, 20), 2)


def recent_speakers(messages, limit: int, known: set[str] | None = None) -> dict[int, list[str]]:
    """id(message) → the last `limit` distinct authors before it in its conversation, most recent first (only
    those in `known`, when given)."""
    out = {}
    for conv in conversations(messages):
        recent: list[str] = []
        for m in conv:
            out[id(m)] = [a for a in recent if a != m.author and (known is None or a in known)][:limit]
            if m.author in recent:
                recent.remove(m.author)
            recent.insert(0, m.author)
    return out


def name_probabilities(text: str, names: list[str], first_word_only: bool):
    """Per character of `text`: (q of that character under the names predictor or nan where it abstains,
    True at a word's first character)."""
    q = np.full(len(text), np.nan)
    first = np.zeros(len(text), dtype=bool)
    start = 0
    for i, ch in enumerate(text):
        if i > 0 and text[i - 1].isspace():
            start = i
        if first_word_only and start > 0:
            break
        typed = text[start:i]
        weights: dict[str, float] = defaultdict(float)
        total = 0.0
        for rank, name in enumerate(names):
            if len(name) > len(typed) and name.startswith(typed):
                weights[name[len(typed)]] += 1.0 / (rank + 1)
                total += 1.0 / (rank + 1)
        if total > 0:
            q[i] = weights.get(ch, 0.0) / total
            first[i] = i == start
    return q, first


def best_mix(p: np.ndarray, q: np.ndarray, first: np.ndarray) -> tuple[float, dict[str, float]]:
    """Total bits with the best λ for first characters and for the rest (each chosen on its own positions)."""
    bits = -np.log2(p)
    lambdas = {}
    for label, where in (("first", first & ~np.isnan(q)), ("rest", ~first & ~np.isnan(q))):
        options = [-np.log2((1 - lam) * p[where] + lam * q[where]).sum() for lam in GRID]
        lambdas[label] = float(GRID[int(np.argmin(options))])
        bits[where] = -np.log2((1 - lambdas[label]) * p[where] + lambdas[label] * q[where])
    return float(bits.sum()), lambdas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="a corpus .jsonl (`talklike import`'s output)")
    parser.add_argument("--recent", type=int, default=20, help="recent speakers the predictor knows (default 20)")
    parser.add_argument("--order", type=int, default=7, help="n-gram order (default 7)")
    parser.add_argument("--known", type=int, default=0,
                        help="only the N most active authors' names are known (a model's personas; default 0: all)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    messages = spoken(list(read_corpus(args.corpus)))
    train, held = split_messages(messages)
    vocab = Vocabulary.build(m.text for m in train)
    model = CountModel(len(vocab), args.order).fit(Framed.build([vocab.encode(m.text) for m in train], [0] * len(train)))
    framed = Framed.build([vocab.encode(m.text) for m in held], [0] * len(held))
    p_all = model.probabilities(framed, args.order, "kn")[framed.scored]
    lengths = [len(m.text) for m in held]  # one symbol per character (unknown ones as UNK), in order
    known = {a for a, _ in Counter(m.author for m in train).most_common(args.known)} if args.known else None
    recent = recent_speakers(messages, args.recent, known)
    figures = {"known_names": args.known or "all", "held_out_messages": len(held), "held_out_chars": int(sum(lengths)),
               "ngram_bpc": round(float(-np.log2(p_all).sum() / len(p_all)), 4)}
    for scope, first_only in (("first_word", True), ("any_word", False)):
        qs, firsts = [], []
        for m in held:
            q, first = name_probabilities(m.text, recent[id(m)], first_only)
            qs.append(q)
            firsts.append(first)
        q, first = np.concatenate(qs), np.concatenate(firsts)
        total, lambdas = best_mix(p_all, q, first)
        figures[scope] = {"bpc": round(total / len(p_all), 4), "lambdas": lambdas,
                          "share_with_opinion": round(float(np.mean(~np.isnan(q))), 4),
                          "gain_bpc": round(figures["ngram_bpc"] - total / len(p_all), 4)}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"held out: {figures['held_out_messages']} messages, {figures['held_out_chars']} characters")
        print(f"n-gram alone: {figures['ngram_bpc']:.4f} bpc")
        for scope in ("first_word", "any_word"):
            f = figures[scope]
            print(f"with recent speakers' names ({scope}): {f['bpc']:.4f} bpc (gain {f['gain_bpc']:.4f}; opinion at "
                  f"{100 * f['share_with_opinion']:.1f}% of characters; λ {f['lambdas']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
