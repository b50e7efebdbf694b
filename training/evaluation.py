"""Imitation quality on the held-out part of a corpus: bits per character, what author and context are
worth, next-speaker accuracy, and persona fidelity judged by an independent style classifier.

Every held-out message is scored as its own sequence: its last k preceding messages (the context, read
but not scored), then the message itself. Three versions of each sequence run through the model in
padded batches:

- true:    the real context, the message under its real author → `bpc`, `bpc_by_author`, next speaker;
- other:   the real context, the message under ⟨other⟩        → `author_gain_bpc` = other − true;
- foreign: k messages from another conversation (or a distant part of the only one) as context, the
  message under its real author                              → `context_gain_bpc` = foreign − true.

Only the message's own characters are scored (not ⟨bos⟩/⟨eos⟩/⟨session⟩), so the three conditions
count exactly the same targets. This differs slightly from the trainer's validation bpc, which also
scores the special steps.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from model.stream import DEFAULT_SESSION_GAP, encode_message, message_text, starts_session
from talklike.errors import UserError
from training.corpus import Message, read_corpus
from training.style_classifier import StyleClassifier

log = logging.getLogger(__name__)

LOG2 = math.log(2.0)


@dataclass
class EvalSettings:
    """Knobs of one evaluation; written into the result so figures can be reproduced."""

    context_messages: int = 8  # k: preceding messages read before each scored message
    max_messages: int = 1500  # held-out messages scored at most (an even, seeded subsample beyond)
    samples_per_persona: int = 24  # generated replies per persona for persona_fidelity
    generation_contexts: int = 6  # distinct real held-out contexts the replies continue from
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    max_chars: int = 200  # longest generated reply
    min_train_messages: int = 5  # a persona needs this many training messages to be a classifier class
    batch_tokens: int = 32768  # padded steps per forward pass (bounds memory of the (B,T,V) logits)
    seed: int = 0
    val_fraction: float | None = None  # None: the fraction the model was trained with (else 0.1)
    session_gap: float | None = None  # None: the gap the model was trained with (else 6 h)
    device: str = "cpu"


@dataclass
class LoadedModel:
    """What evaluation needs from an artifact or a training run, whichever was given."""

    module: torch.nn.Module  # forward(chars, authors, h, c) and init_state(batch), eval mode
    vocab: object
    authors: object
    kind: str  # "artifact" or "checkpoint"
    train_config: dict = field(default_factory=dict)


def load_model(source: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """Load an exported artifact (.pt), a checkpoint file, or a run directory's best checkpoint."""
    path = os.fspath(source)
    if not os.path.exists(path):
        raise UserError(f"{path}: no such model file or run directory")
    if os.path.isdir(path):
        return _from_checkpoint(path, device)
    from model.artifact import ArtifactError, load_artifact

    try:
        artifact = load_artifact(path, map_location=device)
    except ArtifactError as artifact_error:
        # A checkpoint file (run/checkpoints/best.pt) is not an artifact but is a fine thing to evaluate.
        try:
            return _from_checkpoint(path, device)
        except UserError:
            raise artifact_error from None
    card = artifact.card or {}
    train_config = card.get("train_config") or card.get("training") or {}
    module = artifact.module.to(device).eval()
    return LoadedModel(module, artifact.vocab, artifact.authors, "artifact", dict(train_config))


def _from_checkpoint(path: str, device: str) -> LoadedModel:
    from training.checkpoint import load_checkpoint, model_from_checkpoint

    checkpoint = load_checkpoint(path)
    module, vocab, authors = model_from_checkpoint(checkpoint)
    train_config = checkpoint.get("train_config") or {}
    if not isinstance(train_config, dict):
        train_config = asdict(train_config)
    return LoadedModel(module.to(device).eval(), vocab, authors, "checkpoint", dict(train_config))


# ---------------------------------------------------------------------------------------------------
# The held-out part and the sequences built from it


def in_stream(message: Message) -> bool:
    """Whether the stream reads this message (text, or media with a caption); the model's own rule."""
    return message_text(message.kind, message.text) is not None


def session_starts(previous: Message | None, message: Message, gap: float) -> bool:
    """Whether a ⟨session⟩ step precedes `message` (after `previous` in its conversation, or first)."""
    return starts_session(previous is None, previous.timestamp if previous else None, message.timestamp, gap)


@dataclass
class Item:
    """One held-out message with where it sits: conversation index, position, session flag."""

    conv: int
    pos: int
    session: bool


@dataclass
class ScoredSequence:
    chars: list[int]
    authors: list[int]
    start: int  # position of the target's ⟨bos⟩: logits at start..start+n-1 predict its n characters
    n_chars: int


def build_sequence(vocab, encode_message, context: list[tuple[int, str, bool]],
                   target: tuple[int, str, bool]) -> ScoredSequence:
    """Concatenate (author id, text, session) context messages and the target; remember where it starts."""
    chars: list[int] = []
    authors: list[int] = []
    for author_id, text, session in context:
        c, a = encode_message(vocab, author_id, text, session)
        chars += c
        authors += a
    author_id, text, session = target
    c, a = encode_message(vocab, author_id, text, session)
    start = len(chars) + c.index(vocab.BOS)
    chars += c
    authors += a
    return ScoredSequence(chars, authors, start, len(c) - c.index(vocab.BOS) - 2)


@torch.no_grad()
def score_sequences(module, sequences: list[ScoredSequence], batch_tokens: int, device: str,
                    pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bits of each target message, and the speaker head's argmax at its ⟨eos⟩, in padded batches.

    Sequences are sorted by length so a batch pads little; padding goes at the end, where a causal LSTM
    cannot let it change the scored steps.
    """
    bits = np.zeros(len(sequences))
    speaker = np.zeros(len(sequences), dtype=np.int64)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].chars))
    begin = 0
    while begin < len(order):
        end = begin + 1
        # lengths ascend, so the batch's padded size is (count) × (length of its last sequence)
        while end < len(order) and (end - begin + 1) * len(sequences[order[end]].chars) <= batch_tokens:
            end += 1
        batch = [sequences[i] for i in order[begin:end]]
        longest = len(batch[-1].chars)
        B = len(batch)
        chars = torch.full((B, longest), pad_id, dtype=torch.long)
        authors = torch.zeros((B, longest), dtype=torch.long)
        mask = torch.zeros((B, longest), dtype=torch.bool)
        eos = torch.zeros(B, dtype=torch.long)
        for row, seq in enumerate(batch):
            chars[row, : len(seq.chars)] = torch.tensor(seq.chars)
            authors[row, : len(seq.authors)] = torch.tensor(seq.authors)
            mask[row, seq.start : seq.start + seq.n_chars] = True
            eos[row] = seq.start + seq.n_chars + 1
        chars, authors, mask, eos = (t.to(device) for t in (chars, authors, mask, eos))
        h, c = module.init_state(B)
        char_logits, speaker_logits, _, _ = module(chars, authors, h.to(device), c.to(device))
        # char_logits (B,T,V): step t predicts chars[t+1]; the last step predicts nothing here
        targets = torch.cat([chars[:, 1:], torch.full((B, 1), pad_id, device=device)], dim=1)  # (B,T)
        logp = torch.log_softmax(char_logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        nats = -(logp * mask).sum(dim=1)  # (B,)
        rows = torch.arange(B, device=device)
        picks = speaker_logits[rows, eos].argmax(dim=-1)  # (B,)
        bits[order[begin:end]] = nats.cpu().numpy() / LOG2  # one host copy per batch
        speaker[order[begin:end]] = picks.cpu().numpy()
        begin = end
    return bits, speaker


# ---------------------------------------------------------------------------------------------------
# evaluate()


def evaluate(model_source, corpus_path, settings: EvalSettings | None = None, **overrides) -> dict:
    """Evaluate a model (artifact .pt, checkpoint file or run directory) on a corpus's held-out part.

    Returns a dict with bpc, bpc_by_author, author_gain_bpc, context_gain_bpc, next_speaker_accuracy,
    persona_fidelity, real_fidelity (each None where the corpus cannot support it), plus counts,
    per-persona breakdowns and the settings used.
    """
    settings = settings or EvalSettings()
    for key, value in overrides.items():
        if not hasattr(settings, key):
            raise TypeError(f"evaluate: unknown setting {key!r}")
        setattr(settings, key, value)
    started = time.perf_counter()
    model = load_model(model_source, settings.device)
    if not os.path.exists(corpus_path):
        raise UserError(f"{corpus_path}: no such corpus file")
    messages = list(read_corpus(corpus_path))
    if not messages:
        raise UserError(f"{corpus_path}: the corpus is empty")

    from training.dataset import conversations, split_messages, spoken

    val_fraction = settings.val_fraction
    if val_fraction is None:
        val_fraction = float(model.train_config.get("val_fraction", 0.1))
    gap = settings.session_gap
    if gap is None:
        gap = float(model.train_config.get("session_gap", DEFAULT_SESSION_GAP))
    resolved = asdict(settings) | {"val_fraction": val_fraction, "session_gap": gap}

    vocab, authors = model.vocab, model.authors
    personas = [name for name in authors.names[1:]]
    corpus_authors = {m.author for m in messages}
    if not corpus_authors & set(personas):
        raise UserError(
            f"{corpus_path}: none of the corpus's {len(corpus_authors)} authors is a persona of this model "
            f"({', '.join(personas[:5])}{', ...' if len(personas) > 5 else ''})"
        )

    train, held = split_messages(messages, val_fraction)
    held_ids = {id(m) for m in held}
    # Conversations as the stream reads them (spoken messages only); held-out ones located by identity.
    conv_list = conversations(spoken(messages))
    items: list[Item] = []
    for ci, conv in enumerate(conv_list):
        for pos, m in enumerate(conv):
            if id(m) in held_ids:
                items.append(Item(ci, pos, session_starts(conv[pos - 1] if pos else None, m, gap)))
    if not items:
        raise UserError(f"{corpus_path}: the held-out part is empty (too few messages to hold any out)")
    total_held = len(items)
    rng = np.random.default_rng(settings.seed)
    if len(items) > settings.max_messages:
        keep = np.sort(rng.choice(len(items), settings.max_messages, replace=False))
        items = [items[i] for i in keep]

    def entry(ci: int, pos: int, session: bool, author_id: int | None = None) -> tuple[int, str, bool]:
        m = conv_list[ci][pos]
        return (authors.id_of(m.author) if author_id is None else author_id, m.text, session)

    def true_context(item: Item) -> list[tuple[int, str, bool]]:
        conv = conv_list[item.conv]
        first = max(0, item.pos - settings.context_messages)
        return [entry(item.conv, p, p == first or session_starts(conv[p - 1], conv[p], gap))
                for p in range(first, item.pos)]

    true_seqs, other_seqs, foreign_seqs = [], [], []
    other_index, foreign_index = [], []
    for index, item in enumerate(items):
        context = true_context(item)
        target = entry(item.conv, item.pos, item.session)
        true_seqs.append(build_sequence(vocab, encode_message, context, target))
        if target[0] != 0:  # messages already under ⟨other⟩ cannot lose their author
            other_seqs.append(build_sequence(vocab, encode_message, context, (0, target[1], target[2])))
            other_index.append(index)
        foreign = foreign_context(conv_list, item, len(context), rng, gap, entry)
        if foreign is not None:
            foreign_seqs.append(build_sequence(vocab, encode_message, foreign, target))
            foreign_index.append(index)

    module = model.module
    true_bits, speaker_pred = score_sequences(module, true_seqs, settings.batch_tokens, settings.device)
    other_bits, _ = score_sequences(module, other_seqs, settings.batch_tokens, settings.device)
    foreign_bits, _ = score_sequences(module, foreign_seqs, settings.batch_tokens, settings.device)
    n_chars = np.array([s.n_chars for s in true_seqs], dtype=np.float64)

    # Per author under the model's names: authors folded into ⟨other⟩ are reported as ⟨other⟩.
    by_author_bits: dict[str, float] = Counter()
    by_author_chars: dict[str, float] = Counter()
    for index, item in enumerate(items):
        name = authors.name_of(authors.id_of(conv_list[item.conv][item.pos].author))
        by_author_bits[name] += true_bits[index]
        by_author_chars[name] += n_chars[index]
    bpc = float(true_bits.sum() / n_chars.sum())
    bpc_by_author = {name: float(by_author_bits[name] / by_author_chars[name])
                     for name in sorted(by_author_chars, key=lambda n: -by_author_chars[n])}

    author_gain = None
    if other_index:
        chars_sub = n_chars[other_index].sum()
        author_gain = float((other_bits.sum() - true_bits[other_index].sum()) / chars_sub)
    context_gain = None
    if foreign_index:
        chars_sub = n_chars[foreign_index].sum()
        context_gain = float((foreign_bits.sum() - true_bits[foreign_index].sum()) / chars_sub)

    # Next speaker: at the ⟨eos⟩ of held-out messages followed by another message in the same session.
    hits, turns = 0, 0
    for index, item in enumerate(items):
        conv = conv_list[item.conv]
        if item.pos + 1 < len(conv) and not session_starts(conv[item.pos], conv[item.pos + 1], gap):
            turns += 1
            hits += int(speaker_pred[index] == authors.id_of(conv[item.pos + 1].author))
    next_speaker = hits / turns if turns else None

    fidelity = persona_fidelity(model, train, held, conv_list, items, settings, gap, entry, true_context)

    return {
        "bpc": bpc,
        "bpc_by_author": bpc_by_author,
        "author_gain_bpc": author_gain,
        "context_gain_bpc": context_gain,
        "next_speaker_accuracy": next_speaker,
        "persona_fidelity": fidelity["persona_fidelity"],
        "real_fidelity": fidelity["real_fidelity"],
        "persona_fidelity_by_author": fidelity["by_persona"],
        "real_fidelity_by_author": fidelity["real_by_persona"],
        "counts": {
            "held_out_messages": total_held,
            "scored_messages": len(items),
            "scored_chars": int(n_chars.sum()),
            "author_gain_messages": len(other_index),
            "context_gain_messages": len(foreign_index),
            "next_speaker_turns": turns,
            "personas_evaluated": len(fidelity["by_persona"]),
            "generated_replies": fidelity["generated"],
            "real_fidelity_messages": fidelity["real_messages"],
        },
        "model": {"source": os.fspath(model_source), "kind": model.kind, "personas": personas},
        "settings": resolved,
        "seconds": round(time.perf_counter() - started, 3),
    }


def foreign_context(conv_list: list[list[Message]], item: Item, count: int, rng: np.random.Generator,
                    gap: float, entry) -> list[tuple[int, str, bool]] | None:
    """`count` consecutive messages from elsewhere: another conversation if one is long enough, else a
    part of the same conversation at least `count` messages away from the target's own context."""
    if count == 0:
        return None
    others = [ci for ci, conv in enumerate(conv_list) if ci != item.conv and len(conv) >= count]
    if others:
        ci = others[int(rng.integers(len(others)))]
        first = int(rng.integers(len(conv_list[ci]) - count + 1))
    else:
        # Same conversation: the window must end `count` messages before the true context starts.
        latest = item.pos - 3 * count
        if latest < 0:
            return None
        ci = item.conv
        first = int(rng.integers(latest + 1))
    conv = conv_list[ci]
    return [entry(ci, p, p == first or session_starts(conv[p - 1], conv[p], gap)) for p in range(first, first + count)]


def persona_fidelity(model: LoadedModel, train, held, conv_list, items, settings: EvalSettings, gap: float,
                     entry, true_context) -> dict:
    """Generate replies per persona from real held-out contexts and ask the style classifier who wrote them.

    The classifier learns from the real training messages of the personas that have enough of them; its
    accuracy on real held-out messages of the same personas is the ceiling to read the figure against.
    """
    result = {"persona_fidelity": None, "real_fidelity": None, "by_persona": {}, "real_by_persona": {},
              "generated": 0, "real_messages": 0}
    personas = set(model.authors.names[1:])
    counts = Counter(m.author for m in train if in_stream(m) and m.author in personas)
    classes = sorted(name for name, n in counts.items() if n >= settings.min_train_messages)
    if len(classes) < 2 or not items:
        return result  # attribution needs at least two candidate authors
    texts = [m.text for m in train if in_stream(m) and m.author in classes]
    labels = [m.author for m in train if in_stream(m) and m.author in classes]
    classifier = StyleClassifier().fit(texts, labels)

    real = [m for m in held if in_stream(m) and m.author in classes]
    if real:
        predicted = classifier.predict([m.text for m in real])
        result["real_fidelity"] = sum(p == m.author for p, m in zip(predicted, real, strict=True)) / len(real)
        for name in classes:
            mine = [p == name for p, m in zip(predicted, real, strict=True) if m.author == name]
            if mine:
                result["real_by_persona"][name] = sum(mine) / len(mine)
        result["real_messages"] = len(real)

    from model.generation import Generator

    generator = Generator(model.module, model.vocab, model.authors)
    rng = np.random.default_rng(settings.seed + 1)
    n_contexts = max(1, min(settings.generation_contexts, settings.samples_per_persona, len(items)))
    chosen = [items[i] for i in sorted(rng.choice(len(items), n_contexts, replace=False))]
    states = []
    for item in chosen:
        state = generator.init_state(1)
        # The context ends with the held-out message itself: the persona answers it.
        for author_id, text, session in true_context(item) + [entry(item.conv, item.pos, item.session)]:
            state = generator.feed(state, author_id, text, session=session)
        states.append(state)
    per_context = [settings.samples_per_persona // n_contexts + (k < settings.samples_per_persona % n_contexts)
                   for k in range(n_contexts)]
    generated: list[str] = []
    wanted: list[str] = []
    for name in classes:
        persona_id = model.authors.id_of(name)
        for k, state in enumerate(states):
            if per_context[k] == 0:
                continue
            replies = generator.reply(state, persona_id, n=per_context[k], temperature=settings.temperature,
                                      top_k=settings.top_k, top_p=settings.top_p, min_chars=1,
                                      max_chars=settings.max_chars, seed=settings.seed * 1000 + persona_id * 31 + k)
            generated += replies
            wanted += [name] * len(replies)
    if generated:
        predicted = classifier.predict(generated)
        result["persona_fidelity"] = sum(p == w for p, w in zip(predicted, wanted, strict=True)) / len(generated)
        for name in classes:
            mine = [p == name for p, w in zip(predicted, wanted, strict=True) if w == name]
            if mine:
                result["by_persona"][name] = sum(mine) / len(mine)
        result["generated"] = len(generated)
    return result
