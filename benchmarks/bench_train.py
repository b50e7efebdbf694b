"""Training speed as a ratio: effective LSTM FLOP/s of the real training loop ÷ the machine's matmul FLOP/s.

In one run on one machine: first the fp32 matrix-multiply rate (torch.mm on square matrices sized like
the LSTM's gate matmul, best of several), then characters/s of the `small` and `medium` presets through
the trainer's own step (`training.train_benchmark.train_steps_benchmark`), converted to FLOP/s:

    per character, per layer, forward ≈ 2·4H·(I+H)   (the four gates: input and recurrent matmuls)
    heads, forward                    ≈ 2·H·V + 2·H·A (next character, next speaker)
    training                          ≈ 3 × forward   (forward, and backward for inputs and weights)

`ratio` = lstm_gflops / matmul_gflops: how much of the machine's matmul rate training keeps. All cores
are used (torch's default thread count) unless --threads says otherwise.

    python benchmarks/bench_train.py [--json] [--presets small,medium] [--seconds 20] [--rounds 3] [--threads N]

Timed windows and matmul rounds keep their best: on a machine shared with other work the best window is
the one least disturbed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from model.config import PRESETS, ModelConfig  # noqa: E402
from training.train_benchmark import train_steps_benchmark  # noqa: E402
from training.train_config import TrainConfig  # noqa: E402

# A chat corpus's vocabulary and author table are about this size; V and A only matter for the heads.
VOCAB_SIZE = 160
N_AUTHORS = 8


def matmul_gflops(size: int, seconds: float = 1.0, repeats: int = 5) -> float:
    """Best GFLOP/s of torch.mm on (size × size) fp32 matrices over `repeats` timed rounds."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up: thread pool, caches
    flops = 2.0 * size**3
    # Enough multiplies per round that one round lasts about seconds/repeats.
    start = time.perf_counter()
    torch.mm(a, b, out=out)
    per_call = max(time.perf_counter() - start, 1e-6)
    calls = max(1, int(seconds / repeats / per_call))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        elapsed = time.perf_counter() - start
        best = max(best, flops * calls / elapsed / 1e9)
    return best


def flops_per_char(config: ModelConfig) -> dict[str, float]:
    """Forward FLOPs per character: the LSTM layers and the two heads."""
    H = config.hidden_size
    lstm = 0.0
    for layer in range(config.num_layers):
        inputs = config.char_embed_dim + config.author_embed_dim if layer == 0 else H
        lstm += 2.0 * 4 * H * (inputs + H)
    heads = 2.0 * H * config.vocab_size + 2.0 * H * config.n_authors
    return {"lstm": lstm, "heads": heads}


def gate_matmul_size(config: ModelConfig) -> int:
    """A square size like the gate matmul's: its output width 4H (rounded to a multiple of 64)."""
    return max(256, min(4096, (4 * config.hidden_size + 63) // 64 * 64))


def bench_preset(name: str, seconds: float, batch_size: int, seq_len: int, rounds: int = 3) -> dict:
    """Characters/s of one preset through the trainer's own step on synthetic batches (best of `rounds`
    timed windows, like the matmul figure), and the FLOP/s that makes."""
    config = ModelConfig.from_preset(name, VOCAB_SIZE, N_AUTHORS)
    windows = [train_steps_benchmark(config, batch_size=batch_size, seq_len=seq_len, seconds=seconds / rounds)
               for _ in range(rounds)]
    measured = max(windows, key=lambda w: w["chars_per_s"])
    chars_per_s = float(measured["chars_per_s"])
    flops = flops_per_char(config)
    train_flops = 3.0 * (flops["lstm"] + flops["heads"])  # forward + backward ≈ 3 × forward
    return {
        "chars_per_s": chars_per_s,
        "lstm_gflops": chars_per_s * train_flops / 1e9,
        "lstm_only_gflops": chars_per_s * 3.0 * flops["lstm"] / 1e9,
        "flops_per_char": train_flops,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "batch": measured.get("batch_size"),
        "seq_len": measured.get("seq_len"),
        "steps": measured.get("steps"),
        "chars_per_s_rounds": [round(w["chars_per_s"], 1) for w in windows],
    }


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--presets", default="small,medium", help="comma-separated presets (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed training seconds per preset (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="parallel streams, as `talklike train` (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len,
                        help="steps per chunk, as `talklike train` (default: %(default)s)")
    parser.add_argument("--matmul-seconds", type=float, default=1.0, help="timed seconds per matmul size (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed windows per preset, best kept (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)} (choose from {', '.join(PRESETS)})")
    say = (lambda *a: None) if args.json else print

    configs = {p: ModelConfig.from_preset(p, VOCAB_SIZE, N_AUTHORS) for p in presets}
    sizes = sorted({gate_matmul_size(c) for c in configs.values()} | {c.hidden_size for c in configs.values()})
    by_size = {size: matmul_gflops(size, seconds=args.matmul_seconds) for size in sizes}
    peak = max(by_size.values())
    result = {
        "matmul_gflops": peak,
        "matmul_gflops_by_size": {str(k): v for k, v in by_size.items()},
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "presets": {},
    }
    sizes_text = ", ".join(f"{k}: {v:.1f}" for k, v in by_size.items())
    say(f"matmul fp32: {peak:.1f} GFLOP/s (best of sizes {sizes_text}), {result['threads']} threads")
    for name in presets:
        figures = bench_preset(name, args.seconds, args.batch_size, args.seq_len, max(1, args.rounds))
        figures["ratio"] = figures["lstm_gflops"] / peak
        result["presets"][name] = figures
        say(f"{name:>8}: {figures['chars_per_s']:>10,.0f} chars/s  {figures['lstm_gflops']:7.1f} GFLOP/s  "
            f"ratio {figures['ratio']:.2f}  (H={figures['hidden_size']}, {figures['num_layers']} layers, "
            f"batch {args.batch_size}×{args.seq_len}, {figures['steps']} steps)")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
