"""Characters and authors as ids: the two tables that travel with every checkpoint and artifact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


class Vocabulary:
    """Character vocabulary: special tokens first, then Unicode code points exactly as written.

    Nothing is lowercased, stripped or transliterated: an emoji or a capital letter is part of a style.
    """

    PAD, BOS, EOS, SESSION, UNK = 0, 1, 2, 3, 4
    SPECIALS = ("⟨pad⟩", "⟨bos⟩", "⟨eos⟩", "⟨session⟩", "⟨unk⟩")

    def __init__(self, chars: Iterable[str]):
        self.chars: list[str] = list(chars)
        for ch in self.chars:
            if len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("vocabulary has duplicate characters")
        first = len(self.SPECIALS)
        self._index = {ch: first + i for i, ch in enumerate(self.chars)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Every character seen at least `min_count` times; order is by code point, so builds are stable."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        return cls(sorted(ch for ch, n in counts.items() if n >= min_count))

    def __len__(self) -> int:
        return len(self.SPECIALS) + len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `text`; a character outside the vocabulary becomes UNK."""
        index, unk = self._index, self.UNK
        return [index.get(ch, unk) for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; special tokens are dropped."""
        first, chars = len(self.SPECIALS), self.chars
        return "".join(chars[i - first] for i in ids if first <= i < first + len(chars))

    def token(self, i: int) -> str:
        """A printable name for one id (specials as ⟨name⟩), for debugging and previews."""
        return self.SPECIALS[i] if i < len(self.SPECIALS) else self.chars[i - len(self.SPECIALS)]

    def to_dict(self) -> dict:
        return {"specials": list(self.SPECIALS), "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Vocabulary:
        if list(d.get("specials", [])) != list(cls.SPECIALS):
            raise ValueError("vocabulary uses different special tokens")
        return cls(list(d["chars"]))


class AuthorTable:
    """Author names as ids; index 0 is ⟨other⟩, the author for rare and unknown people."""

    OTHER = "⟨other⟩"

    def __init__(self, names: Iterable[str]):
        names = list(names)
        if not names or names[0] != self.OTHER:
            names = [self.OTHER, *[n for n in names if n != self.OTHER]]
        if len(set(names)) != len(names):
            raise ValueError("author table has duplicate names")
        self.names: list[str] = names
        self._index = {name: i for i, name in enumerate(names)}

    @classmethod
    def build(cls, message_counts: Mapping[str, int], min_messages: int) -> AuthorTable:
        """Authors with at least `min_messages` messages, most active first; the rest fold into ⟨other⟩."""
        kept = [name for name, n in message_counts.items() if n >= min_messages and name != cls.OTHER]
        kept.sort(key=lambda name: (-message_counts[name], name))
        return cls([cls.OTHER, *kept])

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AuthorTable) and self.names == other.names

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def id_of(self, name: str) -> int:
        """The id of `name`; anyone not in the table is ⟨other⟩ (0)."""
        return self._index.get(name, 0)

    def name_of(self, author_id: int) -> str:
        return self.names[author_id]

    @property
    def personas(self) -> list[str]:
        """Every named author (all but ⟨other⟩)."""
        return self.names[1:]

    def to_dict(self) -> dict:
        return {"names": list(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping) -> AuthorTable:
        names = list(d["names"])
        if not names or names[0] != cls.OTHER:
            raise ValueError("author table must start with ⟨other⟩")
        return cls(names)
