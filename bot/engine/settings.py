"""`SamplingSettings`: how a reply is sampled (temperature, top-k, top-p, length bounds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from talklike.errors import UserError

MAX_REPLY_CHARS = 4000  # a hard ceiling, whatever a conversation asks for


class SettingsError(UserError):
    """A sampling setting is unknown or out of range."""


@dataclass(frozen=True)
class SamplingSettings:
    """temperature <= 0 means greedy (argmax); top_k 0 means no top-k cut; top_p 1.0 means no nucleus cut.

    A reply has at least `min_chars` characters (the end of message is forbidden before) and at most
    `max_chars` (longer ones are cut at a word boundary).
    """

    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    min_chars: int = 1
    max_chars: int = 300

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "temperature", float(self.temperature))
            object.__setattr__(self, "top_p", float(self.top_p))
            for name in ("top_k", "min_chars", "max_chars"):
                value = getattr(self, name)
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError
                object.__setattr__(self, name, int(value))
        except (TypeError, ValueError):
            raise SettingsError(f"sampling settings must be numbers: {self}") from None
        if not 0.0 <= self.temperature <= 5.0:
            raise SettingsError(f"temperature must be between 0 and 5, got {self.temperature:g}")
        if self.top_k < 0:
            raise SettingsError(f"top_k must be 0 (off) or positive, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise SettingsError(f"top_p must be in (0, 1], got {self.top_p:g}")
        if not 1 <= self.max_chars <= MAX_REPLY_CHARS:
            raise SettingsError(f"max_chars must be between 1 and {MAX_REPLY_CHARS}, got {self.max_chars}")
        if not 0 <= self.min_chars <= self.max_chars:
            raise SettingsError(f"min_chars must be between 0 and max_chars ({self.max_chars}), got {self.min_chars}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingSettings:
        """Settings from a mapping; unknown keys are an error, missing ones take the defaults."""
        return cls().updated(d)

    def updated(self, changes: dict[str, Any] | None = None, **more: Any) -> SamplingSettings:
        """A copy with some settings changed (None values are ignored)."""
        changes = {k: v for k, v in {**(changes or {}), **more}.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise SettingsError(f"unknown sampling setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)
