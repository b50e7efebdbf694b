"""The serving commands: `talklike chat`, `sample`, `simulate`, and the registration of `who`, `serve`,
`telegram`, `telegram-setup` and `messenger-setup`.

Handlers import the engine lazily so `talklike --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import random

from bot.conversation.commands import TERMINAL, help_text
from talklike.errors import UserError

CHAT_HELP = help_text(TERMINAL)


def register(subparsers) -> None:
    chat = subparsers.add_parser("chat", help="chat with a persona in the terminal", description=CHAT_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_arguments(chat)
    chat.add_argument("--persona", required=True, metavar="NAME", help="who answers")
    chat.add_argument("--as", dest="author", metavar="AUTHOR",
                      help="write as this author of the model (default: a stranger, ⟨other⟩)")
    chat.add_argument("--store", default="memory://", metavar="URL",
                      help="keep the conversation here, e.g. sqlite:///chat.db to resume later (default: %(default)s)")
    chat.add_argument("--conversation", default="cli:chat", metavar="KEY", help="conversation key (default: %(default)s)")
    chat.add_argument("--seed", type=int, help="random seed (replies are reproducible)")
    chat.set_defaults(handler=chat_command)

    sample = subparsers.add_parser("sample", help="print messages a persona would write",
                                   description="Sample messages a persona would write to open a conversation.")
    _model_arguments(sample)
    sample.add_argument("--persona", required=True, metavar="NAME", help="who writes")
    sample.add_argument("-n", type=int, default=5, help="number of samples (default: %(default)s)")
    sample.add_argument("--prime", default="", metavar="TEXT", help="every sample starts with this text")
    sample.add_argument("--seed", type=int, help="random seed (sample i uses seed + i)")
    sample.add_argument("--json", action="store_true", help='print {"persona": NAME, "samples": [...]}')
    sample.set_defaults(handler=sample_command)

    simulate = subparsers.add_parser(
        "simulate", help="let the personas talk to each other",
        description="A group chat that runs itself: the next-speaker head picks who writes each message.")
    _model_arguments(simulate)
    simulate.add_argument("--personas", metavar="A,B,C", help="who takes part (default: every persona)")
    simulate.add_argument("--turns", type=int, default=10, help="number of messages (default: %(default)s)")
    simulate.add_argument("--seed", type=int, help="random seed")
    simulate.add_argument("--store", default="memory://", metavar="URL", help="conversation store (default: %(default)s)")
    simulate.add_argument("--conversation", default="cli:simulate", metavar="KEY",
                          help="conversation key (default: %(default)s)")
    simulate.set_defaults(handler=simulate_command)

    from bot.app import messenger_setup, serve_command, telegram_commands, who_command

    who_command.register(subparsers)
    serve_command.register(subparsers)
    messenger_setup.register(subparsers)
    telegram_commands.register(subparsers)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by `talklike export`")
    group = parser.add_argument_group("sampling")
    group.add_argument("--temperature", type=float, help="randomness; 0 = always the likeliest character (default 0.8)")
    group.add_argument("--top-k", type=int, help="sample among the k likeliest characters (0 = all)")
    group.add_argument("--top-p", type=float, help="sample among the likeliest characters covering this probability")
    group.add_argument("--min-chars", type=int, help="shortest reply")
    group.add_argument("--max-chars", type=int, help="longest reply (cut at a word boundary)")
    group.add_argument("--no-guard", action="store_true", help="allow verbatim repeats of long training messages")
    group.add_argument("--threads", type=int, help="CPU threads for the model (default: torch's choice)")


def _engine(args, personas: list[str] | None = None, store: str = "memory://"):
    from bot.engine.engine import Engine, EngineConfig
    from bot.engine.settings import SamplingSettings

    settings = SamplingSettings().updated(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                          min_chars=args.min_chars, max_chars=args.max_chars)
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    config = EngineConfig(personas=personas, store_url=store, settings=settings, guard=not args.no_guard,
                          num_threads=args.threads)
    return Engine(args.model, config)


def _check_persona(engine, name: str) -> str:
    return engine.check_persona(name)


# --- chat --------------------------------------------------------------------------------------------
def chat_command(args) -> int:
    """Interactive chat, or one reply per input line when stdin is not a terminal."""
    from bot.adapters import terminal
    from bot.conversation import Conversations

    with _engine(args, store=args.store) as engine:
        conversations = Conversations(engine, default_persona=_check_persona(engine, args.persona))
        engine.configure(args.conversation, persona=args.persona)  # also over a conversation resumed from a store
        terminal.run(terminal.TerminalChat(conversations, args.conversation, args.author, args.seed))
    return 0


# --- sample, simulate --------------------------------------------------------------------------------
def sample_command(args) -> int:
    """Print `-n` samples of the persona, as text or JSON."""
    if args.n < 1:
        raise UserError("-n must be at least 1")
    with _engine(args) as engine:
        samples = engine.sample(_check_persona(engine, args.persona), n=args.n, prime=args.prime, seed=args.seed)
    if args.json:
        print(json.dumps({"persona": args.persona, "samples": samples}, ensure_ascii=False))
    else:
        for text in samples:
            print(text)
    return 0


def simulate_command(args) -> int:
    """Run a group chat among the personas for `--turns` messages."""
    if args.turns < 1:
        raise UserError("--turns must be at least 1")
    personas = None
    if args.personas is not None:
        personas = [p.strip() for p in args.personas.split(",") if p.strip()]
        if not personas:
            raise UserError("--personas needs at least one name, e.g. --personas Alice,Bob")
    from bot.engine.simulation import next_turn

    with _engine(args, personas=personas, store=args.store) as engine:
        rng = random.Random(args.seed)
        for _ in range(args.turns):
            speaker, text = next_turn(engine, args.conversation, engine.personas, rng)
            print(f"{speaker}: {text}", flush=True)
    return 0
