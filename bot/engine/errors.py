"""What can go wrong in the reply engine. The conversation layer (bot/conversation/problems.py) decides what
each one means for the person chatting."""

from __future__ import annotations

from talklike.errors import UserError


class EngineError(Exception):
    """The engine could not produce a reply (busy, timed out, stopped)."""


class EngineBusy(EngineError):
    """Too many requests are waiting; try again shortly."""


class EngineTimeout(EngineError):
    """A request took longer than its timeout."""


class EngineStopped(EngineError):
    """The engine was closed."""


class UnknownPersona(UserError):
    """The persona is not in the model, or not on the allowlist."""


class EmptyMessage(UserError):
    """A message to answer has no text."""


class UnknownConversation(UserError):
    """The conversation has no stored state (never seen, or forgotten)."""
