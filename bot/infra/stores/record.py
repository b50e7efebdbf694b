"""`ConversationRecord`: what a store keeps per conversation, and its compact binary form.

Binary layout (version 1): the magic `b"TLK1"`, a little-endian uint32 header length, a UTF-8 JSON
header, then the raw bytes of each array named in the header (`{"name", "dtype", "shape"}`, in order).
Arrays are numpy little-endian float32 (`.tobytes()`), so a record reads back bit for bit and needs no
pickle; the recurrent state of a `small` model (2 layers x 256 x h,c) is 4 KiB.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"TLK1"
_HEADER_LEN = struct.Struct("<I")


class RecordError(ValueError):
    """Stored bytes are not a conversation record (foreign data or truncated)."""


@dataclass
class ConversationRecord:
    """One conversation's memory.

    state: the recurrent state after the last message, float32 (2, L, H) = stacked (h, c), or None for
    a fresh conversation; speaker: next-speaker probabilities (A,) at the last end of message, or None;
    transcript: the last few messages as {"author", "text", "ts"}; speakers: the names of the last few people
    who spoke in it, most recent first (the names expert's; model/names.py); last_timestamp: when the last message
    was folded in (session gaps); messages: how many messages the state has read; disclosed: the people
    in it were told they talk to a model (once per conversation).
    """

    persona: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    state: np.ndarray | None = None
    speaker: np.ndarray | None = None
    transcript: list[dict[str, Any]] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    last_timestamp: float | None = None
    messages: int = 0
    disclosed: bool = False

    def to_bytes(self) -> bytes:
        """The compact binary form (see the module docstring)."""
        arrays = [(name, getattr(self, name)) for name in ("state", "speaker") if getattr(self, name) is not None]
        header = {
            "persona": self.persona,
            "settings": self.settings,
            "transcript": self.transcript,
            "speakers": self.speakers,
            "last_timestamp": self.last_timestamp,
            "messages": self.messages,
            "disclosed": self.disclosed,
            "arrays": [{"name": name, "dtype": "<f4", "shape": list(a.shape)} for name, a in arrays],
        }
        head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        body = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for _, a in arrays)
        return MAGIC + _HEADER_LEN.pack(len(head)) + head + body

    @classmethod
    def from_bytes(cls, data: bytes) -> ConversationRecord:
        """Parse `to_bytes` output; RecordError for anything else."""
        if len(data) < 8 or data[:4] != MAGIC:
            raise RecordError("not a talklike conversation record")
        (n,) = _HEADER_LEN.unpack_from(data, 4)
        try:
            header = json.loads(data[8 : 8 + n].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RecordError(f"conversation record header unreadable: {err}") from err
        offset = 8 + n
        arrays: dict[str, np.ndarray] = {}
        for spec in header.get("arrays", []):
            shape = tuple(int(d) for d in spec["shape"])
            dtype = np.dtype(spec["dtype"])
            size = int(np.prod(shape)) * dtype.itemsize
            if offset + size > len(data):
                raise RecordError("conversation record truncated")
            arrays[spec["name"]] = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(
                shape
            ).astype(np.float32)
            offset += size
        if offset != len(data):
            raise RecordError("conversation record has trailing bytes")
        return cls(
            persona=header.get("persona"),
            settings=dict(header.get("settings") or {}),
            state=arrays.get("state"),
            speaker=arrays.get("speaker"),
            transcript=list(header.get("transcript") or []),
            speakers=[str(s) for s in header.get("speakers") or []],  # records written before it: nobody yet
            last_timestamp=header.get("last_timestamp"),
            messages=int(header.get("messages", 0)),
            disclosed=bool(header.get("disclosed", False)),  # records written before it existed: not yet told
        )
