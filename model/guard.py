"""`MemorizationGuard`: does a text repeat a long verbatim span of a training message?

Every `n`-character window of every training message is hashed (64-bit) and kept as a sorted array;
no message text is stored, only hashes, so the guard can ship inside the artifact.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

_MAGIC = b"TLGUARD1"
_HEADER = struct.Struct("<8sIQ")  # magic, n, number of hashes
_BASE = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_BASE_INV = np.uint64(pow(0x100000001B3, -1, 2**64))


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


def window_hashes(text: str, n: int) -> np.ndarray:
    """Hashes of all n-character windows of `text` (empty when the text is shorter than n)."""
    if len(text) < n:
        return np.empty(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        codes = _mix(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64))
        # Polynomial hash by prefix sums: window i = (G[i+n] - G[i]) * BASE^-i, all modulo 2**64.
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(codes * _powers(_BASE, len(codes)), dtype=np.uint64)])
        starts = len(text) - n + 1
        sums = (prefix[n : n + starts] - prefix[:starts]) * _powers(_BASE_INV, starts)
        return _mix(sums)


class MemorizationGuard:
    def __init__(self, hashes: np.ndarray, n: int):
        self.n = int(n)
        self.hashes = np.unique(np.asarray(hashes, dtype=np.uint64))  # sorted, for searchsorted

    @classmethod
    def build(cls, texts: Iterable[str], n: int = 60) -> MemorizationGuard:
        """Hash every n-character window of every text (messages shorter than n add nothing)."""
        if n < 1:
            raise ValueError("guard window must be at least one character")
        parts = [window_hashes(text, n) for text in texts if len(text) >= n]
        hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
        return cls(hashes, n)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def contains_memorized(self, text: str) -> bool:
        """True if any n-character window of `text` appears verbatim in a training message."""
        if self.hashes.size == 0 or len(text) < self.n:
            return False
        probe = window_hashes(text, self.n)
        pos = np.searchsorted(self.hashes, probe)
        pos[pos == self.hashes.size] = 0
        return bool(np.any(self.hashes[pos] == probe))

    def to_bytes(self) -> bytes:
        return _HEADER.pack(_MAGIC, self.n, self.hashes.size) + self.hashes.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> MemorizationGuard:
        if len(data) < _HEADER.size:
            raise ValueError("memorization guard data is truncated")
        magic, n, count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not memorization guard data")
        body = data[_HEADER.size :]
        if len(body) != 8 * count:
            raise ValueError("memorization guard data is truncated")
        guard = cls.__new__(cls)
        guard.n = int(n)
        guard.hashes = np.frombuffer(body, dtype="<u8").astype(np.uint64)
        return guard
