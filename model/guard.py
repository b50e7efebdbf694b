"""`MemorizationGuard`: does a text repeat a training message, or a long verbatim span of one?

Two sets of 64-bit hashes, sorted for binary search; no message text is stored, only hashes, so the
guard can ship inside the artifact:

- every `n`-character window of every training message (a long message repeated verbatim, or a long
  stretch of one);
- every whole training message of `MESSAGE_MIN` characters or more after normalising case and
  whitespace (`normalize`): most chat messages are short, and a short message is where a door code or
  an address usually sits. A text "contains" such a message when the message equals a stretch of the
  normalised text that starts and ends at word boundaries ("ok so the code is 7781#" inside "well: ok
  so the code is 7781# see you").

The format is versioned by its magic: `TLGUARD1` (windows only, from earlier versions) still loads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

_MAGIC_V1 = b"TLGUARD1"
_HEADER_V1 = struct.Struct("<8sIQ")  # magic, n, number of window hashes
_MAGIC = b"TLGUARD2"
_HEADER = struct.Struct("<8sIQIIQ")  # magic, n, window hashes, shortest and longest message, message hashes
_BASE = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_BASE_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_LENGTH_SALT = np.uint64(0x9E3779B97F4A7C15)
MESSAGE_MIN = 20  # whole messages this long or longer (normalised) are held
MESSAGE_MAX = 4096  # longer ones are left to the windows (and bound the cost of a check)
_BATCH_CHARS = 1 << 20  # messages are hashed in batches of about this many characters
_EMPTY = np.empty(0, dtype=np.uint64)
# character classes for word boundaries: 0 space, 1 letter or digit, 2 anything else (punctuation, emoji)
_ASCII_CLASS = np.array([0 if chr(c).isspace() else 1 if chr(c).isalnum() else 2 for c in range(128)], np.int8)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads code points / sums over all 64 bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _powers(base: np.uint64, length: int) -> np.ndarray:
    out = np.full(length, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)  # wraps modulo 2**64, which is what we want


def _prefix(text: str) -> np.ndarray:
    """G[i] = sum of mixed code points before i, each times BASE^position (modulo 2**64); length len+1."""
    codes = _mix(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64))
    return np.concatenate([[np.uint64(0)], np.cumsum(codes * _powers(_BASE, len(codes)), dtype=np.uint64)])


def window_hashes(text: str, n: int) -> np.ndarray:
    """Hashes of all n-character windows of `text` (empty when the text is shorter than n)."""
    if len(text) < n:
        return _EMPTY
    with np.errstate(over="ignore"):
        # Polynomial hash by prefix sums: window i = (G[i+n] - G[i]) * BASE^-i, all modulo 2**64.
        prefix = _prefix(text)
        starts = len(text) - n + 1
        sums = (prefix[n : n + starts] - prefix[:starts]) * _powers(_BASE_INV, starts)
        return _mix(sums)


def normalize(text: str) -> str:
    """The form whole messages are compared in: case folded, whitespace runs as one space, trimmed."""
    return " ".join(text.casefold().split())


def _span_hashes(prefix: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hashes of text[start:end] for each pair, from the text's `_prefix`; equal for equal strings
    wherever they sit. The length is mixed in, so "ab" and "ab\\0" differ."""
    with np.errstate(over="ignore"):
        inverse = _powers(_BASE_INV, int(starts.max()) + 1)[starts] if starts.size else _EMPTY
        sums = (prefix[ends] - prefix[starts]) * inverse
        return _mix(sums + (ends - starts).astype(np.uint64) * _LENGTH_SALT)


def message_hashes(messages: Iterable[str]) -> np.ndarray:
    """The hashes of whole normalised messages (already normalised, `MESSAGE_MIN..MESSAGE_MAX` long),
    computed in batches: one numpy pass per megabyte of text, not one per message."""
    parts = []
    batch: list[str] = []
    size = 0
    for message in messages:
        batch.append(message)
        size += len(message)
        if size >= _BATCH_CHARS:
            parts.append(_batch_hashes(batch))
            batch, size = [], 0
    if batch:
        parts.append(_batch_hashes(batch))
    return np.concatenate(parts) if parts else _EMPTY


def _batch_hashes(batch: list[str]) -> np.ndarray:
    lengths = np.fromiter((len(message) for message in batch), dtype=np.int64, count=len(batch))
    ends = np.cumsum(lengths)
    return _span_hashes(_prefix("".join(batch)), ends - lengths, ends)


class MemorizationGuard:
    def __init__(self, hashes: np.ndarray, n: int, messages: np.ndarray | None = None,
                 message_lengths: tuple[int, int] = (MESSAGE_MIN, 0)):
        self.n = int(n)
        self.hashes = np.unique(np.asarray(hashes, dtype=np.uint64))  # sorted, for searchsorted
        self.messages = np.unique(np.asarray(_EMPTY if messages is None else messages, dtype=np.uint64))
        self.shortest, self.longest = (int(x) for x in message_lengths)  # of the messages held

    @classmethod
    def build(cls, texts: Iterable[str], n: int = 60) -> MemorizationGuard:
        """Hash every n-character window of every text, and every whole text of MESSAGE_MIN characters
        or more (normalised)."""
        if n < 1:
            raise ValueError("guard window must be at least one character")
        parts = []
        whole: list[str] = []
        for text in texts:
            if len(text) >= n:
                parts.append(window_hashes(text, n))
            message = normalize(text)
            if MESSAGE_MIN <= len(message) <= MESSAGE_MAX:
                whole.append(message)
        hashes = np.concatenate(parts) if parts else _EMPTY
        longest = max(map(len, whole), default=0)
        return cls(hashes, n, message_hashes(whole), (MESSAGE_MIN, longest))

    def __len__(self) -> int:
        """The number of window hashes (the whole messages are `len(guard.messages)`)."""
        return int(self.hashes.size)

    def contains_memorized(self, text: str) -> bool:
        """True if `text` holds an n-character window of a training message, or a whole training
        message (normalised, between word boundaries)."""
        if self.hashes.size and len(text) >= self.n and self._first_window(text) is not None:
            return True
        return bool(self.messages.size) and self._first_message(normalize(text)) is not None

    def memorized_start(self, text: str) -> int | None:
        """Where in `text` the first memorized window or whole training message begins, or None."""
        found = []
        if self.hashes.size and len(text) >= self.n:
            found.append(self._first_window(text))
        if self.messages.size:
            folded, offsets = _normalize_with_offsets(text)
            start = self._first_message(folded)
            found.append(None if start is None else offsets[start])
        found = [start for start in found if start is not None]
        return min(found) if found else None

    def cut_before(self, text: str) -> str:
        """`text` up to the last word boundary before its first memorized span or message (maybe empty):
        what a reply keeps when resampling did not get rid of a copy."""
        start = self.memorized_start(text)
        if start is None:
            return text
        head = text[:start]
        if head and not head[-1].isspace():  # the span begins inside a word: drop that word too
            cut = max(head.rfind(" "), head.rfind("\n"))
            head = head[:cut] if cut >= 0 else ""
        return head.rstrip()

    def _first_window(self, text: str) -> int | None:
        probe = window_hashes(text, self.n)
        pos = np.searchsorted(self.hashes, probe).clip(max=self.hashes.size - 1)
        hits = np.flatnonzero(self.hashes[pos] == probe)
        return int(hits[0]) if hits.size else None

    def _first_message(self, folded: str) -> int | None:
        """The smallest start of a stretch of the normalised text that is a whole training message."""
        if len(folded) < self.shortest:
            return None
        starts, ends = _boundaries(folded)
        prefix = _prefix(folded)
        best = None
        for block in range(0, starts.size, 256):  # 256 starts at a time: bounded memory on long texts
            head = starts[block : block + 256, None]
            length = ends[None, :] - head
            rows, cols = np.nonzero((length >= self.shortest) & (length <= self.longest))
            if rows.size == 0:
                continue
            probe = _span_hashes(prefix, head[rows, 0], ends[cols])
            pos = np.searchsorted(self.messages, probe).clip(max=self.messages.size - 1)
            hits = np.flatnonzero(self.messages[pos] == probe)
            if hits.size:
                best = int(head[rows[hits[0]], 0])  # rows ascend, so the first hit has the smallest start
                break
        return best

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, self.n, self.hashes.size, self.shortest, self.longest, self.messages.size)
        return header + self.hashes.astype("<u8").tobytes() + self.messages.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> MemorizationGuard:
        """Read either format: with whole-message hashes (`TLGUARD2`) or windows only (`TLGUARD1`)."""
        if data[:8] == _MAGIC_V1 and len(data) >= _HEADER_V1.size:
            _, n, count = _HEADER_V1.unpack_from(data)
            shortest = longest = messages = 0
            header = _HEADER_V1.size
        elif data[:8] == _MAGIC and len(data) >= _HEADER.size:
            _, n, count, shortest, longest, messages = _HEADER.unpack_from(data)
            header = _HEADER.size
        elif data[:8] in (_MAGIC, _MAGIC_V1) or len(data) < _HEADER_V1.size:
            raise ValueError("memorization guard data is truncated")
        else:
            raise ValueError("not memorization guard data")
        body = data[header:]
        if len(body) != 8 * (count + messages):
            raise ValueError("memorization guard data is truncated")
        guard = cls.__new__(cls)
        guard.n = int(n)
        hashes = np.frombuffer(body, dtype="<u8").astype(np.uint64)
        guard.hashes, guard.messages = hashes[:count], hashes[count:]
        guard.shortest, guard.longest = int(shortest) or MESSAGE_MIN, int(longest)
        return guard


def _boundaries(folded: str) -> tuple[np.ndarray, np.ndarray]:
    """Where a held message may start and end in a normalised text: at the edges of words and of
    punctuation runs, and anywhere inside a punctuation run ("!!!" holds "!!")."""
    if folded.isascii():
        classes = _ASCII_CLASS[np.frombuffer(folded.encode("ascii"), dtype=np.uint8)]
    else:
        classes = np.fromiter((0 if c == " " else 1 if c.isalnum() else 2 for c in folded), np.int8, len(folded))
    before = np.concatenate([[np.int8(-1)], classes[:-1]])
    after = np.concatenate([classes[1:], [np.int8(-1)]])
    solid = classes != 0
    starts = np.flatnonzero(solid & ((before != classes) | (classes == 2)))
    ends = np.flatnonzero(solid & ((after != classes) | (classes == 2))) + 1
    return starts, ends


def _normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """`normalize(text)` and, for each of its characters, the index in `text` it came from."""
    out: list[str] = []
    offsets: list[int] = []
    gap = False
    for index, char in enumerate(text):
        if char.isspace():
            gap = bool(out)
            continue
        if gap:
            out.append(" ")
            offsets.append(index)
            gap = False
        folded = char.casefold()
        out.append(folded)
        offsets.extend([index] * len(folded))
    return "".join(out), offsets
