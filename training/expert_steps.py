"""The n-gram experts in training: fitted on the training part, and asked about every chunk the network reads.

Training steps are scored by the counts with each step's own occurrence left out (model/ngram.py): the
network then learns how far to trust counts on text they never saw, which is what it meets when it writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from model.experts import NgramExperts, last_bos_index
from model.names import NameOpinions
from model.vocab import AuthorTable, Vocabulary
from training.corpus import Message
from training.dataset import EncodedStream, conversations, spoken


def fit_experts(train_messages: Sequence[Message], vocab: Vocabulary, authors: AuthorTable,
                order: int) -> tuple[NgramExperts, float]:
    """The experts counted on the training messages in stream order, and the seconds it took."""
    started = time.perf_counter()
    ordered = [m for conv in conversations(spoken(train_messages)) for m in conv]
    experts = NgramExperts.fit([vocab.encode(m.text) for m in ordered], [authors.id_of(m.author) for m in ordered],
                               len(vocab), order)
    return experts, time.perf_counter() - started


class ExpertSteps:
    """log q of the experts for chunks of one encoded stream (host numpy, returned as a tensor)."""

    def __init__(self, experts: NgramExperts, stream: EncodedStream, counted: bool):
        self.experts = experts
        self.chars = stream.chars.numpy()
        self.authors = stream.authors.numpy()
        self.last_bos = last_bos_index(self.chars)
        self.counted = counted  # the stream is the one the experts counted: leave each step's own count out
        self.name_hints = stream.name_hints  # the names expert's opinions, when the model has its gate
        self._name_index = None if stream.name_hints is None else stream.name_hints.lookup(len(self.chars))

    def for_positions(self, positions: Tensor, shown_authors: Tensor | None = None,
                      device: torch.device | str = "cpu") -> Tensor:
        """(B, T, 2, V) for stream positions (B, T). Where the network is shown ⟨other⟩ instead of the real
        author (author dropout), the author expert says what the global one says: it must not know more."""
        B, T = positions.shape
        flat = positions.reshape(-1).numpy()
        log_q = self.experts.stream_log_q(self.chars, self.authors, flat, leave_one_out=self.counted,
                                          last_bos=self.last_bos)
        if shown_authors is not None:
            hidden = (shown_authors.reshape(-1).cpu().numpy() == 0) & (self.authors[flat] != 0)
            log_q[hidden, 1] = log_q[hidden, 0]
        return torch.from_numpy(log_q).view(B, T, 2, -1).to(device, non_blocking=True)

    def names_for_positions(self, positions: Tensor, device: torch.device | str = "cpu") -> NameOpinions | None:
        """The names expert's opinions on the steps at stream positions (B, T), or None (no gate, or no opinion)."""
        if self.name_hints is None:
            return None
        return NameOpinions.gather(self.name_hints, self._name_index, positions.numpy(), self.experts.vocab_size,
                                   device)
