"""Generation speed of the reply engine, all figures in one run on one machine (`small` preset).

    python benchmarks/bench_generate.py [--json] [--threads N] [--quick]

Speed does not depend on training, so the model has random weights. Figures:
- naive_chars_per_s: eager fp32 module, default backend (oneDNN on), one step and one multinomial per char;
- engine_chars_per_s: one conversation through `Engine.reply` (numpy decode step, state cached);
- aggregate_chars_per_s at 1, 8 and 32 concurrent conversations (threads), batching_gain_32 = 32 / 1;
- latency_ms of a 100-character reply with 0 and 1,000 earlier messages (p50, p95), history_ratio_p50;
- with_experts: single-stream and 32-conversation chars/s and file size of the same network with n-gram experts
  and the names expert's gate (what `talklike train` makes by default), counted on
  ../shared/data/tinyshakespeare.txt, the messages answered written by a named stranger, and its ratio to
  engine_chars_per_s;
- int8: single-stream chars/s and file size of the int8 artifact, next to the fp32 size (the engine steps
  int8 files in numpy too, fp32 arithmetic over the file's int8 weights);
- for context: naive_no_onednn_chars_per_s (the oneDNN switch alone) and engine_torch_step_chars_per_s and
  aggregate_torch_step_32 (the engine stepping the TorchScript module instead of the numpy step), and
  int8_torch_step_chars_per_s (the int8 file's own module stepped: torch's int8 arithmetic);
- bare_step_us at 1 and 32 rows: the numpy decode step plus sampling in a plain loop, no engine around it,
  and batching_gain_bound_32 = 32 rows x the engine's time per single-stream character / bare_step_us["32"]:
  the gain an engine with no cost of its own at 32 conversations would reach on this machine.
Characters counted are those returned to the caller (a reply cut at a word boundary counts only its kept part).
Speeds are the best of 3 runs and the two latencies are measured alternately, so that other load on a shared
machine distorts the ratios less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import string
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.engine.engine import Engine, EngineConfig  # noqa: E402
from bot.engine.settings import SamplingSettings  # noqa: E402
from model.artifact import save_artifact  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.experts import EXPERTS, NgramExperts  # noqa: E402
from model.network import CharLSTM  # noqa: E402
from model.sampler import sample_rows  # noqa: E402
from model.stream import encode_message  # noqa: E402
from model.vocab import AuthorTable, Vocabulary  # noqa: E402

REPLY = SamplingSettings(temperature=0.8, min_chars=100, max_chars=100)  # every reply is 100 characters long


SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def build(tmp: Path):
    vocab = Vocabulary.build([string.printable + "éèàçüöñ😂❤️👍"])
    authors = AuthorTable(["Alice", "Bob", "Carol", "Dan"])
    config = ModelConfig.from_preset("small", len(vocab), len(authors))
    torch.manual_seed(0)
    model = CharLSTM(config).eval()
    fp32, int8 = tmp / "fp32.pt", tmp / "int8.pt"
    card = {"authors": {}}
    save_artifact(fp32, model, vocab, authors, config, card, None)
    save_artifact(int8, model, vocab, authors, config, card, None, quantize="int8")
    return model, vocab, authors, fp32, int8


def build_with_experts(tmp: Path, vocab: Vocabulary, authors: AuthorTable) -> Path | None:
    """The same network shape with n-gram experts counted on real text (the shared tinyshakespeare lines, by four
    authors in turn): what `talklike train` makes by default. None when the shared data is not there."""
    if not SHAKESPEARE.is_file():
        return None
    lines = [line for line in SHAKESPEARE.read_text(encoding="utf-8").splitlines() if line.strip()]
    experts = NgramExperts.fit([vocab.encode(line) for line in lines], [1 + i % 4 for i in range(len(lines))],
                               len(vocab))
    config = ModelConfig.from_preset("small", len(vocab), len(authors), experts=EXPERTS + 1)  # and the names gate
    torch.manual_seed(0)
    path = tmp / "experts.pt"
    save_artifact(path, CharLSTM(config).eval(), vocab, authors, config, {"authors": {}}, None, experts=experts)
    return path


@torch.no_grad()
def naive_chars_per_s(model: CharLSTM, vocab: Vocabulary, n_chars: int = 400) -> float:
    """The baseline: eager module, default backend, one step and one multinomial per character."""
    h, c = model.init_state(1)
    chars, who = encode_message(vocab, 1, "hello there", session=True)
    _, _, h, c = model(torch.tensor([chars]), torch.tensor([who]), h, c)
    x = torch.tensor([[Vocabulary.BOS]])
    a = torch.tensor([[1]])
    start = 0.0
    for i in range(n_chars + 20):  # the first 20 warm up (the backend prepares its kernels)
        if i == 20:
            start = time.perf_counter()
        logits, _, h, c = model(x, a, h, c)
        x = torch.multinomial(torch.softmax(logits[0, -1] / 0.8, dim=-1), 1).view(1, 1)
    return n_chars / (time.perf_counter() - start)


def single_stream(engine: Engine, replies: int, author: str | None = None) -> float:
    chars, start = 0, time.perf_counter()
    for i in range(replies):
        chars += len(engine.reply("single", "Alice", "how was it?", author, settings=REPLY.to_dict(), seed=i))
    return chars / (time.perf_counter() - start)


def aggregate(engine: Engine, conversations: int, replies_each: int, author: str | None = None) -> float:
    """Characters/s over `conversations` threads each asking for `replies_each` replies in a row. The
    threads are started first and released together, as a server's request threads already run: starting
    a thread waits for the GIL, and 32 of them would trickle in over ~100 ms of an already busy engine."""
    counts = [0] * conversations
    ready = threading.Barrier(conversations + 1)

    def chat(k: int) -> None:
        ready.wait()
        for i in range(replies_each):
            counts[k] += len(engine.reply(f"agg{conversations}:{k}", "Bob", "and then?", author,
                                          settings=REPLY.to_dict(), seed=i))

    threads = [threading.Thread(target=chat, args=(k,)) for k in range(conversations)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def reply_ms(engine: Engine, key: str, seed: int) -> float:
    start = time.perf_counter()
    engine.reply(key, "Carol", "what do you think?", settings=REPLY.to_dict(), seed=seed)
    return (time.perf_counter() - start) * 1000


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50": statistics.median(times), "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]}


def latencies(engine: Engine, replies: int) -> tuple[dict[str, float], dict[str, float]]:
    """Reply latency in a new conversation and in one with 1,000 earlier messages, measured alternately
    so that load from elsewhere hits both alike."""
    for i in range(1000):
        engine.observe("history", ["Alice", "Bob", "Dan", None][i % 4], f"message {i}, about this and that",
                       timestamp=1000.0 + i)
    fresh, history = [], []
    for i in range(replies):
        fresh.append(reply_ms(engine, f"fresh:{i}", i))
        history.append(reply_ms(engine, "history", i))
    return percentiles(fresh), percentiles(history)


def bare_step_us(engine: Engine, rows: int, steps: int = 500) -> float:
    """Microseconds per step of the engine's numpy decode step and sampler alone, `rows` at a time."""
    step = engine.worker.stepper
    h = np.zeros((step.num_layers, rows, step.hidden_size), dtype=np.float32)
    c = h.copy()
    authors = np.ones(rows, dtype=np.int64)
    logits, _, h, c = step.step(np.full(rows, Vocabulary.BOS), authors, h, c)
    temperature, top_p = np.full(rows, 0.8, dtype=np.float32), np.ones(rows, dtype=np.float32)
    top_k, allow, rng = np.zeros(rows, dtype=np.int64), np.ones(rows, dtype=bool), np.random.default_rng(0)
    start = 0.0
    for i in range(steps + 50):  # the first 50 warm up
        if i == 50:
            start = time.perf_counter()
        chars = sample_rows(logits, temperature, top_k, top_p, allow, rng.random(rows), cut=False, greedy=False,
                            eos_forbidden=False)
        logits, _, h, c = step.step(chars, authors, h, c)
    return (time.perf_counter() - start) / steps * 1e6


def best(reps: int, measure) -> float:
    """The highest of `reps` measurements (others' load only ever slows a run down)."""
    return max(measure() for _ in range(reps))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 1 if args.quick else 3  # speeds are best-of-reps: the machine may be shared
    with tempfile.TemporaryDirectory() as tmp:
        model, vocab, authors, fp32, int8 = build(Path(tmp))
        with_experts = build_with_experts(Path(tmp), vocab, authors)
        naive = best(reps, lambda: naive_chars_per_s(model, vocab, 300))
        with torch.backends.mkldnn.flags(enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None):
            naive_no_onednn = best(reps, lambda: naive_chars_per_s(model, vocab, 500))
        with Engine(str(fp32), EngineConfig(guard=False)) as engine:
            engine_cps = best(reps, lambda: single_stream(engine, 2))
            agg = {"1": engine_cps, "8": best(reps, lambda: aggregate(engine, 8, 2)),
                   "32": best(reps, lambda: aggregate(engine, 32, 2))}
            lat0, lat1000 = latencies(engine, 10 * reps)
            bare = {str(rows): min(bare_step_us(engine, rows) for _ in range(reps)) for rows in (1, 32)}
        with Engine(str(fp32), EngineConfig(guard=False, fast_step=False)) as engine:
            torch_step_cps = best(reps, lambda: single_stream(engine, 2))
            torch_step_32 = best(reps, lambda: aggregate(engine, 32, 2))
        with Engine(str(int8), EngineConfig(guard=False)) as engine:
            int8_cps = best(reps, lambda: single_stream(engine, 2))
        with Engine(str(int8), EngineConfig(guard=False, fast_step=False)) as engine:
            int8_torch_cps = best(reps, lambda: single_stream(engine, 2))
        experts_figures = {}
        if with_experts is not None:
            with Engine(str(with_experts), EngineConfig(guard=False)) as engine:
                # A named stranger writes: the names expert offers their name at each reply's start.
                experts_figures = {"chars_per_s": round(best(reps, lambda: single_stream(engine, 2, "Dave")), 1),
                                   "aggregate_32": round(best(reps, lambda: aggregate(engine, 32, 2, "Dave")), 1),
                                   "size_bytes": with_experts.stat().st_size}
            experts_figures["ratio_to_engine"] = round(experts_figures["chars_per_s"] / engine_cps, 3)
        figures = {
            "naive_chars_per_s": round(naive, 1),
            "engine_chars_per_s": round(engine_cps, 1),
            "speedup_vs_naive": round(engine_cps / naive, 2),
            "aggregate_chars_per_s": {k: round(v, 1) for k, v in agg.items()},
            "batching_gain_32": round(agg["32"] / agg["1"], 2),
            "latency_ms": {"history_0": {k: round(v, 1) for k, v in lat0.items()},
                           "history_1000": {k: round(v, 1) for k, v in lat1000.items()}},
            "history_ratio_p50": round(lat1000["p50"] / lat0["p50"], 2),
            "int8": {"chars_per_s": round(int8_cps, 1), "size_bytes": int8.stat().st_size,
                     "fp32_size_bytes": fp32.stat().st_size},
            # the default model: the network on top of n-gram experts (counted on tinyshakespeare)
            "with_experts": experts_figures,
            # context: the same naive loop with oneDNN off, and the engine stepping the TorchScript module
            "naive_no_onednn_chars_per_s": round(naive_no_onednn, 1),
            "engine_torch_step_chars_per_s": round(torch_step_cps, 1),
            "aggregate_torch_step_32": round(torch_step_32, 1),
            "int8_torch_step_chars_per_s": round(int8_torch_cps, 1),
            "bare_step_us": {k: round(v, 1) for k, v in bare.items()},
            "batching_gain_bound_32": round(32 * (1e6 / engine_cps) / bare["32"], 2),
            "torch_threads": torch.get_num_threads(),
        }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
