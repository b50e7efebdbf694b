"""`NumpyStep`: the char-LSTM's own arithmetic in numpy, a `Stepper` (model/stepping.py).

A reply is written one character at a time, so each step is a handful of small matrix products. Through
torch that is dominated by per-op dispatch (and, from a worker thread, by OpenMP team wake-ups); the same
arithmetic in numpy costs a fraction (`benchmarks/bench_generate.py` prints both). The weights come from
the module itself (an eager `CharLSTM` or an artifact's TorchScript module) and are checked against it at
load: if they disagree, or the module is not a `CharLSTM`, `stepper_for` steps the module instead.

An int8 artifact (torch's dynamic quantization) holds int8 weights; its module also rounds every
activation to 8 bits before each product, which costs 0.4–0.5 ms a step through torch. Here its weights are
unpacked and the arithmetic stays fp32: the replies keep the int8 file's weights, its size on disk, and the
fp32 speed. The module's activation rounding is then the difference, ~1% of each output (measured: 0.4–0.8%
of the largest value, against 0.1–0.3% between these outputs and the unquantized model's), so the check at
load allows 5% for int8 instead of 1e-4.

Precomputed for speed: the first layer's input projection of every character and every author (a table
lookup instead of a product), the two biases summed, gates reordered to (i, f, o, g) so one sigmoid
covers three of them, and each upper layer's input and recurrent weights stacked into one product.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from model.stepping import last_eos_index
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
    """The `Stepper` in numpy (see model/stepping.py), from a `CharLSTM`'s weights."""

    def __init__(self, weights: dict[str, np.ndarray], num_layers: int, hidden_size: int):
        w = weights
        H = self.hidden_size = hidden_size
        self.num_layers = num_layers
        embed_dim = w["char_embed.weight"].shape[1]
        w_ih0 = _ifog(w["lstm.weight_ih_l0"])
        bias0 = _ifog(w["lstm.bias_ih_l0"][:, None] + w["lstm.bias_hh_l0"][:, None])[:, 0]
        self.char_in = np.ascontiguousarray(w["char_embed.weight"] @ w_ih0[:, :embed_dim].T + bias0)  # (V, 4H)
        self.author_in = np.ascontiguousarray(w["author_embed.weight"] @ w_ih0[:, embed_dim:].T)  # (A, 4H)
        self.w_hh = [np.ascontiguousarray(_ifog(w["lstm.weight_hh_l0"]))]  # per layer: (4H, H)
        self.upper = []  # per layer above the first: stacked (4H, 2H) input+recurrent weights and (4H,) bias
        for layer in range(1, num_layers):
            stacked = np.concatenate([w[f"lstm.weight_ih_l{layer}"], w[f"lstm.weight_hh_l{layer}"]], axis=1)
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            self.upper.append((np.ascontiguousarray(_ifog(stacked)), _ifog(bias[:, None])[:, 0].copy()))
            self.w_hh.append(np.ascontiguousarray(self.upper[-1][0][:, H:]))
        self.char_outputs = w["char_head.weight"].shape[0]  # V, or V + 2 with n-gram experts
        self.head_w = np.ascontiguousarray(np.concatenate([w["char_head.weight"], w["speaker_head.weight"]]))
        self.head_b = np.concatenate([w["char_head.bias"], w["speaker_head.bias"]])
        assert self.w_hh[0].shape == (4 * H, H)

    def _cell(self, gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LSTM cell update for (B, 4H) gates in (i, f, o, g) order → (h, c), each (B, H)."""
        H = self.hidden_size
        ifo = _sigmoid(gates[:, : 3 * H])  # (B, 3H)
        c = ifo[:, H : 2 * H] * c + ifo[:, :H] * np.tanh(gates[:, 3 * H :])
        return ifo[:, 2 * H :] * np.tanh(c), c

    def _layers(self, chars: np.ndarray, authors: np.ndarray, h: np.ndarray, c: np.ndarray):
        """The LSTM over inputs (T, B) from state (L, B, H): the top layer's outputs (T, B, H) and the new state.

        Layer by layer, as cuDNN does: the first layer's input part is a table lookup, an upper layer's input
        projection of all T steps is one product over the outputs of the layer below, and only the recurrent
        product is left per step. For one step (T = 1) an upper layer's two products are one, over the
        stacked weights. Products are taken as `W @ x.T`: for 8-64 rows OpenBLAS runs that shape 1.3-1.7x
        faster than `x @ W.T` (measured on this project's CPU).
        """
        T, B = chars.shape
        H = self.hidden_size
        hs, cs = np.empty_like(h), np.empty_like(c)
        inputs = self.char_in[chars] + self.author_in[authors]  # (T, B, 4H): the first layer's input part
        outputs = np.empty((T, B, H), dtype=np.float32)
        for layer in range(self.num_layers):
            w_hh, ht, ct = self.w_hh[layer], h[layer], c[layer]
            if layer and T == 1:
                weight, bias = self.upper[layer - 1]
                gates = (weight @ np.concatenate([outputs[0], ht], axis=1).T).T + bias  # (B, 4H)
                ht, ct = self._cell(gates, ct)
                outputs[0], hs[layer], cs[layer] = ht, ht, ct
                continue
            if layer:
                weight, bias = self.upper[layer - 1]
                inputs = (weight[:, :H] @ outputs.reshape(T * B, H).T).T.reshape(T, B, 4 * H) + bias
                outputs = np.empty_like(outputs)
            for t in range(T):
                gates = (w_hh @ ht.T).T  # (B, 4H), a view of the (4H, B) product
                gates += inputs[t]
                ht, ct = self._cell(gates, ct)
                outputs[t] = ht
            hs[layer], cs[layer] = ht, ct
        return outputs, hs, cs

    def _head(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Char and speaker logits of top-layer outputs x (N, H): (N, V), (N, A)."""
        out = (self.head_w @ x.T).T + self.head_b  # (N, V + A)
        return out[:, : self.char_outputs], out[:, self.char_outputs :]

    def step(self, chars: np.ndarray, authors: np.ndarray, h: np.ndarray, c: np.ndarray):
        """One character for each of B rows (see `Stepper.step`)."""
        outputs, hs, cs = self._layers(np.asarray(chars)[None], np.asarray(authors)[None], h, c)
        logits, speaker = self._head(outputs[0])
        return logits, speaker, hs, cs

    def read(self, chars: list[int], authors: list[int], h: np.ndarray, c: np.ndarray):
        """One conversation's T inputs from state (L, 1, H) (see `Stepper.read`): about 0.055 ms a character
        on the `small` preset, against 0.09-0.2 ms through the module from a worker thread."""
        outputs, hs, cs = self._layers(np.asarray(chars)[:, None], np.asarray(authors)[:, None], h, c)
        last_eos = last_eos_index(chars)
        rows = [len(chars) - 1] if last_eos is None else [len(chars) - 1, last_eos]
        logits, speaker = self._head(outputs[rows, 0])  # (1 or 2, V), (1 or 2, A)
        return logits[:1].copy(), None if last_eos is None else speaker[1].copy(), hs, cs

    @classmethod
    def from_module(cls, module) -> NumpyStep | None:
        """The numpy step of a `CharLSTM` in eval mode, eager or scripted, fp32 or int8, checked against it;
        None when it does not apply."""
        if getattr(module, "training", False):
            return None  # dropout is on: nothing to agree with
        try:
            weights = {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
            quantized = "lstm.weight_hh_l0" not in weights
            if quantized:
                weights.update(_int8_weights(module))
            step = cls(weights, int(module.num_layers), int(module.hidden_size))
            agrees = step._agrees_with(module, tolerance=0.05 if quantized else 1e-4)
        except Exception as err:  # another architecture, int8 packed otherwise, a GPU module, a test's wrapper
            log.debug("numpy step not available (%s: %s); stepping the module", type(err).__name__, err)
            return None
        if not agrees:
            log.warning("the numpy step disagrees with the model file; stepping the module instead")
            return None
        return step

    def _agrees_with(self, module, tolerance: float, batch: int = 3) -> bool:
        """Does one step and one read give the module's outputs, to within `tolerance` of each output's
        largest value (fp32: 1e-4 absolute and relative)?"""
        gen = torch.Generator().manual_seed(0)
        chars = torch.randint(0, self.char_in.shape[0], (batch,), generator=gen)
        authors = torch.randint(0, self.author_in.shape[0], (batch,), generator=gen)
        h = torch.randn(self.num_layers, batch, self.hidden_size, generator=gen)
        c = torch.randn(self.num_layers, batch, self.hidden_size, generator=gen)
        with torch.no_grad():
            logits, speaker, h2, c2 = module(chars[:, None], authors[:, None], h, c)
        mine = self.step(chars.numpy(), authors.numpy(), h.numpy(), c.numpy())
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
