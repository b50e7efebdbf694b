"""The scored measures: bits per character and next-speaker accuracy, and what author and context are worth.

- `bpc_and_next_speaker`: runs of up to `segment_messages` consecutive held-out messages, each run after its
  k preceding messages (so every message sees at least k messages of real context); bpc per character
  (all bits over all characters, where long messages weigh most) and per message (the mean of each message's
  own bits per character, where a few long pastes cannot dominate);
- `gain_sample`: a seeded sample of the scored messages, one per sequence after exactly its k preceding
  messages: the baseline both gains compare against;
- `author_gain`: the sample scored under ⟨other⟩ instead of the real author: the difference;
- `context_gain`: the sample after k messages from another conversation (or a distant part of the only one)
  instead of their own: the difference.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from model.vocab import Vocabulary
from training.evaluation.held_out import HeldOut, ScoredSequence, build_sequence
from training.evaluation.personas import Personas
from training.evaluation.scoring import pass_steps, score_sequences
from training.evaluation.settings import EvalSettings


def score(module, vocab: Vocabulary, held: HeldOut, sequences: list[ScoredSequence], n_targets: int,
          settings: EvalSettings) -> tuple[np.ndarray, np.ndarray]:
    """`score_sequences` within the settings' batch and logit bounds."""
    limit = pass_steps(len(vocab), len(held.authors), settings.logit_mib)
    return score_sequences(module, sequences, n_targets, settings.batch_tokens, settings.device, limit)


@dataclass
class BpcFigures:
    bpc: float
    bpc_per_message: float  # mean over scored messages of (bits / characters)
    bpc_by_author: dict[str, float]  # most characters first; the top personas, ⟨other⟩ (folded people), ⟨rest⟩
    next_speaker_accuracy: float | None  # None: no held-out message is followed in its session
    scored: list[int]  # indices into held.items of the messages scored
    scored_chars: int
    turns: int  # messages followed by another in the same session: the speaker head's questions


def bpc_and_next_speaker(module, vocab: Vocabulary, held: HeldOut, personas: Personas, settings: EvalSettings,
                         rng: np.random.Generator) -> BpcFigures:
    """Bits per character of the held-out messages, overall and per author (the top personas by name, the
    others pooled as ⟨rest⟩), and the speaker head's accuracy."""
    items, k = held.items, settings.context_messages
    runs = held.segments(settings.segment_messages)
    if len(items) > settings.max_messages:  # an even, seeded sample of runs keeps big corpora quick
        wanted = max(1, math.ceil(settings.max_messages / settings.segment_messages))
        runs = [runs[i] for i in sorted(rng.choice(len(runs), min(wanted, len(runs)), replace=False))]
    scored = [i for run in runs for i in run]
    sequences = [build_sequence(vocab, held.context(items[run[0]], k),
                                [(i, held.entry(items[i].conv, items[i].pos)) for i in run]) for run in runs]
    bits, speaker = score(module, vocab, held, sequences, len(items), settings)
    n_chars = held.char_counts(vocab)

    by_bits: Counter = Counter()
    by_chars: Counter = Counter()
    hits = turns = 0
    for i in scored:
        name = personas.label(held.authors.name_of(held.author_id(items[i])))
        by_bits[name] += bits[i]
        by_chars[name] += n_chars[i]
        following = held.next_author(items[i])
        if following is not None:
            turns += 1
            hits += int(speaker[i] == following)
    bpc = float(bits[scored].sum() / n_chars[scored].sum())
    per_message = float(np.mean(bits[scored] / np.maximum(n_chars[scored], 1)))
    by_author = {name: float(by_bits[name] / by_chars[name]) for name in sorted(by_chars, key=lambda n: -by_chars[n])}
    return BpcFigures(bpc, per_message, by_author, hits / turns if turns else None, scored,
                      int(n_chars[scored].sum()), turns)


@dataclass
class GainSample:
    """Held-out messages scored one per sequence, under their real author after their k real preceding messages."""

    chosen: list[int]  # indices into held.items
    bits: np.ndarray  # (len(chosen),) bits of each under the real author and context
    chars: np.ndarray  # (len(chosen),) characters of each

    def gain(self, changed_bits: np.ndarray, where: list[int]) -> float | None:
        """Bits per character lost when the messages at positions `where` are scored as `changed_bits`."""
        if not where:
            return None
        return float((changed_bits.sum() - self.bits[where].sum()) / self.chars[where].sum())

    def gain_per_message(self, changed_bits: np.ndarray, where: list[int]) -> float | None:
        """The same loss as a mean over messages of each one's bits per character."""
        if not where:
            return None
        return float(np.mean((changed_bits - self.bits[where]) / np.maximum(self.chars[where], 1)))


def gain_sample(module, vocab: Vocabulary, held: HeldOut, scored: list[int], settings: EvalSettings,
                rng: np.random.Generator) -> GainSample:
    """A seeded sample of `gain_messages` of the `scored` messages, scored as they really came."""
    chosen = [scored[i] for i in sorted(rng.choice(len(scored), min(settings.gain_messages, len(scored)),
                                                   replace=False))]
    sequences = []
    for j, i in enumerate(chosen):
        item = held.items[i]
        sequences.append(build_sequence(vocab, held.context(item, settings.context_messages),
                                        [(j, held.entry(item.conv, item.pos))]))
    bits, _ = score(module, vocab, held, sequences, len(chosen), settings)
    return GainSample(chosen, bits, held.char_counts(vocab)[chosen])


@dataclass
class Gain:
    bpc: float | None  # None: no message of the sample could be scored under the changed condition
    bpc_per_message: float | None
    messages: int
    same_conversation: int = 0  # context gain: foreign contexts taken from the message's own conversation


def author_gain(module, vocab: Vocabulary, held: HeldOut, sample: GainSample, settings: EvalSettings) -> Gain:
    """What the author input is worth: the sample's messages under ⟨other⟩, after the same real context."""
    sequences, where = [], []  # `where`: positions in the sample of the messages scored
    for j, i in enumerate(sample.chosen):
        item = held.items[i]
        entry = held.entry(item.conv, item.pos)
        if entry.author_id != 0:  # a message already under ⟨other⟩ has no author to lose
            sequences.append(build_sequence(vocab, held.context(item, settings.context_messages),
                                            [(len(where), entry._replace(author_id=0))]))
            where.append(j)
    bits, _ = score(module, vocab, held, sequences, len(where), settings)
    return Gain(sample.gain(bits, where), sample.gain_per_message(bits, where), len(where))


def context_gain(module, vocab: Vocabulary, held: HeldOut, sample: GainSample, settings: EvalSettings,
                 rng: np.random.Generator) -> Gain:
    """What the conversation is worth: the sample's messages after as many messages from elsewhere."""
    sequences, where = [], []
    same_conversation = 0
    for j, i in enumerate(sample.chosen):
        item = held.items[i]
        foreign = held.foreign_context(item, len(held.context(item, settings.context_messages)), rng)
        if foreign is not None:
            sequences.append(build_sequence(vocab, foreign[0], [(len(where), held.entry(item.conv, item.pos))]))
            where.append(j)
            same_conversation += foreign[1]
    bits, _ = score(module, vocab, held, sequences, len(where), settings)
    return Gain(sample.gain(bits, where), sample.gain_per_message(bits, where), len(where), same_conversation)
