"""`Conversations`: the chat protocol over the reply engine, the same on every platform.

The persona of a conversation (chosen, or the default), finding and switching personas, reset, forget,
temperature, the commands and their help, and what the person is told when something fails
(bot/conversation/problems.py). Messenger, Telegram, the console's API and the terminal chat call this and
only parse their input and render the `Said` they get back (quick replies, inline keyboards, HTTP codes).
No adapter reads or writes the conversation store; this layer goes through the engine's API too.

Every method answers with a `Said` and never raises for an expected failure: its `problem` says what went
wrong and its `text` what to tell the person. A bug is logged here, with its traceback and without any
message text, and answered with an apology.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from bot.conversation import commands
from bot.conversation.access import ADMINS_ONLY, WhoMayTalk
from bot.conversation.persona_names import PersonaNames
from bot.conversation.problems import Problem, problem_of
from bot.engine.errors import UnknownConversation
from bot.engine.simulation import next_turn

log = logging.getLogger(__name__)


@dataclass
class Said:
    """What to tell the person: a line, maybe written by the model, maybe offering personas to pick."""

    text: str
    choices: list[str] = field(default_factory=list)  # personas to offer as buttons, most active first
    problem: Problem | None = None  # set when the request could not be done
    by_model: bool = False  # the model wrote `text`, as `persona`
    persona: str | None = None
    existed: bool = True  # reset / forget: there was something stored to act on
    ranking: list[dict] = field(default_factory=list)  # who: {"persona", "bits", "share"}, most likely first
    leave: bool = False  # the person asked to leave (the terminal's /quit)


@dataclass
class ConversationView:
    """What a page shows to restore a conversation: its persona, temperature and last messages."""

    persona: str | None
    temperature: float | None
    messages: list[dict]  # {"author", "text", "ts"}, oldest first


def _answers(method):
    """Expected failures become a `Said` with its problem; a bug is logged and answered with the apology."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs) -> Said:
        try:
            return method(self, *args, **kwargs)
        except Exception as err:
            problem = problem_of(err)
            if not problem.expected:
                log.exception("a conversation request failed", extra={"request": method.__name__})
            elif problem.kind != "invalid":
                log.warning("a conversation request could not be done",
                            extra={"request": method.__name__, "problem": problem.kind, "error": type(err).__name__})
            return Said(problem.text, problem=problem)

    return wrapper


class Conversations:
    """The protocol over one engine. `default_persona` speaks where a conversation chose nobody."""

    def __init__(self, engine, default_persona: str | None = None, *, disclosure: str | None = None,
                 who_may_talk: dict[str, WhoMayTalk] | None = None):
        self.engine = engine
        self.names = PersonaNames(engine)
        self.default_persona = engine.check_persona(default_persona or engine.personas[0])
        self.disclosure = disclosure  # told once per conversation; "{persona}" is the persona's name
        self.who_may_talk = who_may_talk or {}  # per surface; a surface not named lets everyone talk

    # -- personas -----------------------------------------------------------------------------------
    def persona_of(self, key: str) -> str:
        """The conversation's persona if one was chosen (and is still allowed), else the default."""
        chosen, _ = self.engine.chosen(key)
        return chosen if chosen in self.engine.personas else self.default_persona

    def find(self, name: str) -> str | None:
        """The allowed persona called `name` (exact, else ignoring case, else a unique part), or None."""
        return self.names.find(name)

    def available(self, name: str) -> bool:
        """May the conversation speak as exactly `name`? (The same answer for a name the model has and one
        it does not: a stranger must not learn who is in the model.)"""
        return name in self.engine.personas

    @_answers
    def switch(self, key: str, name: str) -> Said:
        """Talk as `name` from now on; a name that fits several personas, or none, offers choices."""
        found = self.names.find(name)
        if found is not None:
            self.engine.configure(key, persona=found)
            return Said(f"Now speaking as {found}.")
        shown = (name.strip() or "nobody")[:40]
        similar = self.names.matching(name)
        if similar:
            return Said(f"Who do you mean by {shown}? {self.names.listing(similar)}", choices=similar)
        return Said(f"I can't be {shown}. {self.names.listing()}", choices=self.names.top(),
                    problem=Problem("invalid", f"no persona {shown!r}"))

    @_answers
    def personas(self, key: str) -> Said:
        """Who the conversation speaks with now, and who else it could (the most active first)."""
        return Said(f"I'm speaking as {self.persona_of(key)}. {self.names.listing()} Who should I be?",
                    choices=self.names.top())

    # -- settings and memory ------------------------------------------------------------------------
    @_answers
    def temperature(self, key: str, value: str | float | None = None) -> Said:
        """Show the conversation's temperature, or set it from `value` (0.7, "0.7" or "0,7")."""
        if value is None or (isinstance(value, str) and not value.strip()):
            _, settings = self.engine.chosen(key)
            current = settings.get("temperature", self.engine.config.settings.temperature)
            return Said(f"Temperature is {current:g} (0 = always the likeliest, up to 5).")
        try:
            number = float(value.strip().replace(",", ".")) if isinstance(value, str) else float(value)
        except ValueError:
            return Said(f"The temperature must be a number, like /temperature 0.7 (got {value.strip()[:20]!r}).",
                        problem=Problem("invalid", "not a number", field="temperature"))
        self.engine.configure(key, temperature=number)
        return Said(f"Temperature set to {number:g}.")

    @_answers
    def reset(self, key: str) -> Said:
        """Start the conversation over; its persona and settings stay."""
        existed = self.engine.reset(key)
        return Said(f"Starting over: I no longer remember what we said. I'm speaking as {self.persona_of(key)}.",
                    existed=existed)

    @_answers
    def forget(self, key: str, sender: str | None = None) -> Said:
        """Delete everything stored about the conversation (memory, persona, settings); with `sender` (the
        person asking, "telegram:42"), also their messages in the transcripts of the platform's other
        conversations (groups), where transcripts are kept."""
        existed = self.engine.forget(key)
        if sender is not None:
            existed = self.engine.forget_sender(sender, prefix=sender.split(":", 1)[0] + ":") > 0 or existed
        return Said("Done: everything stored about this chat is deleted.", existed=existed)

    def forget_all(self, keys: list[str]) -> None:
        """Forget several conversations (a group the bot left, with its topics)."""
        for key in keys:
            self.engine.forget(key)

    def move(self, old: str, new: str) -> None:
        """Carry a conversation over to a new key (a group that became a supergroup)."""
        self.engine.move(old, new)

    @_answers
    def history(self, key: str) -> Said:
        """The last messages of the conversation, one per line."""
        lines = [f"{m['author']}: {m['text']}" for m in self.engine.transcript(key)]
        return Said("\n".join(lines) if lines else "(nothing said yet)")

    def view(self, key: str) -> ConversationView:
        """The conversation as a page restores it (a StoreError goes to the caller)."""
        persona, settings = self.engine.chosen(key)
        return ConversationView(persona, settings.get("temperature"), self.engine.transcript(key))

    # -- talking ------------------------------------------------------------------------------------
    @_answers
    def answer(self, key: str, text: str, author: str | None = None, *, persona: str | None = None,
               settings: dict | None = None, timestamp: float | None = None, seed: int | None = None,
               sender: str | None = None) -> Said:
        """The persona's answer to `text` written by `author` (None: a stranger; `sender`: who it is on the
        platform, so that /forget can find their words)."""
        persona = persona or self.persona_of(key)
        reply = self.engine.reply(key, persona, text, author=author, settings=settings, timestamp=timestamp,
                                  seed=seed, sender=sender)
        return Said(reply, by_model=True, persona=persona)

    @_answers
    def speak(self, key: str, *, persona: str | None = None, seed: int | None = None) -> Said:
        """The conversation's next message by its persona, unasked (/say, chiming in, "@bot" alone)."""
        persona = persona or self.persona_of(key)
        return Said(self.engine.speak(key, persona, seed=seed), by_model=True, persona=persona)

    @_answers
    def simulate(self, key: str, cast: list[str], rng, deadline: float | None = None) -> Said:
        """The next message of a group chat among `cast` that runs itself (the next-speaker head picks who);
        `deadline` (time.monotonic()) bounds all the turns of one request together."""
        speaker, text = next_turn(self.engine, key, cast, rng, deadline)
        return Said(text, by_model=True, persona=speaker)

    @_answers
    def observe(self, key: str, author: str | None, text: str, timestamp: float | None = None,
                sender: str | None = None) -> Said:
        """Read a message into the conversation without answering it (groups)."""
        self.engine.observe(key, author, text, timestamp=timestamp, sender=sender)
        return Said("")

    @_answers
    def who(self, text: str, key: str | None = None, top: int = 5) -> Said:
        """Which personas would most likely have written `text` (after conversation `key`'s last messages)."""
        context = [] if key is None else [(m["author"], m["text"]) for m in self.engine.transcript(key)]
        ranking = self.engine.who(text, context, top=top)
        return Said("\n".join(f"{name}: {share:.0%}" for name, _, share in ranking),
                    ranking=[{"persona": name, "bits": round(bits, 3), "share": round(share, 4)}
                             for name, bits, share in ranking])

    def likely_next(self, key: str, persona: str | None = None) -> float:
        """How likely the model thinks the conversation's persona writes next (0 before any message)."""
        try:
            odds = dict(self.engine.next_speaker(key))
        except UnknownConversation:
            return 0.0
        return odds.get(persona or self.persona_of(key), 0.0)

    # -- who may talk -------------------------------------------------------------------------------
    def admits(self, surface: str, user: object | None, chat: object | None = None, group: bool = False) -> bool:
        """May `user` (in `chat`, a group or not) talk to the bot on `surface`? Asked before anything is kept."""
        return self.who_may_talk.get(surface, WhoMayTalk()).admits(user, chat, group)

    # -- saying it is a bot ---------------------------------------------------------------------------
    def disclosure_for(self, key: str) -> str | None:
        """The line that tells a conversation it talks to a model imitating its persona, the first time it is
        asked for that conversation (None after, or when disclosure is off). It is sent as the bot's own
        line, never given to the model as anyone's words."""
        if not self.disclosure:
            return None
        try:
            if not self.engine.mark_disclosed(key):
                return None
        except Exception as err:  # the store is down: tell them next time rather than hold the reply back
            log.warning("could not note the disclosure", extra={"problem": problem_of(err).kind})
            return None
        return self.disclosure.replace("{persona}", self.persona_of(key))

    # -- commands -----------------------------------------------------------------------------------
    def changes(self, line: str, surface: str) -> bool:
        """Does the command on `line` change the conversation (in groups: for administrators only)?"""
        command = commands.find(line.strip().partition(" ")[0].lstrip("/").partition("@")[0], surface)
        return command is not None and command.changes

    def help(self, surface: str) -> Said:
        return Said(commands.help_text(surface))

    @_answers
    def greet(self, key: str, surface: str) -> Said:
        """Hello, who speaks, and what the bot understands (Get Started, /start)."""
        return Said(f"Hi! I'm speaking as {self.persona_of(key)}.\n\n{commands.help_text(surface)}",
                    choices=self.names.top())

    @_answers
    def greet_group(self, key: str) -> Said:
        """The line a group gets when the bot is added to it."""
        return Said(f"Hi everyone! I'm speaking as {self.persona_of(key)}. Mention me or reply to me and I'll "
                    "answer; /help for more.")

    def command(self, key: str, line: str, surface: str, *, admin: bool = True, sender: str | None = None) -> Said:
        """Run a slash command written on `surface` ("/persona Ada"); an unknown one is explained. `admin`
        False (a group member who is not its administrator) refuses the commands that change it; `sender`
        is who asks (/forget also takes their words out of the platform's other conversations)."""
        word, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        command = commands.find(word.lstrip("/").partition("@")[0], surface)
        if command is None:
            return Said(f"I don't know {word[:40]}. Try /help.", problem=Problem("invalid", "unknown command"))
        if command.changes and not admin:
            return Said(ADMINS_ONLY, problem=Problem("invalid", "administrators only"))
        name = command.name
        if name == "help":
            return self.help(surface)
        if name == "start":
            return self.greet(key, surface)
        if name == "persona":
            return self.switch(key, argument) if argument else self.personas(key)
        if name == "personas":
            return self.personas(key)
        if name == "temperature":
            return self.temperature(key, argument or None)
        if name == "reset":
            return self.reset(key)
        if name == "forget":
            return self.forget(key, sender)
        if name == "history":
            return self.history(key)
        if name == "say":
            return self.speak(key)
        return Said("", leave=True)  # quit
