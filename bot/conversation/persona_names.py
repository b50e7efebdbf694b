"""`PersonaNames`: the personas a conversation may choose, found by name and listed, even by the thousand.

A model of a big public chat has thousands of personas, so lists show the most active ones (by their
training messages, from the model card) and a name can be found by any unique part of it.
"""

from __future__ import annotations

LISTED = 20  # names a text lists before "and N more"
OFFERED = 13  # personas offered as buttons (Messenger shows at most 13 quick replies)
SIMILAR = 10  # candidates offered for a name that fits several


class PersonaNames:
    def __init__(self, engine):
        self.engine = engine

    @property
    def all(self) -> list[str]:
        """Every allowed persona, in the model's order."""
        return self.engine.personas

    def ranked(self) -> list[str]:
        """Every allowed persona, the most active first (ties in the model's order)."""
        return sorted(self.all, key=lambda name: -self.messages_of(name))

    def top(self, count: int = OFFERED) -> list[str]:
        return self.ranked()[:count]

    def messages_of(self, name: str) -> int:
        """Training messages of a persona (0 when the model card does not say)."""
        stats = ((self.engine.artifact.card or {}).get("authors") or {}).get(name) or {}
        return int(stats.get("messages") or 0)

    def find(self, name: str) -> str | None:
        """The persona called `name`: exactly, else ignoring case, else the only one whose name contains it."""
        if name in self.all:
            return name
        wanted = name.strip().casefold()
        if not wanted:
            return None
        for persona in self.all:
            if persona.casefold() == wanted:
                return persona
        similar = self.matching(name, limit=2)
        return similar[0] if len(similar) == 1 else None

    def matching(self, name: str, limit: int = SIMILAR) -> list[str]:
        """Personas whose name contains `name` (ignoring case), the most active first."""
        wanted = name.strip().casefold()
        if not wanted:
            return []
        return [p for p in self.ranked() if wanted in p.casefold()][:limit]

    def listing(self, names: list[str] | None = None) -> str:
        """ "I can be: A, B and C." for a few names; the most active and a count for many."""
        names = self.ranked() if names is None else names
        if len(names) <= LISTED:
            return f"I can be: {', '.join(names)}."
        return (f"I can be: {', '.join(names[:LISTED])} and {len(names) - LISTED} more "
                "(/persona NAME finds anyone, by any part of the name).")
