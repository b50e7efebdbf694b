"""A group chat that runs itself: the next-speaker head picks who writes, the engine writes it.

Shared by `talklike simulate` and the console's simulate mode.
"""

from __future__ import annotations

import random

from bot.engine.errors import UnknownConversation, UnknownPersona


def next_turn(engine, conversation: str, personas: list[str], rng: random.Random,
              deadline: float | None = None) -> tuple[str, str]:
    """(speaker, text) of the conversation's next message among `personas`; `deadline` as `Engine.reply`'s."""
    if not personas:
        raise UnknownPersona("a simulation needs at least one persona")
    for name in personas:
        engine.check_persona(name)
    try:
        probs = dict(engine.next_speaker(conversation))
        weights = [probs.get(p, 0.0) for p in personas]
    except UnknownConversation:
        # Before anyone spoke: weight the opener by how much each persona wrote in the training data.
        card = engine.artifact.card.get("authors", {})
        weights = [float(card.get(p, {}).get("messages", 1) or 1) for p in personas]
    if sum(weights) <= 0:
        weights = [1.0] * len(personas)
    speaker = rng.choices(personas, weights=weights)[0]
    return speaker, engine.speak(conversation, speaker, seed=rng.randrange(2**31), deadline=deadline)
