"""`NumpyStep`: one generation step of the char-LSTM in numpy, for the reply engine's hot loop.

A reply is written one character at a time, so each step is a handful of small matrix products. Through
torch that is dominated by per-op dispatch (and, from a worker thread, by OpenMP team wake-ups); the same
arithmetic in numpy costs a fraction (`benchmarks/bench_generate.py` prints both). The weights come from
the artifact's own TorchScript module and are checked against it at load: if they disagree, or the module
is not a `CharLSTM`, the engine keeps stepping the module.

An int8 artifact (torch's dynamic quantization) holds int8 weights; its module also rounds every
activation to 8 bits before each product, which costs 0.4–0.5 ms a step through torch. Here its weights are
unpacked and the arithmetic stays fp32: the replies keep the int8 file's weights, its size on disk, and the
fp32 speed. The module's activation rounding is then the difference, ~1% of each output (measured: 0.4–0.8%
of the largest value, against 0.1–0.3% between these outputs and the unquantized model's), so the check at
load allows 5% for int8 instead of 1e-4.

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

from model.vocab import Vocabulary

log = logging.getLogger(__name__)
_EOS = Vocabulary.EOS


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
        self.w_hh = [self.w_hh0]  # per layer: (4H, H), for `read`
        for layer in range(1, num_layers):
            stacked = np.concatenate([w[f"lstm.weight_ih_l{layer}"], w[f"lstm.weight_hh_l{layer}"]], axis=1)
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            self.upper.append((np.ascontiguousarray(_ifog(stacked)), _ifog(bias[:, None])[:, 0].copy()))
            self.w_hh.append(np.ascontiguousarray(self.upper[-1][0][:, H:]))
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

    def read(self, chars: list[int], authors: list[int], h: np.ndarray, c: np.ndarray):
        """Read one conversation's inputs (T ≥ 1 steps) from state h, c (L, 1, H): → char logits after the
        last input (1, V), speaker logits after the last EOS (A,) or None, and the new h, c.

        Layer by layer, as cuDNN does: the first layer's inputs are table lookups, and each upper layer's
        input projection is one product over all T outputs of the layer below; only the recurrent
        product is left per step. About 0.055 ms a character on the `small` preset, against 0.07–0.09 ms
        for T steps through `__call__` and 0.09–0.2 ms through the module from a worker thread.
        """
        H, T = self.hidden, len(chars)
        gates = self.char_in[chars] + self.author_in[authors]  # (T, 4H): the first layer's input part
        hs, cs = np.empty_like(h), np.empty_like(c)
        outputs = np.empty((T, H), dtype=np.float32)  # of the layer just read
        for layer in range(self.layers):
            if layer:
                weight, bias = self.upper[layer - 1]
                gates = (weight[:, :H] @ outputs.T).T + bias  # (T, 4H)
                outputs = np.empty_like(outputs)
            w_hh, ht, ct = self.w_hh[layer], h[layer, 0], c[layer, 0]
            for t in range(T):
                g = gates[t] + w_hh @ ht  # (4H,)
                ifo = _sigmoid(g[: 3 * H])
                ct = ifo[H : 2 * H] * ct + ifo[:H] * np.tanh(g[3 * H :])
                ht = outputs[t] = ifo[2 * H :] * np.tanh(ct)
            hs[layer, 0], cs[layer, 0] = ht, ct
        last_eos = max((t for t, ch in enumerate(chars) if ch == _EOS), default=None)
        rows = [T - 1] if last_eos is None else [T - 1, last_eos]
        out = (self.head_w @ outputs[rows].T).T + self.head_b  # (1 or 2, V + A)
        speaker = None if last_eos is None else out[1, self.vocab_size :].copy()
        return out[:1, : self.vocab_size].copy(), speaker, hs, cs

    @classmethod
    def from_module(cls, module) -> NumpyStep | None:
        """The numpy step of a scripted `CharLSTM` (fp32 or int8), checked against it; None when it does not
        apply."""
        try:
            weights = {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
            quantized = "lstm.weight_hh_l0" not in weights
            if quantized:
                weights.update(_int8_weights(module))
            step = cls(weights, int(module.num_layers), int(module.hidden_size))
        except Exception as err:  # another architecture, a torch that packs int8 otherwise, a test's wrapper
            log.debug("numpy step not available (%s: %s); stepping the module", type(err).__name__, err)
            return None
        if not step._agrees_with(module, tolerance=0.05 if quantized else 1e-4):
            log.warning("the numpy step disagrees with the model file; stepping the module instead")
            return None
        return step

    def _agrees_with(self, module, tolerance: float, batch: int = 3) -> bool:
        """Does one step and one read give the module's outputs, to within `tolerance` of each output's
        largest value (fp32: 1e-4 absolute and relative)?"""
        gen = torch.Generator().manual_seed(0)
        chars = torch.randint(0, self.vocab_size, (batch,), generator=gen)
        authors = torch.randint(0, self.author_in.shape[0], (batch,), generator=gen)
        h = torch.randn(self.layers, batch, self.hidden, generator=gen)
        c = torch.randn(self.layers, batch, self.hidden, generator=gen)
        with torch.no_grad():
            logits, speaker, h2, c2 = module(chars[:, None], authors[:, None], h, c)
        mine = self(chars.numpy(), authors.numpy(), h.numpy(), c.numpy())
        theirs = (logits[:, 0], speaker[:, 0], h2, c2)
        # and a sequence through `read`, with an EOS inside it
        seq = torch.cat([chars, torch.tensor([_EOS]), chars])
        who = torch.cat([authors, authors[:1], authors])
        with torch.no_grad():
            logits, speaker, h3, c3 = module(seq[None], who[None], h[:, :1], c[:, :1])
        mine += self.read(seq.tolist(), who.tolist(), h[:, :1].numpy(), c[:, :1].numpy())
        theirs += (logits[:, -1], speaker[0, batch], h3, c3)
        for ours, reference in zip(mine, theirs, strict=True):
            reference = reference.float().numpy()
            scale = 1.0 if tolerance <= 1e-4 else float(np.abs(reference).max())
            if not np.allclose(ours, reference, rtol=tolerance, atol=tolerance * scale):
                return False
        return True


def _int8_weights(module) -> dict[str, np.ndarray]:
    """The LSTM and head weights of a dynamically quantized `CharLSTM`, dequantized to fp32, under the fp32
    model's state_dict names. Reads torch's packed parameters (the layout of torch 2.x)."""
    weights = {}
    cells = module.lstm._all_weight_values
    for layer in range(int(module.num_layers)):
        state = getattr(cells, str(layer)).param.__getstate__()[0]  # (kind, [b_ih, b_hh], [], [..], [ih, hh])
        if state[0] != "quantized_dynamic":
            raise ValueError(f"LSTM layer {layer} is {state[0]!r}, not dynamically quantized")
        (b_ih, b_hh), packed = state[1], state[4]
        weights[f"lstm.bias_ih_l{layer}"] = b_ih.detach().float().numpy()
        weights[f"lstm.bias_hh_l{layer}"] = b_hh.detach().float().numpy()
        for name, params in zip(("ih", "hh"), packed, strict=True):
            weights[f"lstm.weight_{name}_l{layer}"] = torch.ops.quantized.linear_unpack(params)[0].dequantize().numpy()
    for head in ("char_head", "speaker_head"):
        weight, bias = torch.ops.quantized.linear_unpack(getattr(module, head)._packed_params._packed_params)
        weights[f"{head}.weight"], weights[f"{head}.bias"] = weight.dequantize().numpy(), bias.detach().float().numpy()
    return weights
