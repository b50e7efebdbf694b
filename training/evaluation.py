"""Imitation quality on the held-out part of a corpus: bits per character, what author and context are
worth, next-speaker accuracy, and persona fidelity judged by an independent style classifier.

The held-out part is the one training held out (`training.dataset.split_messages` with the run's
fraction): the latest messages of each conversation. Sequences start from a fresh state with the k real
messages before the scored ones as context (read, not scored), and run through the model in padded
batches:

- `bpc`, `bpc_by_author`, `next_speaker_accuracy`: runs of up to 16 consecutive held-out messages, each
  run after its k preceding messages (so every message sees at least k messages of real context);
- `author_gain_bpc`: a seeded sample of held-out messages, one per sequence after exactly its k preceding
  messages, scored under its real author and under ⟨other⟩: the difference;
- `context_gain_bpc`: the same messages after k messages from another conversation (or a distant part of
  the only one) instead of their own: the difference.

Only a message's own characters are scored (not ⟨bos⟩/⟨eos⟩/⟨session⟩), so every condition counts the
same targets; the trainer's validation bpc also scores the special steps and reads longer context, so it
differs a little.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from model.stream import DEFAULT_SESSION_GAP, encode_message, message_text, starts_session
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError
from training.corpus import Message, read_corpus
from training.style_classifier import StyleClassifier

log = logging.getLogger(__name__)

LOG2 = math.log(2.0)


@dataclass
class EvalSettings:
    """Knobs of one evaluation; written into the result so figures can be reproduced."""

    context_messages: int = 8  # k: real preceding messages read before scored messages
    segment_messages: int = 16  # held-out messages scored per sequence for bpc (after k of context)
    max_messages: int = 20000  # held-out messages scored for bpc at most (an even, seeded sample beyond)
    gain_messages: int = 256  # held-out messages scored one by one for author and context gains
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
    vocab: Vocabulary
    authors: AuthorTable
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
    train_config = card.get("train_config") or {}
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


Entry = tuple[int, str, bool]  # (author id, text, session marker before it): one message as the model reads it


@dataclass
class Item:
    """One held-out message: which conversation, where in it."""

    conv: int
    pos: int


@dataclass
class HeldOut:
    """The corpus as the stream reads it, the held-out messages in it, and how to build their contexts."""

    convs: list[list[Message]]  # spoken messages per conversation, oldest first
    items: list[Item]  # the held-out ones, in corpus order
    authors: AuthorTable  # the model's
    gap: float  # session gap, seconds

    def entry(self, conv: int, pos: int, session: bool | None = None, author_id: int | None = None) -> Entry:
        """Message `pos` of conversation `conv`; its real session marker unless `session` says otherwise."""
        messages = self.convs[conv]
        m = messages[pos]
        if session is None:
            session = session_starts(messages[pos - 1] if pos else None, m, self.gap)
        return (self.authors.id_of(m.author) if author_id is None else author_id, m.text, session)

    def window(self, conv: int, first: int, count: int) -> list[Entry]:
        """`count` consecutive messages from `first`; the window opens with a session marker, as the model
        reads it from a fresh state like a resumed conversation."""
        return [self.entry(conv, p, True if p == first else None) for p in range(first, first + count)]

    def context(self, item: Item, k: int) -> list[Entry]:
        """The (up to) k messages before `item` in its conversation."""
        first = max(0, item.pos - k)
        return self.window(item.conv, first, item.pos - first)

    def author_id(self, item: Item) -> int:
        return self.authors.id_of(self.convs[item.conv][item.pos].author)

    def next_author(self, item: Item) -> int | None:
        """Author id of the message after `item` when it follows in the same session, else None."""
        messages = self.convs[item.conv]
        if item.pos + 1 >= len(messages) or session_starts(messages[item.pos], messages[item.pos + 1], self.gap):
            return None
        return self.authors.id_of(messages[item.pos + 1].author)

    def segments(self, size: int) -> list[list[int]]:
        """Runs of at most `size` consecutive held-out items of one conversation (indices into items)."""
        runs: list[list[int]] = []
        for index, item in enumerate(self.items):
            last = self.items[runs[-1][-1]] if runs else None
            if last is None or last.conv != item.conv or last.pos + 1 != item.pos or len(runs[-1]) >= size:
                runs.append([])
            runs[-1].append(index)
        return runs

    def foreign_context(self, item: Item, count: int, rng: np.random.Generator) -> tuple[list[Entry], bool] | None:
        """`count` consecutive messages from elsewhere, and whether they come from the item's own conversation:
        another conversation long enough to give them, else a part of the same conversation ending at least
        `2 × count` messages before the true context. None when neither exists."""
        if count == 0:
            return None
        others = [ci for ci, conv in enumerate(self.convs) if ci != item.conv and len(conv) >= count]
        if others:
            conv = others[int(rng.integers(len(others)))]
            return self.window(conv, int(rng.integers(len(self.convs[conv]) - count + 1)), count), False
        latest = item.pos - 3 * count  # the window [first, first+count) ends 2·count before the context
        if latest < 0:
            return None
        return self.window(item.conv, int(rng.integers(latest + 1)), count), True


@dataclass
class ScoredSequence:
    """Steps for one forward pass: context (read only) followed by one or more scored messages."""

    chars: list[int]
    authors: list[int]
    # (target index, position of its ⟨bos⟩, number of characters): logits at bos..bos+n-1 predict the
    # message's n characters, and its ⟨eos⟩ sits at bos+n+1.
    targets: list[tuple[int, int, int]] = field(default_factory=list)


def build_sequence(vocab: Vocabulary, context: list[Entry], scored: list[tuple[int, Entry]]) -> ScoredSequence:
    """Concatenate (author id, text, session) context messages, then the (target index, message) pairs."""
    seq = ScoredSequence([], [])
    for author_id, text, session in context:
        c, a = encode_message(vocab, author_id, text, session)
        seq.chars += c
        seq.authors += a
    for index, (author_id, text, session) in scored:
        c, a = encode_message(vocab, author_id, text, session)
        bos = c.index(vocab.BOS)
        seq.targets.append((index, len(seq.chars) + bos, len(c) - bos - 2))
        seq.chars += c
        seq.authors += a
    return seq


@torch.no_grad()
def score_sequences(module, sequences: list[ScoredSequence], n_targets: int, batch_tokens: int,
                    device: str, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bits of every target message, and the speaker head's argmax at its ⟨eos⟩, in padded batches.

    Sequences are sorted by length so a batch pads little; padding goes at the end, where a causal LSTM
    cannot let it change the scored steps.
    """
    bits = torch.zeros(n_targets, dtype=torch.float64, device=device)
    speaker = torch.zeros(n_targets, dtype=torch.long, device=device)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].chars))
    begin = 0
    while begin < len(order):
        end = begin + 1
        # lengths ascend, so a batch's padded size is (count) × (length of its last sequence)
        while end < len(order) and (end - begin + 1) * len(sequences[order[end]].chars) <= batch_tokens:
            end += 1
        batch = [sequences[i] for i in order[begin:end]]
        B, T = len(batch), len(batch[-1].chars)
        chars = torch.full((B, T), pad_id, dtype=torch.long)
        authors = torch.zeros((B, T), dtype=torch.long)
        owner = torch.full((B, T), -1, dtype=torch.long)  # which target each scored step belongs to
        eos_rows, eos_cols, eos_ids = [], [], []
        for row, seq in enumerate(batch):
            chars[row, : len(seq.chars)] = torch.tensor(seq.chars)
            authors[row, : len(seq.authors)] = torch.tensor(seq.authors)
            for index, bos, n in seq.targets:
                owner[row, bos : bos + n] = index
                eos_rows.append(row)
                eos_cols.append(bos + n + 1)
                eos_ids.append(index)
        chars, authors, owner = chars.to(device), authors.to(device), owner.to(device)
        h, c = module.init_state(B)
        char_logits, speaker_logits, _, _ = module(chars, authors, h.to(device), c.to(device))
        # char_logits (B,T,V): step t predicts chars[t+1]; the last step predicts nothing scored here
        targets = torch.cat([chars[:, 1:], torch.full((B, 1), pad_id, device=device)], dim=1)  # (B,T)
        logp = torch.log_softmax(char_logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        scored = owner >= 0
        bits.index_add_(0, owner[scored], -logp[scored].double() / LOG2)
        picks = speaker_logits[torch.tensor(eos_rows), torch.tensor(eos_cols)].argmax(dim=-1)  # (targets,)
        speaker[torch.tensor(eos_ids, device=device)] = picks
        begin = end
    return bits.cpu().numpy(), speaker.cpu().numpy()


# ---------------------------------------------------------------------------------------------------
# evaluate()


def evaluate(model_source, corpus_path, settings: EvalSettings | None = None, **overrides) -> dict:
    """Evaluate a model (artifact .pt, checkpoint file or run directory) on a corpus's held-out part.

    Returns a dict with bpc, bpc_by_author, author_gain_bpc, context_gain_bpc, next_speaker_accuracy,
    persona_fidelity, real_fidelity (each None where the corpus cannot support it), plus per-persona
    fidelity, counts and the settings used. Never includes message text.
    """
    settings = replace(settings or EvalSettings(), **overrides)  # an unknown setting is a TypeError
    started = time.perf_counter()
    model = load_model(model_source, settings.device)
    corpus_path = os.fspath(corpus_path)
    if not os.path.isfile(corpus_path):
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
    personas = list(authors.names[1:])
    corpus_authors = {m.author for m in messages}
    if not corpus_authors & set(personas):
        shown = ", ".join(personas[:5]) + (", ..." if len(personas) > 5 else "")
        raise UserError(f"{corpus_path}: none of the corpus's {len(corpus_authors)} authors is a persona of "
                        f"this model ({shown}); evaluate on the corpus the model was trained on")

    # The same split training made (held out: the latest part of each conversation), matched by identity
    # in the conversations as the stream reads them.
    train, held_messages = split_messages(messages, val_fraction)
    held_ids = {id(m) for m in held_messages}
    convs = conversations(spoken(messages))
    items = [Item(ci, pos) for ci, conv in enumerate(convs) for pos, m in enumerate(conv) if id(m) in held_ids]
    if not items:
        raise UserError(f"{corpus_path}: the held-out part is empty (too few messages per conversation to "
                        f"hold out {val_fraction:.0%})")
    held = HeldOut(convs, items, authors, gap)
    rng = np.random.default_rng(settings.seed)
    k = settings.context_messages
    module = model.module

    # 1. bpc and next speaker: runs of held-out messages, each run after its k real preceding messages.
    runs = held.segments(settings.segment_messages)
    if len(items) > settings.max_messages:  # an even, seeded sample of runs keeps big corpora quick
        wanted = max(1, math.ceil(settings.max_messages / settings.segment_messages))
        runs = [runs[i] for i in sorted(rng.choice(len(runs), min(wanted, len(runs)), replace=False))]
    scored = [i for run in runs for i in run]
    sequences = [build_sequence(vocab, held.context(items[run[0]], k),
                                [(i, held.entry(items[i].conv, items[i].pos)) for i in run]) for run in runs]
    bits, speaker = score_sequences(module, sequences, len(items), settings.batch_tokens, settings.device)
    n_chars = np.array([len(vocab.encode(held.convs[it.conv][it.pos].text)) for it in items], dtype=np.float64)

    by_bits: Counter = Counter()
    by_chars: Counter = Counter()
    hits = turns = 0
    for i in scored:
        name = authors.name_of(held.author_id(items[i]))  # people folded into ⟨other⟩ count as ⟨other⟩
        by_bits[name] += bits[i]
        by_chars[name] += n_chars[i]
        following = held.next_author(items[i])
        if following is not None:
            turns += 1
            hits += int(speaker[i] == following)
    bpc = float(bits[scored].sum() / n_chars[scored].sum())
    bpc_by_author = {name: float(by_bits[name] / by_chars[name]) for name in sorted(by_chars, key=lambda n: -by_chars[n])}

    # 2. What author and context are worth: one message per sequence after exactly k messages of context.
    pool = scored
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), min(settings.gain_messages, len(pool)), replace=False))]
    true_seqs, other_seqs, foreign_seqs = [], [], []
    other_of, foreign_of = [], []  # positions in `chosen` each condition's targets belong to
    same_conversation = 0  # foreign contexts taken from a distant part of the message's own conversation
    for j, i in enumerate(chosen):
        item = items[i]
        context = held.context(item, k)
        target = held.entry(item.conv, item.pos)
        true_seqs.append(build_sequence(vocab, context, [(j, target)]))
        if target[0] != 0:  # a message already under ⟨other⟩ has no author to lose
            other_seqs.append(build_sequence(vocab, context, [(len(other_of), (0, target[1], target[2]))]))
            other_of.append(j)
        foreign = held.foreign_context(item, len(context), rng)
        if foreign is not None:
            foreign_seqs.append(build_sequence(vocab, foreign[0], [(len(foreign_of), target)]))
            foreign_of.append(j)
            same_conversation += foreign[1]
    true_bits, _ = score_sequences(module, true_seqs, len(chosen), settings.batch_tokens, settings.device)
    other_bits, _ = score_sequences(module, other_seqs, len(other_of), settings.batch_tokens, settings.device)
    foreign_bits, _ = score_sequences(module, foreign_seqs, len(foreign_of), settings.batch_tokens, settings.device)
    chosen_chars = n_chars[chosen]

    def gain(changed_bits: np.ndarray, where: list[int]) -> float | None:
        if not where:
            return None
        return float((changed_bits.sum() - true_bits[where].sum()) / chosen_chars[where].sum())

    author_gain = gain(other_bits, other_of)
    context_gain = gain(foreign_bits, foreign_of)

    # 3. Persona fidelity, judged by the independent style classifier.
    fidelity = persona_fidelity(model, train, held_messages, held, settings, rng)

    return {
        "bpc": bpc,
        "bpc_by_author": bpc_by_author,
        "author_gain_bpc": author_gain,
        "context_gain_bpc": context_gain,
        "next_speaker_accuracy": hits / turns if turns else None,
        "persona_fidelity": fidelity["persona_fidelity"],
        "real_fidelity": fidelity["real_fidelity"],
        "persona_fidelity_by_author": fidelity["by_persona"],
        "real_fidelity_by_author": fidelity["real_by_persona"],
        "fidelity_chance": 1.0 / fidelity["classes"] if fidelity["classes"] else None,
        "counts": {
            "held_out_messages": len(items),
            "scored_messages": len(scored),
            "scored_chars": int(n_chars[scored].sum()),
            "gain_messages": len(chosen),
            "author_gain_messages": len(other_of),
            "context_gain_messages": len(foreign_of),
            "context_gain_same_conversation": same_conversation,
            "next_speaker_turns": turns,
            "personas_evaluated": fidelity["classes"],
            "generated_replies": fidelity["generated"],
            "real_fidelity_messages": fidelity["real_messages"],
        },
        "model": {"source": os.fspath(model_source), "kind": model.kind, "personas": personas},
        "settings": resolved,
        "seconds": round(time.perf_counter() - started, 3),
    }


def persona_fidelity(model: LoadedModel, train: list[Message], held_messages: list[Message], held: HeldOut,
                     settings: EvalSettings, rng: np.random.Generator) -> dict:
    """Generate replies per persona from real held-out contexts and ask the style classifier who wrote them.

    The classifier learns from the real training messages of the personas that have enough of them; its
    accuracy on real held-out messages of the same personas is the ceiling to read the figure against.
    """
    result = {"persona_fidelity": None, "real_fidelity": None, "by_persona": {}, "real_by_persona": {},
              "generated": 0, "real_messages": 0, "classes": 0}
    personas = set(model.authors.names[1:])
    counts = Counter(m.author for m in train if in_stream(m) and m.author in personas)
    classes = sorted(name for name, n in counts.items() if n >= settings.min_train_messages)
    if len(classes) < 2:
        return result  # attribution needs at least two candidate authors
    known = set(classes)
    result["classes"] = len(classes)
    examples = [m for m in train if in_stream(m) and m.author in known]
    classifier = StyleClassifier().fit([m.text for m in examples], [m.author for m in examples])

    real = [m for m in held_messages if in_stream(m) and m.author in known]
    if real:
        predicted = classifier.predict([m.text for m in real])
        result["real_fidelity"], result["real_by_persona"] = _accuracy(predicted, [m.author for m in real])
        result["real_messages"] = len(real)
    if settings.samples_per_persona <= 0:
        return result

    from model.generation import Generator

    generator = Generator(model.module, model.vocab, model.authors)
    n_contexts = max(1, min(settings.generation_contexts, settings.samples_per_persona, len(held.items)))
    states = []
    for index in sorted(rng.choice(len(held.items), n_contexts, replace=False)):
        item = held.items[index]
        state = generator.init_state(1)
        # The context ends with the held-out message itself: the persona answers it.
        for author_id, text, session in held.context(item, settings.context_messages) + [held.entry(item.conv, item.pos)]:
            state = generator.feed(state, author_id, text, session=session)
        states.append(state)
    share = [settings.samples_per_persona // n_contexts + (j < settings.samples_per_persona % n_contexts)
             for j in range(n_contexts)]
    generated: list[str] = []
    wanted: list[str] = []
    with one_thread_on_cpu(settings.device):
        for name in classes:
            persona_id = model.authors.id_of(name)
            for j, state in enumerate(states):
                if share[j] == 0:
                    continue
                replies = generator.reply(state, persona_id, n=share[j], temperature=settings.temperature,
                                          top_k=settings.top_k, top_p=settings.top_p, min_chars=1,
                                          max_chars=settings.max_chars,
                                          seed=settings.seed * 100_003 + persona_id * 101 + j)
                generated += replies
                wanted += [name] * len(replies)
    result["persona_fidelity"], result["by_persona"] = _accuracy(classifier.predict(generated), wanted)
    result["generated"] = len(generated)
    return result


@contextmanager
def one_thread_on_cpu(device: str):
    """Run one-step generation on one CPU thread, then restore the thread count.

    A step of a few samples is too small to split across cores: the threads mostly wait for each other,
    and on a shared machine a descheduled thread stalls every step (measured here: 15× slower with two
    threads than with one while other jobs ran). Batched scoring keeps all threads.
    """
    if not str(device).startswith("cpu"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _accuracy(predicted: list[str], truth: list[str]) -> tuple[float, dict[str, float]]:
    """Overall accuracy and accuracy per true label."""
    right: Counter = Counter()
    total: Counter = Counter()
    for p, t in zip(predicted, truth, strict=True):
        total[t] += 1
        right[t] += int(p == t)
    overall = sum(right.values()) / max(1, sum(total.values()))
    return overall, {name: right[name] / total[name] for name in sorted(total)}
