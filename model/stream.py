"""The stream: how a conversation becomes the step sequence the model reads and writes.

Per message: a SESSION step where a conversation starts or resumes after a long gap, then BOS, the
characters and EOS, every step under the message's author. Training, evaluation and the reply engine all
build their inputs here, so they cannot disagree.
"""

from __future__ import annotations

from typing import NamedTuple

from model.vocab import Vocabulary

DEFAULT_SESSION_GAP = 6 * 3600.0  # seconds of silence after which a conversation counts as resumed
TEXT_KIND = "text"
# Kinds whose text is not the author's own words: a shared link's preview, a forwarded message, a bot's post,
# a pasted document or transcript. The corpus keeps them in place (training/corpus.py); the model never reads
# them as the author's speech, neither in training nor in the scored held-out text.
NOT_OWN_WORDS = frozenset({"link", "forward", "via_bot", "paste"})


class Entry(NamedTuple):
    """One message of a conversation as the model reads it (evaluation's sequences, `who`'s context)."""

    author_id: int
    text: str
    session: bool  # a session marker goes before it
    name: str | None = None  # its author's name as the conversation shows it (the names expert reads it)


def message_text(kind: str, text: str) -> str | None:
    """What a message contributes to the stream: spoken text, or a media caption; None to skip it."""
    if kind in NOT_OWN_WORDS:
        return None
    # A photo or sticker without a caption says nothing the model could learn to write.
    return text if text.strip() else None


def starts_session(first_in_conversation: bool, previous_timestamp: float | None, timestamp: float | None,
                   session_gap: float = DEFAULT_SESSION_GAP) -> bool:
    """Whether a SESSION step goes before a message."""
    if first_in_conversation:
        return True
    if previous_timestamp is None or timestamp is None:
        return False
    return timestamp - previous_timestamp > session_gap


def encode_message(vocab: Vocabulary, author_id: int, text: str, session: bool) -> tuple[list[int], list[int]]:
    """The (chars, authors) steps of one message: [SESSION] BOS text EOS, all under `author_id`."""
    chars = ([Vocabulary.SESSION] if session else []) + [Vocabulary.BOS] + vocab.encode(text) + [Vocabulary.EOS]
    return chars, [author_id] * len(chars)
