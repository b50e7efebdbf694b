"""`talklike who MODEL "message" [--context FILE]`: which personas would most likely have written a message.

The model scores the message under every persona, after the conversation given with --context (a text file,
one message per line as `Name: text`; a line without a known name reads as a stranger), and ranks them by
the bits it costs (fewest first) with each one's share of the probability.
"""

from __future__ import annotations

import argparse
import json
import sys

from talklike.errors import UserError

MAX_CONTEXT_MESSAGES = 64


def register(subparsers) -> None:
    who = subparsers.add_parser("who", help="rank the personas by how likely each wrote a message",
                                description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    who.add_argument("model", help="model file written by `talklike export`")
    who.add_argument("message", help="the message to attribute ('-' reads it from stdin)")
    who.add_argument("--context", metavar="FILE", help="the conversation before it: one `Name: text` per line")
    who.add_argument("--top", type=int, default=5, help="how many personas to show (default: %(default)s)")
    who.add_argument("--personas", metavar="A,B", help="only these personas are candidates")
    who.add_argument("--text-only", action="store_true",
                     help="rank by the message alone, without who the model expects to speak next")
    who.add_argument("--json", action="store_true", help='print {"ranking": [{"persona", "bits", "share"}, ...]}')
    who.set_defaults(handler=who_command)


def read_context(path: str, known: set[str]) -> list[tuple[str | None, str]]:
    """(author, text) pairs from a `Name: text` file (the last MAX_CONTEXT_MESSAGES of it)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.rstrip("\n") for line in handle if line.strip()]
    except OSError as err:
        raise UserError(f"{path}: cannot read the context ({err.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: the context is not UTF-8 text") from None
    context = []
    for line in lines[-MAX_CONTEXT_MESSAGES:]:
        name, sep, text = line.partition(":")
        if sep and name.strip() in known:
            context.append((name.strip(), text.strip()))
        else:
            context.append((None, line.strip()))
    return context


def who_command(args) -> int:
    from bot.engine.engine import Engine, EngineConfig

    if args.top < 1:
        raise UserError("--top must be at least 1")
    message = sys.stdin.read().strip() if args.message == "-" else args.message
    personas = [p.strip() for p in args.personas.split(",") if p.strip()] if args.personas else None
    with Engine(args.model, EngineConfig(personas=personas)) as engine:
        context = read_context(args.context, set(engine.authors.personas)) if args.context else []
        ranking = engine.who(message, context, top=args.top, with_turns=not args.text_only)
    if args.json:
        print(json.dumps({"ranking": [{"persona": p, "bits": round(b, 3), "share": round(s, 4)}
                                      for p, b, s in ranking]}, ensure_ascii=False))
        return 0
    width = max(len(p) for p, _, _ in ranking)
    for persona, bits, share in ranking:
        print(f"{persona:<{width}}  {share:6.1%}  {bits:7.1f} bits")
    return 0
