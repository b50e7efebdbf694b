"""`Memory`: what the engine keeps per conversation, over a store.

The recurrent state after the last message (so a new message costs only its own characters), the
next-speaker odds, the persona and settings chosen, whether the people were told a model writes, the names
of the last people the engine knows who spoke (the names expert reads them), and — only
where something reads it back — a short readable transcript. Every change to a conversation happens under
its store lock, which serializes the replies of one conversation across threads and processes.
"""

from __future__ import annotations

import logging

import numpy as np

from bot.infra.stores import ConversationRecord, Store
from bot.infra.stores.base import DEFAULT_LOCK_LEASE
from model.names import RECENT
from model.vocab import AuthorTable
from talklike.errors import UserError

log = logging.getLogger(__name__)

Message = tuple[str | None, str, str | None]  # (author, text, sender: the person's platform id, or None)


class Memory:
    def __init__(self, store: Store, authors: AuthorTable, shape: tuple[int, int, int], *, timeout: float,
                 session_gap: float, transcript_len: int, transcript_prefixes: tuple[str, ...] | None):
        self.store, self.authors, self.shape = store, authors, shape  # shape: (L, 1, H) of one state
        self.timeout, self.session_gap = timeout, session_gap
        self.transcript_len, self.transcript_prefixes = transcript_len, transcript_prefixes

    def lock(self, conversation: str):
        """The conversation's store lock; its lease outlasts any request, so only a crash frees it early."""
        return self.store.lock(key(conversation), timeout=self.timeout, lease=max(DEFAULT_LOCK_LEASE, 4 * self.timeout))

    def load(self, conversation: str) -> ConversationRecord:
        """The stored record, or a fresh one (call under the lock)."""
        return self.store.get(conversation) or ConversationRecord()

    # -- the state a reply starts from ---------------------------------------------------------------
    def zeros(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.shape, dtype=np.float32), np.zeros(self.shape, dtype=np.float32)

    def state(self, record: ConversationRecord) -> tuple[np.ndarray, np.ndarray]:
        """(h, c), each (L, 1, H), from a stored record; zeros for a new conversation."""
        if record.state is None:
            return self.zeros()
        if record.state.shape != (2, self.shape[0], self.shape[2]):
            log.warning("stored state does not fit this model (another artifact?); starting the conversation over")
            record.last_timestamp = None
            return self.zeros()
        state = np.array(record.state, dtype=np.float32)  # (2, L, H)
        return state[0][:, None].copy(), state[1][:, None].copy()

    def opens_session(self, record: ConversationRecord, now: float) -> bool:
        """Does the next message open a session (new conversation, or back after a long silence)?"""
        if record.state is None or record.last_timestamp is None:
            return True
        return now - record.last_timestamp > self.session_gap

    def save(self, conversation: str, record: ConversationRecord, h, c, speaker, messages: list[Message],
             now: float) -> None:
        """Keep the state after `messages` (read or written just now), and their text where it is kept."""
        record.state = np.stack([h[:, 0], c[:, 0]]).astype(np.float32)  # (2, L, H)
        if speaker is not None:
            e = np.exp(speaker - speaker.max())
            record.speaker = (e / e.sum()).astype(np.float32)  # (A,): the next-speaker probabilities
        if self.keeps_transcript(conversation):
            for author, text, sender in messages:
                entry = {"author": author or self.authors.name_of(0), "text": text, "ts": now}
                if sender is not None:
                    entry["sender"] = sender
                record.transcript.append(entry)
            record.transcript = record.transcript[-self.transcript_len :]
        else:
            record.transcript = []
        for author, _, _ in messages:  # who spoke, for the names expert (people the engine knows by name)
            if author:
                record.speakers = [author] + [s for s in record.speakers if s != author][:RECENT]
        record.last_timestamp = now
        record.messages += len(messages)
        self.store.put(conversation, record)

    def keeps_transcript(self, conversation: str) -> bool:
        prefixes = self.transcript_prefixes
        return prefixes is None or conversation.startswith(prefixes)

    # -- what people can ask of their conversation ---------------------------------------------------
    def reset(self, conversation: str) -> bool:
        """Start over (state and transcript cleared; persona, settings and disclosure kept); False if nothing
        was stored."""
        with self.lock(conversation):
            record = self.store.get(conversation)
            if record is None:
                return False
            self.store.put(conversation, ConversationRecord(persona=record.persona, settings=record.settings,
                                                            disclosed=record.disclosed))
        return True

    def forget(self, conversation: str) -> bool:
        """Delete everything stored about the conversation; False if nothing was stored."""
        with self.lock(conversation):
            return self.store.delete(conversation)

    def forget_sender(self, sender: str, prefix: str) -> int:
        """Take `sender`'s messages out of every kept transcript of the conversations whose keys start with
        `prefix` (a person forgetting themselves in the groups they wrote in); how many changed."""
        changed = 0
        for conversation in self.store.keys(prefix):
            with self.lock(conversation):
                record = self.store.get(conversation)
                if record is None or not any(m.get("sender") == sender for m in record.transcript):
                    continue
                record.transcript = [m for m in record.transcript if m.get("sender") != sender]
                self.store.put(conversation, record)
                changed += 1
        return changed

    def move(self, conversation: str, to: str) -> bool:
        """Carry a conversation over to a new key (a group that got a new id); False if nothing was stored."""
        with self.lock(conversation):
            record = self.store.get(conversation)
            if record is None:
                return False
            with self.lock(to):
                self.store.put(to, record)
            self.store.delete(conversation)
        return True

    def mark_disclosed(self, conversation: str) -> bool:
        """Note that the conversation was told it talks to a model; True the first time (then tell it)."""
        with self.lock(conversation):
            record = self.load(conversation)
            if record.disclosed:
                return False
            record.disclosed = True
            self.store.put(conversation, record)
        return True

    def chosen(self, conversation: str) -> tuple[str | None, dict]:
        """The persona and sampling settings chosen for the conversation (None and {} if never chosen)."""
        record = self.store.get(key(conversation))
        return (None, {}) if record is None else (record.persona, dict(record.settings))

    def transcript(self, conversation: str) -> list[dict]:
        """The last few messages kept of the conversation ({"author", "text", "ts"}), oldest first."""
        record = self.store.get(key(conversation))
        return [] if record is None else record.transcript

    def speaker_odds(self, conversation: str) -> np.ndarray | None:
        """Next-speaker probabilities (A,) after the conversation's last message, or None before any."""
        record = self.store.get(key(conversation))
        if record is None or record.speaker is None or record.speaker.shape != (len(self.authors),):
            return None
        return record.speaker


def key(conversation: str) -> str:
    """`conversation`, checked: a non-empty string of bounded length."""
    if not isinstance(conversation, str) or not conversation or len(conversation) > 512:
        raise UserError("a conversation key must be a non-empty string of at most 512 characters")
    return conversation
