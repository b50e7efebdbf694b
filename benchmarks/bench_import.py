"""Import speed: generate ≥ 50 MB of real-format exports, import them, print MB/s.

Also prints, from the same run on the same machine, the speed of merely decoding the same bytes
(json.loads for JSON, splitting lines for text) so the figure can be read as a ratio: how close the
importer runs to the cost of reading its input at all.

    python benchmarks/bench_import.py [--mb 50] [--json] [--keep DIR]
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50.0, help="total size of generated exports (default: 50)")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--keep", metavar="DIR", help="write the exports here and keep them")
    args = parser.parse_args(argv)

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
        }
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for name, fig in figures.items():
                print(f"{name:<10} {fig['mb']:>7.1f} MB  {fig['messages']:>8} msgs  {fig['mb_per_s']:>6.1f} MB/s  "
                      f"(decode only {fig['decode_only_mb_per_s']:.1f} MB/s, ratio {fig['ratio_to_decode']:.2f})")
            print(f"{'total':<10} {summary['mb']:>7.1f} MB  {total_messages:>8} msgs  {summary['mb_per_s']:>6.1f} MB/s  "
                  f"(ratio to decode-only {summary['ratio_to_decode']:.2f})")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
