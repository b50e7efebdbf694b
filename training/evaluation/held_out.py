"""The held-out part of a corpus as evaluation reads it, and the sequences built from it.

`held_out_part` makes the split training made (the latest messages of each conversation) and finds those
messages in the conversations as the stream reads them; `HeldOut` gives any message as the model reads it
(author, text, session marker) and the contexts to read before it; `build_sequence` turns contexts and
scored messages into one sequence of steps for `training.evaluation.scoring`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.names import NameHints, at_symbol, recent_speakers
from model.stream import Entry, encode_message, message_text, starts_session
from model.vocab import AuthorTable, Vocabulary
from training.corpus import Message
from training.dataset import conversations, split_messages, spoken


def in_stream(message: Message) -> bool:
    """Whether the stream reads this message (text, or media with a caption); the model's own rule."""
    return message_text(message.kind, message.text) is not None


def session_starts(previous: Message | None, message: Message, gap: float) -> bool:
    """Whether a ⟨session⟩ step precedes `message` (after `previous` in its conversation, or first)."""
    return starts_session(previous is None, previous.timestamp if previous else None, message.timestamp, gap)


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
        return Entry(self.authors.id_of(m.author) if author_id is None else author_id, m.text, session, m.author)

    def window(self, conv: int, first: int, count: int) -> list[Entry]:
        """`count` consecutive messages from `first`; the window opens with a session marker, as the model
        reads it from a fresh state like a resumed conversation."""
        return [self.entry(conv, p, True if p == first else None) for p in range(first, first + count)]

    def context(self, item: Item, k: int) -> list[Entry]:
        """The (up to) k messages before `item` in its conversation."""
        first = max(0, item.pos - k)
        return self.window(item.conv, first, item.pos - first)

    def char_counts(self, vocab: Vocabulary) -> np.ndarray:
        """Characters of each held-out message, (len(items),): the targets its bits are spread over."""
        return np.array([len(vocab.encode(self.convs[it.conv][it.pos].text)) for it in self.items], dtype=np.float64)

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
    names: NameHints | None = None  # the names expert's opinions on its steps (from the entries' names)


def build_sequence(vocab: Vocabulary, context: list[Entry], scored: list[tuple[int, Entry]]) -> ScoredSequence:
    """Concatenate the context messages, then the (target index, message) pairs; with the names expert's
    opinions from each message's recent speakers among the entries before it."""
    seq = ScoredSequence([], [])
    entries = [Entry(*entry) for entry in list(context) + [entry for _, entry in scored]]
    recent = recent_speakers([entry.name for entry in entries])
    named = []
    encoded: dict[str, list[int]] = {}  # each name once
    for n, entry in enumerate(entries):
        c, a = encode_message(vocab, entry.author_id, entry.text, entry.session)
        bos = c.index(vocab.BOS)
        if n >= len(context):
            seq.targets.append((scored[n - len(context)][0], len(seq.chars) + bos, len(c) - bos - 2))
        if recent[n]:
            names = [encoded.setdefault(name, vocab.encode(name)) for name in recent[n]]
            named.append((len(seq.chars) + bos, c[bos + 1 : -1], names))
        seq.chars += c
        seq.authors += a
    seq.names = NameHints.build(named, at_symbol(vocab))
    return seq


def held_out_part(messages: list[Message], val_fraction: float, authors: AuthorTable,
                  gap: float) -> tuple[list[Message], list[Message], HeldOut]:
    """(training messages, held-out messages, HeldOut): the same split training made (held out: the latest part
    of each conversation), matched by identity in the conversations as the stream reads them."""
    train, held_messages = split_messages(messages, val_fraction)
    held_ids = {id(m) for m in held_messages}
    convs = conversations(spoken(messages))
    items = [Item(ci, pos) for ci, conv in enumerate(convs) for pos, m in enumerate(conv) if id(m) in held_ids]
    return train, held_messages, HeldOut(convs, items, authors, gap)
