"""Which personas the per-persona figures name: the most active ones, and ⟨rest⟩ for everyone else.

A public chat has thousands of speakers; a table (or a JSON object, or a plot) with a line for each is
neither readable nor cheap. Per-persona figures list the `top_personas` most active personas by name (most
training messages first) and pool the other personas into one ⟨rest⟩ line; ⟨other⟩ (people folded at
training) keeps its own line where a figure has one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from model.vocab import AuthorTable
from training.corpus import Message
from training.evaluation.held_out import in_stream

REST = "⟨rest⟩"


@dataclass
class Personas:
    """The model's personas ranked by activity, and the ones figures name."""

    authors: AuthorTable
    train_messages: Counter  # spoken training messages per persona name
    ranked: list[str]  # every persona, most training messages first (ties: the author table's order)
    top: list[str]  # the first `top_personas` of `ranked`
    _named: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._named = set(self.top)

    @classmethod
    def of(cls, authors: AuthorTable, train: list[Message], top_personas: int) -> Personas:
        counts = Counter(m.author for m in train if in_stream(m) and authors.id_of(m.author) != 0)
        order = {name: i for i, name in enumerate(authors.personas)}
        ranked = sorted(authors.personas, key=lambda name: (-counts[name], order[name]))
        return cls(authors, counts, ranked, ranked[: max(0, top_personas)])

    def label(self, name: str) -> str:
        """The line a persona's figures go to: its own name among the top ones, else ⟨rest⟩; ⟨other⟩ stays."""
        if name == AuthorTable.OTHER or name in self._named:
            return name
        return REST

    def with_messages(self, minimum: int) -> list[str]:
        """Personas with at least `minimum` training messages, most active first."""
        return [name for name in self.ranked if self.train_messages[name] >= minimum]
