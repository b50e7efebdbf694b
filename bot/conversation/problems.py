"""What the person chatting is told when a reply cannot be made: one mapping from every failure of the
engine and its store to a kind of problem and a line, for every surface.

Messenger and Telegram send the line; the console answers with the kind's HTTP status and the line; the
terminal prints it. A failure that is nobody's fault but ours ("bug") is logged by the caller with its
traceback; the person only gets the apology. Error texts of the store (which may name its URL) never reach a
person: the line is fixed per kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.errors import (
    EmptyMessage,
    EngineBusy,
    EngineError,
    EngineStopped,
    EngineTimeout,
    UnknownPersona,
)
from bot.infra.stores import LockTimeout, StoreError, StoreUnavailable
from talklike.errors import UserError

RETRY_AFTER_S = 2  # what a busy engine asks a client to wait

BUSY = "I'm busy right now; try again in a moment."
APOLOGY = "Sorry, something went wrong on my side. It has been logged."
CONVERSATION_BUSY = "This conversation is still busy with an earlier reply; try again shortly."
STORE_DOWN = "I can't reach my memory right now (the conversation store is unavailable); try again shortly."
STOPPED = "The reply engine is not running; try again later."


@dataclass(frozen=True)
class Problem:
    kind: str  # invalid | busy | slow | conversation_busy | store_down | stopped | bug
    text: str  # what the person is told
    field: str | None = None  # the request field at fault (invalid input)

    @property
    def status(self) -> int:
        """The HTTP status of this kind of problem (the console's API)."""
        return {"invalid": 400, "slow": 504, "bug": 500}.get(self.kind, 503)

    @property
    def retry_after(self) -> int | None:
        """Seconds a client should wait before asking again, where waiting helps."""
        return RETRY_AFTER_S if self.kind in ("busy", "conversation_busy", "store_down") else None

    @property
    def expected(self) -> bool:
        """False for a bug: the caller logs it with its traceback."""
        return self.kind != "bug"


def problem_of(err: BaseException) -> Problem:
    """The problem `err` means for the person chatting."""
    if isinstance(err, StoreUnavailable):  # also a UserError: checked first
        return Problem("store_down", STORE_DOWN)
    if isinstance(err, LockTimeout):
        return Problem("conversation_busy", CONVERSATION_BUSY)
    if isinstance(err, StoreError):  # an unreadable record, a store that failed mid-write
        return Problem("store_down", STORE_DOWN)
    if isinstance(err, EmptyMessage):
        return Problem("invalid", str(err), field="message")
    if isinstance(err, UnknownPersona):
        return Problem("invalid", str(err), field="persona")
    if isinstance(err, UserError):
        return Problem("invalid", str(err))
    if isinstance(err, EngineBusy):
        return Problem("busy", BUSY)
    if isinstance(err, EngineTimeout):
        return Problem("slow", f"That took me too long ({err}); try again, or ask for a shorter reply.")
    if isinstance(err, (EngineStopped, EngineError)):
        return Problem("stopped", STOPPED)
    return Problem("bug", APOLOGY)
