"""An independent persona style classifier: character n-grams → multinomial naive Bayes (numpy only).

Evaluation asks it who wrote a piece of text. It shares nothing with the model (no vocabulary, no
embeddings), so when it attributes a generated reply to the persona it was generated for, that is
evidence the model writes in that persona's style, not an artefact of the model grading itself.

Features: every 1..4-gram of code points of the message framed by start/end markers (so "lol" at the end
of a message differs from "lol" inside it), hashed into 2**18 buckets. Each n-gram counts once per
message (binarized NB does better than raw counts on short texts). Class priors are uniform by default:
the question is "whose style is this", not "who talks most".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

START, END = 0x02, 0x03  # frame markers; control code points that chat text never contains
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: spreads the polynomial hash over 64 bits
_PRIME = np.uint64(1_000_003)


def ngram_ids(text: str, max_n: int = 4, bits: int = 18) -> np.ndarray:
    """Distinct hashed bucket ids of the 1..max_n character n-grams of one framed message."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    points = np.concatenate([np.array([START], np.uint64), points, np.array([END], np.uint64)])
    shift = np.uint64(64 - bits)
    parts = []
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose
        rolling = np.zeros(len(points), dtype=np.uint64)
        for n in range(1, max_n + 1):
            if len(points) < n:
                break
            # rolling[i] = hash of points[i:i+n], built from the (n-1)-gram hash at i and the nth point
            rolling = rolling[: len(points) - n + 1] * _PRIME + points[n - 1 :] + np.uint64(n)
            parts.append((rolling * _MIX) >> shift)
    return np.unique(np.concatenate(parts)).astype(np.int64)


class StyleClassifier:
    """Multinomial naive Bayes over hashed character n-grams: fit(texts, labels), predict(texts)."""

    def __init__(self, max_n: int = 4, bits: int = 18, alpha: float = 0.1, uniform_prior: bool = True):
        if not 1 <= max_n <= 8 or not 8 <= bits <= 24 or alpha <= 0:
            raise ValueError("StyleClassifier: max_n in 1..8, bits in 8..24, alpha > 0")
        self.max_n = max_n
        self.bits = bits
        self.alpha = alpha
        self.uniform_prior = uniform_prior
        self.classes: list[str] = []
        self._log_prob: np.ndarray | None = None  # (C, 2**bits) log P(bucket | class)
        self._log_prior: np.ndarray | None = None  # (C,)

    def _features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' bucket ids concatenated, and each text's start offset into that array."""
        ids = [ngram_ids(text, self.max_n, self.bits) for text in texts]
        lengths = np.array([len(part) for part in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        return flat, offsets

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> StyleClassifier:
        """Learn per-label n-gram frequencies; needs at least two distinct labels."""
        if len(texts) != len(labels):
            raise ValueError(f"StyleClassifier.fit: {len(texts)} texts but {len(labels)} labels")
        self.classes = sorted(set(labels))
        if len(self.classes) < 2:
            raise ValueError("StyleClassifier.fit: needs messages of at least two authors")
        index = {name: i for i, name in enumerate(self.classes)}
        size = 1 << self.bits
        counts = np.zeros((len(self.classes), size), dtype=np.float64)
        docs = np.zeros(len(self.classes), dtype=np.float64)
        by_class: list[list[np.ndarray]] = [[] for _ in self.classes]
        for text, label in zip(texts, labels, strict=True):
            by_class[index[label]].append(ngram_ids(text, self.max_n, self.bits))
            docs[index[label]] += 1
        for c, parts in enumerate(by_class):
            counts[c] = np.bincount(np.concatenate(parts), minlength=size)
        smoothed = counts + self.alpha
        self._log_prob = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
        if self.uniform_prior:
            self._log_prior = np.full(len(self.classes), -np.log(len(self.classes)))
        else:
            self._log_prior = np.log(docs / docs.sum())
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Unnormalized log posteriors, (len(texts), C)."""
        if self._log_prob is None:
            raise RuntimeError("StyleClassifier: call fit() before predicting")
        if not texts:
            return np.zeros((0, len(self.classes)))
        flat, offsets = self._features(texts)
        per_gram = self._log_prob[:, flat]  # (C, total n-grams)
        # Every framed text has at least its start/end markers, so no segment is empty for reduceat.
        summed = np.add.reduceat(per_gram, offsets, axis=1)  # (C, len(texts))
        return (summed + self._log_prior[:, None]).T

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely author of each text."""
        best = self.scores(texts).argmax(axis=1)
        return [self.classes[i] for i in best]

    def accuracy(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """Fraction of texts attributed to their label (NaN when there are none)."""
        if len(texts) != len(labels):
            raise ValueError(f"StyleClassifier.accuracy: {len(texts)} texts but {len(labels)} labels")
        if not texts:
            return float("nan")
        predicted = self.predict(texts)
        return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(texts)
