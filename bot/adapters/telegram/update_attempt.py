"""Which try of a webhook update the handlers are answering, so that one meeting a store outage can ask the
webhook lifecycle (bot/infra/webhook_events.py) for another try instead of telling the chat.

The webhook runner opens `handling(attempt)` around one update's `process_update`; python-telegram-bot
awaits our (blocking) handlers inside it, so they see the same context. In polling mode there is none, and
an outage is told at once.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from bot.conversation import Said
from bot.infra.webhook_events import Attempt, Outcome


@dataclass
class UpdateAttempt:
    attempt: Attempt
    outcome: Outcome = Outcome.DONE


_current: contextvars.ContextVar[UpdateAttempt | None] = contextvars.ContextVar("telegram_update", default=None)


@contextlib.contextmanager
def handling(attempt: Attempt) -> Iterator[UpdateAttempt]:
    """The update being answered in this context; its `outcome` is what the handlers reported."""
    current = UpdateAttempt(attempt)
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)


def wait_for_store(said: Said) -> bool:
    """True (and the update marked for another try) when `said` is a store outage that may wait; the caller
    then says nothing."""
    current = _current.get()
    if said.problem is None or said.problem.kind != "store_down" or current is None:
        return False
    if not current.attempt.may_retry:
        return False
    current.outcome = Outcome.RETRY
    return True
