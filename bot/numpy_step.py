"""`NumpyStep`: one generation step of the char-LSTM in numpy, for the reply engine's hot loop.

A reply is written one character at a time, so each step is a handful of small matrix products. Through
torch that is dominated by per-op dispatch (and, from a worker thread, by OpenMP team wake-ups); the same
arithmetic in numpy costs a fraction (`benchmarks/bench_generate.py` prints both). The weights come from
the artifact's own TorchScript module and are checked against it at load: if they disagree, or the module
is not a plain fp32 `CharLSTM` (an int8 artifact), the engine keeps stepping the module.

Precomputed for speed: the first layer's input projection of every character and every author (a table
lookup instead of a product), the two biases summed, gates reordered to (i, f, o, g) so one sigmoid
covers three of them, and each upper layer's input and recurrent weights stacked into one product.
Weights stay in torch's (out, in) layout and each product is taken as `W @ x.T`: for a batch of 8–64 rows
OpenBLAS runs that shape 1.3–1.7× faster than `x @ W.T` (measured on this project's CPU; one row alike).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


def _ifog(w: np.ndarray) -> np.ndarray:
    """Rows in torch's gate order (i, f, g, o) → (i, f, o, g)."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, f, o, g], axis=0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # = 1 / (1 + e^-x), without overflow warnings


class NumpyStep:
    """`step(chars (B,), authors (B,), h, c (L, B, H)) → char logits (B, V), speaker logits (B, A), h, c`."""

    def __init__(self, weights: dict[str, np.ndarray], num_layers: int, hidden_size: int):
        w = weights
        H = self.hidden = hidden_size
        self.layers = num_layers
        embed_dim = w["char_embed.weight"].shape[1]
        w_ih0 = _ifog(w["lstm.weight_ih_l0"])
        bias0 = _ifog(w["lstm.bias_ih_l0"][:, None] + w["lstm.bias_hh_l0"][:, None])[:, 0]
        self.char_in = np.ascontiguousarray(w["char_embed.weight"] @ w_ih0[:, :embed_dim].T + bias0)  # (V, 4H)
        self.author_in = np.ascontiguousarray(w["author_embed.weight"] @ w_ih0[:, embed_dim:].T)  # (A, 4H)
        self.w_hh0 = np.ascontiguousarray(_ifog(w["lstm.weight_hh_l0"]))  # (4H, H)
        self.upper = []  # per layer above the first: stacked (4H, 2H) weights and (4H,) bias
        for layer in range(1, num_layers):
            stacked = np.concatenate([w[f"lstm.weight_ih_l{layer}"], w[f"lstm.weight_hh_l{layer}"]], axis=1)
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            self.upper.append((np.ascontiguousarray(_ifog(stacked)), _ifog(bias[:, None])[:, 0].copy()))
        self.vocab_size = w["char_head.weight"].shape[0]
        self.head_w = np.ascontiguousarray(np.concatenate([w["char_head.weight"], w["speaker_head.weight"]]))
        self.head_b = np.concatenate([w["char_head.bias"], w["speaker_head.bias"]])
        assert self.w_hh0.shape == (4 * H, H)

    def _cell(self, gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        H = self.hidden
        ifo = _sigmoid(gates[:, : 3 * H])  # (B, 3H)
        c = ifo[:, H : 2 * H] * c + ifo[:, :H] * np.tanh(gates[:, 3 * H :])
        return ifo[:, 2 * H :] * np.tanh(c), c

    def __call__(self, chars: np.ndarray, authors: np.ndarray, h: np.ndarray, c: np.ndarray):
        hs, cs = np.empty_like(h), np.empty_like(c)  # (L, B, H)
        gates = (self.w_hh0 @ h[0].T).T  # (B, 4H), a view of the (4H, B) product
        gates += self.char_in[chars]
        gates += self.author_in[authors]
        x, cs[0] = self._cell(gates, c[0])
        hs[0] = x
        for layer, (weight, bias) in enumerate(self.upper, start=1):
            gates = (weight @ np.concatenate([x, h[layer]], axis=1).T).T
            gates += bias
            x, cs[layer] = self._cell(gates, c[layer])
            hs[layer] = x
        out = (self.head_w @ x.T).T + self.head_b  # (B, V + A)
        return out[:, : self.vocab_size], out[:, self.vocab_size :], hs, cs

    @classmethod
    def from_module(cls, module) -> NumpyStep | None:
        """The numpy step of a scripted fp32 `CharLSTM`, checked against it; None when it does not apply."""
        try:
            state = module.state_dict()
            weights = {k: v.detach().float().cpu().numpy() for k, v in state.items()}
            step = cls(weights, int(module.num_layers), int(module.hidden_size))
        except Exception as err:  # int8 (packed weights), another architecture, a wrapper in tests
            log.debug("numpy step not available (%s: %s); stepping the module", type(err).__name__, err)
            return None
        if not step._agrees_with(module):
            log.warning("the numpy step disagrees with the model file; stepping the module instead")
            return None
        return step

    def _agrees_with(self, module, batch: int = 3) -> bool:
        gen = torch.Generator().manual_seed(0)
        chars = torch.randint(0, self.vocab_size, (batch,), generator=gen)
        authors = torch.randint(0, self.author_in.shape[0], (batch,), generator=gen)
        h = torch.randn(self.layers, batch, self.hidden, generator=gen)
        c = torch.randn(self.layers, batch, self.hidden, generator=gen)
        with torch.no_grad():
            logits, speaker, h2, c2 = module(chars[:, None], authors[:, None], h, c)
        mine = self(chars.numpy(), authors.numpy(), h.numpy(), c.numpy())
        theirs = (logits[:, 0], speaker[:, 0], h2, c2)
        return all(np.allclose(m, t.float().numpy(), rtol=1e-4, atol=1e-4) for m, t in zip(mine, theirs, strict=True))
