"""`NgramExperts`: the counts the network writes on top of — a global and a per-author Kneser-Ney n-gram.

A character LSTM given minutes of a CPU learns far less of a chat's phrasing than counting does in seconds
(issue 13: a 7-gram beat the network on real chats). So the model predicts

    logits = network(h) + a(h) · log q_global(· | ctx) + b(h) · log q_author(· | ctx)

where ctx is the current message so far (the counts know nothing before ⟨bos⟩; the network reads the whole
conversation and the author, and decides, through a(h), b(h) ≥ 0, how far to trust each count at each step).
`combine` is that sum; everything that turns the network's outputs into characters goes through it. A
head with one output more also gates the names expert (model/names.py), which `combine` mixes in where it
has an opinion.

In training, each step's counts leave out that step's own occurrence (model/ngram.py's `leave_one_out`):
otherwise the counts would be sure of every training character and the network would learn to trust them
more than they deserve on text they never saw.

The per-author model backs off to the global one, so a persona with little text reads like everyone.

Text the counts never saw (evaluation, writing replies) is scored through one `DistributionTable`, built on first
use; experts read back from a model file keep only it (smaller than the counts, and all a reader needs).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch

from model.names import NameOpinions, mix_names, mix_names_np
from model.ngram import CountModel, Framed, back_symbols
from model.ngram_table import DistributionTable
from model.vocab import Vocabulary

EXPERTS = 2  # global, per author
DEFAULT_ORDER = 7
METHOD = "kn"
# The head's two weight logits start where the network trusts the global counts fully and the author's a little:
# softplus(0.5413) = 1.0, softplus(-1.5) = 0.2.
INITIAL_WEIGHT_BIAS = (0.5413, -1.5)


class NgramExperts:
    def __init__(self, global_model: CountModel | None, author_model: CountModel | None, order: int,
                 table: DistributionTable | None = None, data: bytes | None = None):
        self.global_model = global_model  # None when read back from a file: only the table is kept
        self.author_model = author_model
        self.order = order
        self.vocab_size = global_model.vocab_size if global_model is not None else table.vocab_size
        self._table = table
        self._data = data  # the bytes read, written back as they are

    @classmethod
    def fit(cls, encoded: Sequence[Sequence[int]], author_ids: Sequence[int], vocab_size: int,
            order: int = DEFAULT_ORDER) -> NgramExperts:
        """Count the training messages (each a list of symbol ids, no markers) by everyone and by author."""
        framed = Framed.build(encoded, author_ids)
        return cls(CountModel(vocab_size, order).fit(framed), CountModel(vocab_size, order, by_author=True).fit(framed),
                   order)

    def stream_log_q(self, chars: np.ndarray, authors: np.ndarray, positions: np.ndarray,
                     leave_one_out: bool = False, floors: np.ndarray | None = None,
                     last_bos: np.ndarray | None = None) -> np.ndarray:
        """log q (n, 2, V) of what follows each of `positions` in a stream of step ids (model/stream.py's:
        [SESSION] BOS text EOS per message), `authors` aligned with it. Zero rows (no opinion) where a new
        message comes next (after EOS or SESSION), or where no ⟨bos⟩ lies at or after `floors` (n,) (default
        0) before the position: the message began out of sight. `leave_one_out`: the stream is (part of) what
        was counted, and positions + 1 lie in it. `last_bos`: `last_bos_index(chars)`, for a caller asking
        about one long stream many times."""
        positions = np.asarray(positions, dtype=np.int64)
        chars = np.asarray(chars)
        top = self.order - 1
        bos = (last_bos_index(chars) if last_bos is None else last_bos)[positions]
        current = chars[positions]
        is_step = (current != Vocabulary.EOS) & (current != Vocabulary.SESSION) & (bos >= (0 if floors is None else floors))
        room = np.where(is_step, positions - bos + 1, 0)
        back = np.full((len(positions), top), self.vocab_size, dtype=np.uint64)  # the counts' padding symbol
        for d in range(1, top + 1):
            ok = d <= room
            back[ok, d - 1] = chars[positions[ok] - d + 1]
        who = np.asarray(authors)[positions]
        targets = np.where(is_step, chars[np.minimum(positions + 1, len(chars) - 1)], -1) if leave_one_out else None
        return self._log_q(back, who, targets, is_step)

    def prefix_log_q(self, prefixes: Sequence[Sequence[int]], author_ids: Sequence[int]) -> np.ndarray:
        """log q (B, 2, V) of the next symbol of B messages being written (prefix: the symbols after ⟨bos⟩)."""
        back = back_symbols(prefixes, self.order, pad=self.vocab_size)
        return self._log_q(back, np.asarray(author_ids), None, np.ones(len(prefixes), dtype=bool))

    def table(self) -> DistributionTable:
        """Both models' table, for text the counts never saw (built once)."""
        if self._table is None:
            self._table = DistributionTable([self.global_model, self.author_model], self.order, METHOD)
        return self._table

    def _log_q(self, back: np.ndarray, who: np.ndarray, targets: np.ndarray | None, is_step: np.ndarray) -> np.ndarray:
        if targets is None:
            p, rest = self.table().parts(back, who)  # (n, 2, V), (n, 2, 1)
            p[:, 0] += rest[:, 0] * (1.0 / self.vocab_size)
            p[:, 1] += rest[:, 1] * p[:, 0]  # the per-author counts back off to the global ones
        elif self.global_model is None or self.author_model is None:
            raise ValueError("n-gram experts read from a file cannot leave training steps out; refit them")
        else:
            p_global = self.global_model.distributions_back(back, who, self.order, METHOD, targets=targets)
            p_author = self.author_model.distributions_back(back, who, self.order, METHOD, base=p_global,
                                                            targets=targets)
            p = np.stack([p_global, p_author], axis=1)
        out = np.log(p).astype(np.float32)  # (n, 2, V)
        if not is_step.all():
            out[~is_step] = 0.0
        return out

    def to_bytes(self) -> bytes:
        if self._data is not None:
            return self._data
        arrays = {}
        for name, model in (("global", self.global_model), ("author", self.author_model)):
            arrays.update({f"{name}.{k}": v for k, v in model.to_arrays(self.order, METHOD).items()})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # sorted keys compress well (tinyshakespeare: 45 → 19 MB)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> NgramExperts:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            models = []
            for name in ("global", "author"):
                part = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(name + ".")}
                models.append(CountModel.from_arrays(part))
        except (OSError, ValueError, KeyError, IndexError) as err:
            raise ValueError(f"unreadable n-gram experts ({err})") from None
        del arrays, part  # the file's uint32 counts: the models hold their own copies (a lower peak at start-up)
        (global_model, order, method), (author_model, _, _) = models
        return cls(None, None, order, table=DistributionTable([global_model, author_model], order, method), data=data)


def last_bos_index(chars: np.ndarray) -> np.ndarray:
    """Index of the last ⟨bos⟩ at or before each position (-1 before the first)."""
    index = np.arange(len(chars))
    return np.maximum.accumulate(np.where(np.asarray(chars) == Vocabulary.BOS, index, -1))


class WithExperts(torch.nn.Module):
    """A module whose forward gives combined character logits: the network (eager or scripted) and its
    experts, for the callers that score text a chunk at a time (evaluation, `who`). It keeps each row's last
    symbols between calls, so a message cut across chunks keeps its n-gram context; `init_state`, or a call
    with another number of rows, forgets them (the experts abstain until the next ⟨bos⟩). Writing text goes
    through `combine_np` instead (model/generation.py, the engine)."""

    def __init__(self, module: torch.nn.Module, experts: NgramExperts, vocab_size: int):
        super().__init__()
        self.module = module
        self.experts = experts
        self.vocab_size = vocab_size
        self._recent: np.ndarray | None = None  # (2, B, order): each row's carried chars and authors

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._recent = None
        return self.module.init_state(batch_size)

    reads_names = True  # forward takes the names expert's opinions (model/names.py) on the chunk's steps

    def forward(self, chars: torch.Tensor, authors: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                names: NameOpinions | None = None):
        head, speaker, h, c = self.module(chars, authors, h, c)
        B, T = chars.shape
        keep = self.experts.order  # a marker (⟨bos⟩ once one was read) and the last order − 1 symbols
        recent = self._recent
        if recent is None or recent.shape[1] != B:
            recent = np.full((2, B, keep), Vocabulary.PAD, dtype=np.int64)
        rows_chars = np.concatenate([recent[0], chars.cpu().numpy()], axis=1)  # (B, keep + T)
        rows_authors = np.concatenate([recent[1], authors.cpu().numpy()], axis=1)
        width = keep + T
        positions = (np.arange(B)[:, None] * width + keep + np.arange(T)[None]).reshape(-1)
        floors = np.repeat(np.arange(B) * width, T)  # a row's context never reaches into the row above
        log_q = self.experts.stream_log_q(rows_chars.reshape(-1), rows_authors.reshape(-1), positions, floors=floors)
        self._recent = self._carry(rows_chars, rows_authors)
        q = torch.from_numpy(log_q).view(B, T, EXPERTS, -1).to(head.device)
        return combine(head, q, self.vocab_size, names), speaker, h, c

    def _carry(self, rows_chars: np.ndarray, rows_authors: np.ndarray) -> np.ndarray:
        """What the next call needs of these rows: the last order − 1 symbols, after a ⟨bos⟩ marker where a
        ⟨bos⟩ was read (it may lie further back: the context is then whole, with no padding; a stream never
        has text between an ⟨eos⟩ and the next ⟨bos⟩, and the experts abstain right after an ⟨eos⟩)."""
        keep = self.experts.order
        seen_bos = (rows_chars == Vocabulary.BOS).any(axis=1)
        tail_chars, tail_authors = rows_chars[:, -(keep - 1):].copy(), rows_authors[:, -(keep - 1):]
        if keep == 1:
            tail_chars, tail_authors = rows_chars[:, :0], rows_authors[:, :0]
        marker = np.where(seen_bos, Vocabulary.BOS, Vocabulary.PAD)[:, None]
        return np.stack([np.concatenate([marker, tail_chars], axis=1),
                         np.concatenate([rows_authors[:, -1:], tail_authors], axis=1)])


def combine(head: torch.Tensor, log_q: torch.Tensor | None, vocab_size: int,
            names: NameOpinions | None = None) -> torch.Tensor:
    """Character logits (..., V) from the network's head (..., V + 2 [+ 1]) and the experts' log q (..., 2, V);
    a head of V outputs (a model without experts) is returned as it is. With `names` (a head with the names
    gate), the steps where the names expert has an opinion get the mixture's log-probabilities (model/names.py):
    as logits they mean the same to a softmax or a cross-entropy."""
    if head.shape[-1] == vocab_size or log_q is None:
        return head[..., :vocab_size]
    weights = torch.nn.functional.softplus(head[..., vocab_size : vocab_size + EXPERTS].float())  # (..., 2)
    logits = head[..., :vocab_size].float() + (weights.unsqueeze(-1) * log_q).sum(dim=-2)
    if names is None or head.shape[-1] <= vocab_size + EXPERTS:
        return logits
    flat = logits.reshape(-1, vocab_size)
    gate = head[..., vocab_size + EXPERTS].reshape(-1)[names.at].float()
    return flat.index_copy(0, names.at, mix_names(flat[names.at], gate, names.q)).view(logits.shape)


def combine_np(head: np.ndarray, log_q: np.ndarray | None, vocab_size: int,
               names_q: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """`combine` in numpy, for the generation loops: head (B, V + 2 [+ 1]), log_q (B, 2, V) → (B, V);
    `names_q`: per row, the names expert's q (V,) or None where it abstains."""
    if head.shape[-1] == vocab_size or log_q is None:
        return head[..., :vocab_size]
    weights = np.logaddexp(0.0, head[:, vocab_size : vocab_size + EXPERTS])  # softplus, (B, 2)
    logits = head[:, :vocab_size] + np.einsum("be,bev->bv", weights, log_q)
    if names_q is None or head.shape[-1] <= vocab_size + EXPERTS:
        return logits
    rows = [i for i, q in enumerate(names_q) if q is not None]
    if rows:
        logits = logits.copy()
        logits[rows] = mix_names_np(logits[rows], head[rows, vocab_size + EXPERTS], np.stack([names_q[i] for i in rows]))
    return logits
