"""The `talklike` command: one entry point, subcommands registered by each package.

Each package owns its commands (`training.commands`, `bot.app.commands`) and registers them here; handlers
import their heavy modules lazily so `talklike --help` stays instant. This module is the only place that
sees both training and bot, which keeps the rule that `bot/` never imports `training/`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from talklike import __version__
from talklike.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talklike",
        description="Turn chat exports into a bot that answers in a chosen person's style.",
    )
    parser.add_argument("--version", action="version", version=f"talklike {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (may include message text)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from bot.app import commands as bot_commands
    from talklike import info_command
    from training import commands as training_commands

    training_commands.register(sub)
    info_command.register(sub)
    bot_commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except UserError as err:
        print(f"talklike {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
