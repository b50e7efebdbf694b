"""Memorization guard cost: the check that runs on every reply, against a guard of 100k messages.

Builds a guard from generated chat-like messages (a third of them 60 characters or longer, so it holds
windows and whole messages), then times `contains_memorized` (every reply, every resample) and
`memorized_start` (only when a reply still matches after its resamples) on 300-character replies.

    python benchmarks/bench_guard.py [--messages 100000] [--reply-chars 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model.guard import MemorizationGuard  # noqa: E402


def messages(count: int, rng: random.Random) -> list[str]:
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8))) for _ in range(5000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 18))) for _ in range(count)]


def per_call(function, texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        function(text)
    return (time.perf_counter() - start) / len(texts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--reply-chars", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    rng = random.Random(0)
    corpus = messages(args.messages, rng)
    start = time.perf_counter()
    guard = MemorizationGuard.build(corpus, n=60)
    build = time.perf_counter() - start
    replies = [" ".join(messages(40, rng))[: args.reply_chars] for _ in range(200)]
    figures = {
        "messages": args.messages,
        "window_hashes": len(guard),
        "message_hashes": int(guard.messages.size),
        "build_s": round(build, 2),
        "reply_chars": args.reply_chars,
        "contains_memorized_ms": round(min(per_call(guard.contains_memorized, replies) for _ in range(3)) * 1e3, 3),
        "memorized_start_ms": round(min(per_call(guard.memorized_start, replies) for _ in range(3)) * 1e3, 3),
    }
    held = next(text for text in corpus if 20 <= len(text) < 60)
    assert guard.contains_memorized("so " + held.upper() + " ok")  # the check finds what it must
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"guard of {figures['messages']} messages: {figures['window_hashes']} window hashes, "
              f"{figures['message_hashes']} whole messages, built in {figures['build_s']} s")
        print(f"{figures['reply_chars']}-character reply: contains_memorized {figures['contains_memorized_ms']} ms, "
              f"memorized_start {figures['memorized_start_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
