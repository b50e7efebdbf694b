"""Write the demo exports: one generated group chat, its older part as a Facebook Messenger download and
the rest as a Telegram Desktop full-account export (the same people on both platforms).

    python -m training.demo.generate --out demo/exports [--seed 7] [--messages 3000]
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from training.demo.chat import DemoMessage, generate_chat
from training.demo.writers import write_messenger_export, write_telegram_export

MESSENGER_SHARE = 0.4  # the oldest 40 % of the chat happened on Messenger, the rest on Telegram


def generate_demo_exports(out_dir: str | os.PathLike, seed: int = 7, messages: int = 3000) -> dict[str, Path]:
    """Write `out_dir/messenger/` (unzipped Facebook tree) and `out_dir/telegram/result.json`.

    Returns {"messenger": thread folder, "telegram": result.json path}.
    """
    return _write(generate_chat(seed=seed, messages=messages), Path(out_dir))


def _write(chat: list[DemoMessage], out: Path) -> dict[str, Path]:
    cut = int(len(chat) * MESSENGER_SHARE)
    return {
        "messenger": write_messenger_export(chat[:cut], out / "messenger"),
        "telegram": write_telegram_export(chat[cut:], out / "telegram"),
    }


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m training.demo.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the exports into")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--messages", type=int, default=3000, help="messages in the whole chat (default: 3000)")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")

    chat = generate_chat(seed=args.seed, messages=args.messages)
    cut = int(len(chat) * MESSENGER_SHARE)
    paths = _write(chat, Path(args.out))
    for platform, part in (("messenger", chat[:cut]), ("telegram", chat[cut:])):
        path = paths[platform]
        files = sum(1 for _ in path.glob("message_*.json")) if path.is_dir() else 1
        print(f"{platform:<9} {len(part):>6} messages  {files:>3} file(s)  {_size(path) / 1e6:7.2f} MB  {path}")
    authors = Counter(message.author for message in chat)
    print("authors   " + ", ".join(f"{name} {count}" for name, count in authors.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
