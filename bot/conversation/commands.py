"""The chat commands every platform understands, and the help text built from them.

One table: a command's name, its argument, what it does, where it exists (`surfaces`), and whether it
changes the conversation (in a group, only administrators may run those). Telegram's command menu, each
platform's /help and the terminal's `--help` are all made from it.
"""

from __future__ import annotations

from dataclasses import dataclass

MESSENGER, TELEGRAM, TERMINAL = "messenger", "telegram", "terminal"
CHATS = frozenset({MESSENGER, TELEGRAM, TERMINAL})


@dataclass(frozen=True)
class Command:
    name: str
    argument: str  # how the argument is written in the help ("" for none)
    summary: str
    surfaces: frozenset[str] = CHATS
    changes: bool = False  # changes the shared conversation: group administrators only
    listed: bool = True  # shown in /help (/start greets; it needs no line of its own)


COMMANDS = [
    Command("start", "", "say hello", frozenset({MESSENGER, TELEGRAM}), listed=False),
    Command("help", "", "what I can do"),
    Command("persona", "NAME", "choose who I speak as (alone: offers the choices)", changes=True),
    Command("personas", "", "list who I can speak as"),
    Command("reset", "", "start our conversation over", changes=True),
    Command("forget", "", "delete everything stored about this chat", changes=True),
    Command("temperature", "[T]", "show or set how adventurous my replies are (0 to 5; default 0.8)", changes=True),
    Command("say", "", "make me say something now", frozenset({TELEGRAM})),
    Command("history", "", "show the last messages", frozenset({TERMINAL})),
    Command("quit", "", "leave the chat", frozenset({TERMINAL})),
]
BY_NAME = {command.name: command for command in COMMANDS}
ALIASES = {"exit": "quit"}

INTRO = {
    MESSENGER: "I write like someone from a chat. Just say something, or:",
    TELEGRAM: "I answer in the style of a person from a chat history.\nIn a private chat I answer every "
              "message. In a group I read along and answer when you @mention me or reply to one of my messages.\n",
    TERMINAL: "Chat with a persona from the terminal. Commands inside the chat:",
}
TERMINAL_SCRIPTED = ("With stdin not a terminal, every input line is one message and every output line one reply\n"
                     "(newlines inside a reply become spaces), so the chat can be scripted.")


def available(surface: str) -> list[Command]:
    """The commands of one surface, in the table's order."""
    return [command for command in COMMANDS if surface in command.surfaces]


def find(name: str, surface: str) -> Command | None:
    """The command `name` (without its slash, any case) if it exists on `surface`."""
    command = BY_NAME.get(ALIASES.get(name.lower(), name.lower()))
    return command if command is not None and surface in command.surfaces else None


def help_text(surface: str) -> str:
    """/help of a surface: its introduction and one line per listed command."""
    lines = [INTRO[surface]]
    for command in available(surface):
        if command.listed:
            usage = f"/{command.name}" + (f" {command.argument}" if command.argument else "")
            lines.append(f"{usage} — {command.summary}")
    if surface == TERMINAL:
        lines.append(TERMINAL_SCRIPTED)
    return "\n".join(lines)


def menu(surface: str) -> list[tuple[str, str]]:
    """(name, summary) of every command of a surface, for a platform's command menu (Telegram's)."""
    return [(command.name, command.summary) for command in available(surface)]
