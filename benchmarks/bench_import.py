"""Import speed: generate ≥ 50 MB of real-format exports, import them, print MB/s.

Also prints, from the same run on the same machine, the speed of merely decoding the same bytes
(json.loads for JSON, splitting lines for text) so the figure can be read as a ratio: how close the
importer runs to the cost of reading its input at all.

Then the scrubber alone on long adversarial messages: 60,000 characters of one pattern each (the kind
that made a backtracking scanner quadratic: "a.a.a.", local parts without "@", digit chains, ...), with
the slowest as the headline figure, and on ordinary chat messages for comparison.

    python benchmarks/bench_import.py [--mb 50] [--json] [--keep DIR] [--scrub-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.demo.chat import generate_chat  # noqa: E402
from training.demo.writers import write_messenger_export, write_telegram_export, write_whatsapp_export  # noqa: E402
from training.import_pipeline import ImportSettings, run_import  # noqa: E402
from training.pii import scrub  # noqa: E402

ADVERSARIAL_CHARS = 60_000
# One repeated unit per message; " @ 123" at the end keeps every branch of the scan in play.
ADVERSARIAL = {
    "dotted letters a.a.a.": "a.",
    "local parts, no @": "ab.cd+",
    "a@a@a@": "a@",
    "hyphens a-a-a-": "a-",
    "digit chain 1 1 1": "1 ",
    "digit chain 12 12 12": "12 ",
    "mixed separators": "12-34.56/78(",
    "+1+1+1": "+1",
    "IBAN starts": "AB12 ",
    "IBAN-like groups": "DE89 3704 ",
    "http://http://": "http://",
    "hosts with paths": "x.com/",
    "numbers in hosts": "0612345678.so ",
    "one long word": "a",
    "words": "hello ",
    "chat full of PII": "call me at +49 171 2345678 or mail ada@example.com, see t.me/ada ok? ",
}

def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def write_exports(root: str, target_mb: float) -> dict[str, str]:
    """Write Messenger, Telegram and WhatsApp exports of about target_mb/3 each."""
    per_format = target_mb * 1e6 / 3
    chat = generate_chat(seed=1, messages=20000)
    folders = {}
    for name in ("messenger", "telegram", "whatsapp"):
        folder = os.path.join(root, name)
        os.makedirs(folder)
        copy = 0
        while folder_bytes(folder) < per_format:
            if name == "messenger":
                write_messenger_export(chat, os.path.join(folder, f"copy{copy}"), thread=f"bench{copy}_{copy:010d}")
            elif name == "telegram":
                write_telegram_export(chat, os.path.join(folder, f"copy{copy}"), chat_name=f"Bench {copy}")
            else:
                write_whatsapp_export(chat, os.path.join(folder, f"WhatsApp Chat with Bench {copy}.txt"),
                                      style="android" if copy % 2 == 0 else "ios")
            copy += 1
        folders[name] = folder
    return folders


def decode_floor(folder: str) -> float:
    """Seconds to read and decode every file (json.loads or splitlines): the cost of reading at all."""
    start = time.perf_counter()
    for directory, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                data = handle.read()
            text = data.decode("utf-8-sig")
            if name.endswith(".json"):
                json.loads(text)
            else:
                text.splitlines()
    return time.perf_counter() - start


def adversarial(unit: str) -> str:
    tail = " @ 123"
    return (unit * (ADVERSARIAL_CHARS // len(unit) + 1))[: ADVERSARIAL_CHARS - len(tail)] + tail


def scrub_figures() -> dict:
    """Seconds and MB/s of one scrub per adversarial message (best of three), and of ordinary messages."""
    cases = {}
    for name, unit in ADVERSARIAL.items():
        text = adversarial(unit)
        seconds = min(_timed(scrub, text) for _ in range(3))
        cases[name] = {"ms": round(seconds * 1000, 1), "mb_per_s": round(len(text.encode()) / 1e6 / seconds, 2)}
    worst = max(cases, key=lambda name: cases[name]["ms"])
    chat = [message.text for message in generate_chat(seed=1, messages=20000) if message.text]
    seconds = min(_timed(lambda: [scrub(text) for text in chat]) for _ in range(3))
    size = sum(len(text.encode()) for text in chat)
    return {
        "adversarial_chars": ADVERSARIAL_CHARS,
        "slowest": {"case": worst, **cases[worst]},
        "cases": cases,
        "chat_messages": {"messages": len(chat), "us_per_message": round(seconds / len(chat) * 1e6, 2),
                          "mb_per_s": round(size / 1e6 / seconds, 2)},
    }


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def print_scrub(figures: dict) -> None:
    print(f"\nscrub, one {figures['adversarial_chars']:,}-character adversarial message:")
    for name, fig in figures["cases"].items():
        print(f"  {name:<24} {fig['ms']:>8.1f} ms  {fig['mb_per_s']:>7.2f} MB/s")
    slowest = figures["slowest"]
    print(f"  slowest: {slowest['case']}, {slowest['ms']:.1f} ms")
    chat = figures["chat_messages"]
    print(f"scrub, {chat['messages']} chat messages: {chat['us_per_message']:.2f} µs a message, "
          f"{chat['mb_per_s']:.1f} MB/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50.0, help="total size of generated exports (default: 50)")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--keep", metavar="DIR", help="write the exports here and keep them")
    parser.add_argument("--scrub-only", action="store_true", help="only the scrubber's figures")
    args = parser.parse_args(argv)
    if args.scrub_only:
        figures = scrub_figures()
        if args.json:
            print(json.dumps({"scrub": figures}, indent=2))
        else:
            print_scrub(figures)
        return 0

    root = args.keep or tempfile.mkdtemp(prefix="talklike-bench-import-")
    os.makedirs(root, exist_ok=True)
    try:
        folders = write_exports(root, args.mb)
        figures: dict[str, dict] = {}
        total_bytes = total_seconds = total_floor = 0.0
        total_messages = 0
        for name, folder in folders.items():
            size = folder_bytes(folder)
            floor = decode_floor(folder)
            start = time.perf_counter()
            result = run_import([folder], ImportSettings())
            seconds = time.perf_counter() - start
            failed = [report.path for report in result.files if report.error]
            if failed:
                raise SystemExit(f"benchmark inputs failed to import: {failed[:3]}")
            figures[name] = {
                "mb": round(size / 1e6, 2),
                "messages": len(result.messages),
                "mb_per_s": round(size / 1e6 / seconds, 2),
                "decode_only_mb_per_s": round(size / 1e6 / floor, 2),
                "ratio_to_decode": round(floor / seconds, 3),
            }
            total_bytes += size
            total_seconds += seconds
            total_floor += floor
            total_messages += len(result.messages)
        summary = {
            "mb": round(total_bytes / 1e6, 2),
            "messages": total_messages,
            "seconds": round(total_seconds, 2),
            "mb_per_s": round(total_bytes / 1e6 / total_seconds, 2),
            "ratio_to_decode": round(total_floor / total_seconds, 3),
            "formats": figures,
            "scrub": scrub_figures(),
        }
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for name, fig in figures.items():
                print(f"{name:<10} {fig['mb']:>7.1f} MB  {fig['messages']:>8} msgs  {fig['mb_per_s']:>6.1f} MB/s  "
                      f"(decode only {fig['decode_only_mb_per_s']:.1f} MB/s, ratio {fig['ratio_to_decode']:.2f})")
            print(f"{'total':<10} {summary['mb']:>7.1f} MB  {total_messages:>8} msgs  {summary['mb_per_s']:>6.1f} MB/s  "
                  f"(ratio to decode-only {summary['ratio_to_decode']:.2f})")
            print_scrub(summary["scrub"])
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
