"""From corpus messages to training tensors: the split, the tables, the stream and its batches.

The stream rule lives in model/stream.py; this module applies it to a whole corpus and cuts the
result into B parallel streams for stateful truncated BPTT. Everything after `encode_corpus` is tensor
slicing: no per-character Python work happens in the training loop.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
from torch import Tensor

from model.names import NameHints, at_symbol, recent_speakers
from model.stream import DEFAULT_SESSION_GAP, encode_message, message_text, starts_session
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError
from training.corpus import Message

IGNORE = -100  # cross_entropy's ignore_index: speaker targets where nobody is predicted


def conversations(messages: Iterable[Message]) -> list[list[Message]]:
    """Messages grouped by conversation, conversations in order of first appearance, each oldest first."""
    groups: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        groups[message.conversation].append(message)
    return list(groups.values())


def split_messages(messages: Sequence[Message], val_fraction: float = 0.1) -> tuple[list[Message], list[Message]]:
    """(train, val): the latest `val_fraction` of each conversation is held out, so no training message
    comes from after a validation message of the same conversation. Both keep corpus order and the
    original objects (callers may match them by identity)."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"validation fraction must be in [0, 1), got {val_fraction}")
    held: set[int] = set()
    for conv in conversations(messages):
        k = int(round(len(conv) * val_fraction))
        k = min(k, len(conv) - 1)  # every conversation keeps at least its first message for training
        held.update(id(m) for m in conv[len(conv) - k :] if k > 0)
    train = [m for m in messages if id(m) not in held]
    val = [m for m in messages if id(m) in held]
    return train, val


def spoken(messages: Iterable[Message]) -> list[Message]:
    """The messages that take steps in the stream (text, or a media caption)."""
    return [m for m in messages if message_text(m.kind, m.text) is not None]


def build_vocab_and_authors(messages: Sequence[Message], min_author_messages: int = 10,
                            personas: Sequence[str] | None = None, min_char_count: int = 1,
                            max_personas: int | None = None) -> tuple[Vocabulary, AuthorTable]:
    """Characters of the spoken messages; the `max_personas` most active authors (None: all) with at least
    `min_author_messages` messages, or exactly `personas` when given; everyone else folds into ⟨other⟩."""
    talk = spoken(messages)
    vocab = Vocabulary.build((m.text for m in talk), min_count=min_char_count)
    counts = Counter(m.author for m in talk)
    if personas:
        missing = [p for p in personas if p not in counts]
        if missing:
            known = ", ".join(name for name, _ in counts.most_common(8))
            raise UserError(f"persona(s) not in the corpus: {', '.join(missing)} (authors include: {known})")
        authors = AuthorTable([AuthorTable.OTHER, *personas])
    else:
        authors = AuthorTable.build(counts, min_author_messages)  # most active first
        if max_personas:
            authors = AuthorTable(authors.names[: max_personas + 1])
    return vocab, authors


@dataclass
class EncodedStream:
    """One corpus as aligned step tensors (all (N,), int64)."""

    chars: Tensor  # character / special ids
    authors: Tensor  # author id of the message each step belongs to
    speaker_targets: Tensor  # next message's author at EOS steps, IGNORE elsewhere
    message_index: Tensor  # which message (0..M-1) each step belongs to, for per-epoch author dropout
    name_hints: NameHints | None = None  # the names expert's opinions on its steps (model/names.py), if asked for

    def __len__(self) -> int:
        return int(self.chars.numel())

    def fingerprint(self) -> str:
        """A short hash of the chars and authors: a resumed run checks it reads the same data."""
        digest = hashlib.sha256(self.chars.numpy().tobytes())
        digest.update(self.authors.numpy().tobytes())
        return digest.hexdigest()[:16]


def encode_corpus(messages: Sequence[Message], vocab: Vocabulary, authors: AuthorTable,
                  session_gap: float = DEFAULT_SESSION_GAP, names: bool = False) -> EncodedStream:
    """The whole stream, conversation after conversation (no author dropout); with `names`, also the names
    expert's opinions from each message's recent speakers (everyone's name, folded people's too)."""
    named: list[tuple[int, list[int], list[list[int]]]] = []  # (⟨bos⟩ position, text, recent names) per message
    encoded_names: dict[str, list[int]] = {}
    chars: list[int] = []
    author_ids: list[int] = []
    speakers: list[int] = []
    message_index: list[int] = []
    count = 0
    for conv in conversations(spoken(messages)):
        previous: Message | None = None
        eos_at: int | None = None  # position of the previous message's EOS, awaiting its speaker target
        recent = recent_speakers([m.author for m in conv]) if names else None
        for n, message in enumerate(conv):
            author = authors.id_of(message.author)
            session = starts_session(previous is None, previous.timestamp if previous else None,
                                     message.timestamp, session_gap)
            if eos_at is not None and not session:
                speakers[eos_at] = author  # who spoke after that message end
            ids, who = encode_message(vocab, author, message.text, session)
            if recent is not None and recent[n]:
                bos = len(chars) + (1 if session else 0)
                encoded = [encoded_names.setdefault(a, vocab.encode(a)) for a in recent[n]]
                named.append((bos, ids[bos - len(chars) + 1 : -1], encoded))
            chars.extend(ids)
            author_ids.extend(who)
            speakers.extend([IGNORE] * len(ids))
            message_index.extend([count] * len(ids))
            eos_at = len(chars) - 1
            previous = message
            count += 1
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    hints = NameHints.build(named, at_symbol(vocab)) if names else None
    return EncodedStream(as_long(chars), as_long(author_ids), as_long(speakers), as_long(message_index), hints)


def drop_authors(stream: EncodedStream, author_dropout: float, generator: torch.Generator | None) -> Tensor:
    """Author ids with each named author's message replaced by ⟨other⟩ with probability `author_dropout`.

    Whole messages are dropped, not single steps, so the model learns to read (and write) a message by a
    stranger — the reply engine meets people it never saw.
    """
    if author_dropout <= 0 or len(stream) == 0:
        return stream.authors
    n_messages = int(stream.message_index[-1]) + 1
    drop = torch.rand(n_messages, generator=generator) < author_dropout  # (M,)
    return torch.where(drop[stream.message_index], torch.zeros_like(stream.authors), stream.authors)


def encode_stream(messages: Sequence[Message], vocab: Vocabulary, authors: AuthorTable,
                  session_gap: float = DEFAULT_SESSION_GAP, author_dropout: float = 0.0,
                  rng: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(chars, authors, speaker_targets), each (N,): the contract's view of `encode_corpus`."""
    stream = encode_corpus(messages, vocab, authors, session_gap)
    return stream.chars, drop_authors(stream, author_dropout, rng), stream.speaker_targets


@dataclass
class EpochBatches:
    """B parallel streams of one epoch, sliced into chunks of T steps.

    inputs/authors/char_targets/speaker_targets are (B, L); chunk i covers columns [i*T, (i+1)*T).
    """

    inputs: Tensor
    authors: Tensor
    char_targets: Tensor
    speaker_targets: Tensor
    seq_len: int
    positions: Tensor | None = None  # (B, L) where in the stream each input sits (for the n-gram experts)

    @property
    def steps(self) -> int:
        return self.inputs.shape[1] // self.seq_len

    def chunk(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cols = slice(i * self.seq_len, (i + 1) * self.seq_len)
        return self.inputs[:, cols], self.authors[:, cols], self.char_targets[:, cols], self.speaker_targets[:, cols]

    def chunk_positions(self, i: int) -> Tensor:
        """(B, T) stream positions of chunk i's inputs (on the host)."""
        assert self.positions is not None
        return self.positions[:, i * self.seq_len : (i + 1) * self.seq_len]

    def to(self, device: torch.device | str) -> EpochBatches:
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return EpochBatches(move(self.inputs), move(self.authors), move(self.char_targets),
                            move(self.speaker_targets), self.seq_len, self.positions)


def streams_for_epoch(stream: EncodedStream, batch_size: int, seq_len: int, epoch: int, seed: int,
                      author_dropout: float = 0.0, rank: int = 0, world_size: int = 1,
                      shift: bool = True) -> EpochBatches:
    """Cut the stream into world_size × batch_size contiguous segments; this rank takes its own slice.

    Each epoch starts at a seeded offset in [0, T) so chunk boundaries move, and draws its own author
    dropout; both depend only on (seed, epoch), which makes resuming exact.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    offset = int(torch.randint(0, seq_len, (1,), generator=generator)) if shift else 0
    authors = drop_authors(stream, author_dropout, generator)
    total = world_size * batch_size
    length = (len(stream) - 1 - offset) // total  # steps per segment
    if length < seq_len:
        offset, length = 0, (len(stream) - 1) // total
    if length < seq_len:
        raise UserError(
            f"the training stream ({len(stream)} steps) is too short for {total} streams of {seq_len} steps; "
            "use a smaller --batch-size or --seq-len"
        )
    span = total * length

    def segments(t: Tensor, start: int) -> Tensor:
        return t[start : start + span].view(total, length)[rank * batch_size : (rank + 1) * batch_size]  # (B, L)

    return EpochBatches(
        inputs=segments(stream.chars, offset),
        authors=segments(authors, offset),
        char_targets=segments(stream.chars, offset + 1),
        speaker_targets=segments(stream.speaker_targets, offset),
        seq_len=seq_len,
        positions=segments(torch.arange(len(stream)), offset),
    )


def fit_batch_size(stream_length: int, batch_size: int, seq_len: int, world_size: int = 1) -> int:
    """The largest batch size ≤ `batch_size` whose streams each hold at least two chunks (one if need be)."""
    for chunks in (2, 1):
        fitting = (stream_length - 1 - seq_len) // (world_size * seq_len * chunks)
        if fitting >= 1:
            return max(1, min(batch_size, fitting))
    raise UserError(
        f"the training stream ({stream_length} steps) is too short for --seq-len {seq_len}; use a smaller --seq-len"
    )


def corpus_summary(messages: Sequence[Message], authors: AuthorTable, train: Sequence[Message],
                   val: Sequence[Message]) -> dict:
    """Counts for the model card: messages and characters per author (folded people only as a number)."""
    talk = spoken(messages)
    per_author: dict[str, dict[str, int]] = {name: {"messages": 0, "chars": 0} for name in authors.names}
    folded: set[str] = set()
    for m in talk:
        name = authors.name_of(authors.id_of(m.author))
        if name == AuthorTable.OTHER:
            folded.add(m.author)
        per_author[name]["messages"] += 1
        per_author[name]["chars"] += len(m.text)
    per_author[AuthorTable.OTHER]["people"] = len(folded)
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    iso = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
    return {
        "messages": len(messages),
        "spoken_messages": len(talk),
        "chars": sum(len(m.text) for m in talk),
        "conversations": len({m.conversation for m in messages}),
        "platforms": dict(Counter(m.platform for m in messages)),
        "date_range": [iso(min(stamps)), iso(max(stamps))] if stamps else None,
        "authors": per_author,
        "train_messages": len(spoken(train)),
        "val_messages": len(spoken(val)),
    }


def guard_texts(messages: Iterable[Message]) -> list[str]:
    """The texts the memorization guard hashes (every spoken message)."""
    return [m.text for m in spoken(messages)]

