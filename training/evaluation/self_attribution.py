"""Self-attribution: does the model's own likelihood pick the real author of a held-out message?

Each message of a seeded sample (by personas with enough training messages) is scored after its real
context under every candidate author (model/attribution.py); it counts as attributed when its true author
gives it strictly the fewest bits. The headline figure uses the message's own bits, as "who writes like
this?"; `accuracy_with_turns` adds the speaker head's prior for who writes next (the joint
-log2 P(author, message | context)), which also knows who takes part in the conversation.

Candidates: every eligible persona when there are at most `attribution_candidates`; beyond that, a fixed
number per message: the true author, up to half of them personas who speak near the message in its own
conversation (nearest first: the people a reader would confuse), and a seeded sample of the others. The
style classifier is asked the same question on the same messages among the same candidates
(`style_accuracy`, `real_fidelity_same_candidates` in the result), which is what the model must beat.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from model.attribution import author_bits
from training.evaluation.fidelity import one_thread_on_cpu
from training.evaluation.held_out import HeldOut, Item
from training.evaluation.personas import REST, Personas
from training.evaluation.scoring import pass_steps
from training.evaluation.settings import EvalSettings
from training.style_classifier import StyleClassifier

NEARBY_MESSAGES = 50  # either side of a message: where its conversation's other speakers are looked for


@dataclass
class Attribution:
    accuracy: float | None = None  # the message's own bits
    accuracy_with_turns: float | None = None  # plus the speaker head's prior
    style_accuracy: float | None = None  # the style classifier, same messages, same candidates
    chance: float | None = None  # mean of 1 / candidates
    by_persona: dict[str, float] = field(default_factory=dict)  # top personas, then ⟨rest⟩
    style_by_persona: dict[str, float] = field(default_factory=dict)
    confusion: dict = field(default_factory=dict)  # {"labels": [...], "counts": [[true × predicted]]}
    messages: int = 0
    candidates: int = 0  # per message (every eligible persona when there are few)


def candidate_ids(held: HeldOut, item: Item, true_id: int, eligible: list[int], size: int,
                  rng: np.random.Generator) -> list[int]:
    """The authors `item` is scored under (ascending ids): all of `eligible` when they are at most `size`,
    else the true author, up to size // 2 eligible personas speaking near it, and a seeded sample of others."""
    if len(eligible) <= size:
        return sorted(eligible)
    allowed = set(eligible)
    chosen = {true_id}
    conv = held.convs[item.conv]
    nearby = sorted(range(max(0, item.pos - NEARBY_MESSAGES), min(len(conv), item.pos + NEARBY_MESSAGES + 1)),
                    key=lambda p: (abs(p - item.pos), p))
    for pos in nearby:
        if len(chosen) > size // 2:
            break
        author = held.authors.id_of(conv[pos].author)
        if author in allowed:
            chosen.add(author)
    for index in rng.permutation(len(eligible))[: size + len(chosen)]:
        if len(chosen) >= size:
            break
        chosen.add(eligible[int(index)])
    return sorted(chosen)


def self_attribution(module, vocab, held: HeldOut, personas: Personas, classifier: StyleClassifier | None,
                     settings: EvalSettings, rng: np.random.Generator) -> Attribution:
    """Attribute a seeded sample of held-out messages by the model's bits, and by the style classifier."""
    names = personas.with_messages(settings.min_train_messages)
    if len(names) < 2 or settings.attribution_messages <= 0:
        return Attribution()
    authors = held.authors
    eligible = [authors.id_of(name) for name in names]
    allowed = set(eligible)
    pool = [i for i, item in enumerate(held.items) if held.author_id(item) in allowed]
    if not pool:
        return Attribution()
    chosen = sorted(rng.choice(len(pool), min(settings.attribution_messages, len(pool)), replace=False))
    size = max(2, settings.attribution_candidates)

    truths, picks, candidate_rows, texts = [], [], [], []
    right_turns = 0
    limit = pass_steps(len(vocab), len(authors), settings.logit_mib)
    with one_thread_on_cpu(settings.device):  # passes of a few dozen rows: one thread is faster
        for j in chosen:
            item = held.items[pool[j]]
            true_id, text, session, _ = held.entry(item.conv, item.pos)
            candidates = candidate_ids(held, item, true_id, eligible, size, rng)
            bits, prior = author_bits(module, vocab, text, candidates, held.context(item, settings.context_messages),
                                      session, pass_steps=limit)
            at = candidates.index(true_id)
            truths.append(true_id)
            picks.append(_strict_pick(bits, at, candidates))
            right_turns += int(_strict_pick(bits if prior is None else bits + prior, at, candidates) == true_id)
            candidate_rows.append(candidates)
            texts.append(text)

    result = Attribution(messages=len(truths), candidates=min(size, len(eligible)))
    truth_names = [authors.name_of(t) for t in truths]
    result.accuracy, result.by_persona = _accuracy([authors.name_of(p) for p in picks], truth_names, personas)
    result.accuracy_with_turns = right_turns / len(truths)
    result.chance = float(np.mean([1.0 / len(row) for row in candidate_rows]))
    result.confusion = _confusion([authors.name_of(p) for p in picks], truth_names, personas)
    if classifier is not None:
        style_picks = _classifier_picks(classifier, texts, truths, candidate_rows, authors)
        result.style_accuracy, result.style_by_persona = _accuracy(style_picks, truth_names, personas)
    return result


def _strict_pick(bits: torch.Tensor, true_at: int, candidates: list[int]) -> int:
    """The candidate with the fewest bits; a tie with the true author counts against it (no credit for a
    model that cannot tell them apart)."""
    others = torch.cat([bits[:true_at], bits[true_at + 1 :]])
    if others.numel() and float(bits[true_at]) < float(others.min()):
        return candidates[true_at]
    ranked = [i for i in torch.argsort(bits).tolist() if i != true_at]
    return candidates[ranked[0]] if ranked else candidates[true_at]


def _classifier_picks(classifier: StyleClassifier, texts: list[str], truths: list[int],
                      candidate_rows: list[list[int]], authors) -> list[str]:
    """The classifier's choice for each message among the same candidates (strict for the truth, likewise)."""
    picks: list[str] = []
    for width in sorted({len(row) for row in candidate_rows}):  # rows of one width score together
        rows = [r for r, row in enumerate(candidate_rows) if len(row) == width]
        names = [[authors.name_of(a) for a in candidate_rows[r]] for r in rows]
        scores = classifier.log_likelihoods([texts[r] for r in rows],
                                            np.array([classifier.class_ids(n) for n in names]))
        for k, r in enumerate(rows):
            at = candidate_rows[r].index(truths[r])
            picked = _strict_pick(-torch.from_numpy(scores[k]), at, list(range(width)))
            picks.append((r, names[k][picked]))
    return [name for _, name in sorted(picks)]


def _accuracy(predicted: list[str], truth: list[str], personas: Personas) -> tuple[float, dict[str, float]]:
    """Overall accuracy, and per persona: the top ones by name (most active first), then ⟨rest⟩."""
    right: Counter = Counter()
    total: Counter = Counter()
    for p, t in zip(predicted, truth, strict=True):
        label = personas.label(t)
        total[label] += 1
        right[label] += int(p == t)
    order = [name for name in personas.top if name in total] + ([REST] if REST in total else [])
    return sum(right.values()) / max(1, sum(total.values())), {name: right[name] / total[name] for name in order}


def _confusion(predicted: list[str], truth: list[str], personas: Personas) -> dict:
    """Counts of (true, predicted) over the top personas and ⟨rest⟩; names only."""
    labels = [name for name in personas.top if name in set(truth) | set(predicted)]
    if any(personas.label(n) == REST for n in truth + predicted):
        labels.append(REST)
    index = {name: i for i, name in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for p, t in zip(predicted, truth, strict=True):
        counts[index[personas.label(t)]][index[personas.label(p)]] += 1
    return {"labels": labels, "counts": counts}
