"""The serving side's terminal commands: `talklike chat`, `talklike sample`, `talklike simulate`.

Handlers import the engine lazily so `talklike --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from talklike.errors import UserError

CHAT_HELP = """\
Chat with a persona from the terminal. Commands inside the chat:
  /persona [NAME]     show the personas, or switch to NAME
  /temperature [T]    show or set the sampling temperature
  /reset              start the conversation over
  /history            show the last messages
  /help, /quit
With stdin not a terminal, every input line is one message and every output line one reply
(newlines inside a reply become spaces), so the chat can be scripted."""


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

    from bot.adapters.messenger import setup_command as messenger_setup
    from bot.adapters.telegram import commands as telegram_commands
    from bot.app import serve_command

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
    from bot.engine.batching import EngineError

    engine = _engine(args, store=args.store)
    with engine:
        session = ChatSession(engine, args.conversation, _check_persona(engine, args.persona), args.author, args.seed)
        interactive = sys.stdin.isatty()
        if interactive:
            try:
                import readline  # noqa: F401  (line editing and ↑ history for input())
            except ImportError:
                pass
            print(f"talking to {session.persona} — /help for commands, /quit or Ctrl-D to leave")
        while True:
            try:
                line = input("you> ") if interactive else sys.stdin.readline()
            except EOFError:
                break
            if not interactive and line == "":
                break  # end of input
            line = line.rstrip("\n")
            try:
                if line.startswith("/"):
                    if not session.command(line, out=sys.stdout if interactive else sys.stderr):
                        break
                    continue
                if not line.strip():
                    if not interactive:
                        print(flush=True)  # keep one output line per input line
                    continue
                reply = session.say(line)
            except (UserError, EngineError) as err:
                print(f"error: {err}", file=sys.stderr if not interactive else sys.stdout, flush=True)
                if not interactive:
                    print(flush=True)
                continue
            if interactive:
                print(f"{session.persona}> {reply}")
            else:
                print(reply.replace("\r", " ").replace("\n", " "), flush=True)
        if interactive:
            print()
    return 0


class ChatSession:
    """The chat's state: persona, who the user writes as, and the slash commands."""

    def __init__(self, engine, conversation: str, persona: str, author: str | None, seed: int | None):
        self.engine, self.conversation, self.persona, self.author = engine, conversation, persona, author
        self.rng = random.Random(seed)

    def say(self, text: str) -> str:
        return self.engine.reply(self.conversation, self.persona, text, author=self.author,
                                 seed=self.rng.randrange(2**31))

    def command(self, line: str, out) -> bool:
        """Run a slash command; False means leave the chat."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            print(CHAT_HELP, file=out)
        elif name == "/persona":
            if arg:
                self.persona = _check_persona(self.engine, arg)
                print(f"now talking to {self.persona}", file=out)
            else:
                print("personas: " + ", ".join(self.engine.personas) + f" (now: {self.persona})", file=out)
        elif name == "/temperature":
            if arg:
                try:
                    value = float(arg)
                except ValueError:
                    raise UserError(f"temperature must be a number, got {arg!r}") from None
                self.engine.configure(self.conversation, temperature=value)
                print(f"temperature {value:g}", file=out)
            else:
                record = self.engine.store.get(self.conversation)
                current = (record.settings if record else {}).get("temperature", self.engine.config.settings.temperature)
                print(f"temperature {current:g}", file=out)
        elif name == "/reset":
            self.engine.reset(self.conversation)
            print("conversation reset", file=out)
        elif name == "/history":
            for m in self.engine.transcript(self.conversation):
                print(f"{m['author']}: {m['text']}", file=out)
        else:
            raise UserError(f"unknown command {name} (try /help)")
        return True


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
