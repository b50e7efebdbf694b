"""The terminal chat (`talklike chat`): lines typed in, the conversation layer's answers printed.

Interactive on a terminal (a prompt, line editing); scripted otherwise: every input line is one message and
every output line one reply (newlines inside a reply become spaces), and everything else — command
answers, errors — goes to stderr, so a script reads exactly one line per line it wrote.
"""

from __future__ import annotations

import random
import sys

from bot.conversation import Conversations, Said
from bot.conversation.commands import TERMINAL


class TerminalChat:
    """One terminal conversation: who the user writes as, and a seeded stream of replies."""

    def __init__(self, conversations: Conversations, key: str, author: str | None, seed: int | None):
        self.conversations, self.key, self.author = conversations, key, author
        self.rng = random.Random(seed)

    @property
    def persona(self) -> str:
        return self.conversations.persona_of(self.key)

    def say(self, text: str) -> Said:
        return self.conversations.answer(self.key, text, self.author, seed=self.rng.randrange(2**31))

    def command(self, line: str) -> Said:
        return self.conversations.command(self.key, line, TERMINAL)


def run(chat: TerminalChat, stdin=None, stdout=None, stderr=None) -> None:
    """Read lines until end of input or /quit, answering each."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and ↑ history for input())
        except ImportError:
            pass
        print(f"talking to {chat.persona} — /help for commands, /quit or Ctrl-D to leave", file=stdout)
    notes = stdout if interactive else stderr  # what is not a reply
    while True:
        try:
            line = input("you> ") if interactive else stdin.readline()
        except EOFError:
            break
        if not interactive and line == "":
            break  # end of input
        line = line.rstrip("\n")
        if not line.strip():
            if not interactive:
                print(file=stdout, flush=True)  # keep one output line per input line
            continue
        said = chat.command(line) if line.startswith("/") else chat.say(line)
        if said.leave:
            break
        if said.by_model:
            print(f"{chat.persona}> {said.text}" if interactive else said.text.replace("\r", " ").replace("\n", " "),
                  file=stdout, flush=True)
            continue
        print(said.text if said.problem is None else f"error: {said.text}", file=notes, flush=True)
        if said.problem is not None and not interactive:
            print(file=stdout, flush=True)  # a failed line still gets its (empty) output line
    if interactive:
        print(file=stdout)
