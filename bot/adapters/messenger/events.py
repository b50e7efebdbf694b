"""`Event`: one Messenger webhook event, translated from the platform's JSON into what the bot acts on.

A POST body is `{"object": "page", "entry": [{"id", "time", "messaging": [event, ...]}, ...]}`. Kinds:
`text` (a message with text, maybe from a quick reply: `payload`), `attachment` (a message without text),
`postback` (a button: `payload`), and `ignored` for echoes of the page's own messages, deliveries, reads,
reactions, opt-ins and anything unknown (`what` says which, for the log).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


class BadPayload(ValueError):
    """The body is JSON but not shaped like a Messenger webhook call."""


@dataclass(frozen=True)
class Event:
    kind: str  # text | attachment | postback | ignored
    psid: str  # the user's page-scoped id ("" when the event has no sender)
    what: str  # the event's type, for logs: message, echo, quick_reply, postback, delivery, read, ...
    mid: str | None = None
    text: str = ""
    payload: str | None = None  # quick reply or postback payload
    attachments: tuple[str, ...] = field(default=())  # attachment types: image, audio, video, file, ...
    timestamp: float | None = None  # seconds

    @property
    def conversation(self) -> str:
        return f"messenger:{self.psid}"

    @property
    def dedupe_key(self) -> str | None:
        """The key under which a redelivery of this event is recognised (None: not deduplicated)."""
        if self.kind == "ignored":
            return None
        if self.mid:
            return f"messenger:mid:{self.mid}"
        # postbacks may carry no mid: the sender, the time and the payload identify them
        digest = hashlib.sha256(f"{self.psid}\n{self.timestamp}\n{self.payload}".encode()).hexdigest()[:32]
        return f"messenger:postback:{digest}"


def event_to_bytes(event: Event) -> bytes:
    """The event as kept in the inbox until answered."""
    return json.dumps(asdict(event), ensure_ascii=False).encode("utf-8")


def event_from_bytes(data: bytes) -> Event:
    fields = json.loads(data)
    fields["attachments"] = tuple(fields.get("attachments", ()))
    return Event(**fields)


def parse_events(body: object) -> list[Event]:
    """Every event of a webhook body, in delivery order; BadPayload when it is not a page webhook."""
    if not isinstance(body, dict) or not isinstance(body.get("entry", []), list):
        raise BadPayload("expected an object with an `entry` list")
    events = []
    for entry in body.get("entry", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("messaging", []), list):
            raise BadPayload("every entry must be an object with a `messaging` list")
        for raw in entry.get("messaging", []):
            if not isinstance(raw, dict):
                raise BadPayload("every messaging event must be an object")
            events.append(parse_event(raw))
    return events


def parse_event(raw: dict) -> Event:
    """One `messaging` item."""
    sender = raw.get("sender") if isinstance(raw.get("sender"), dict) else {}
    psid = str(sender.get("id", ""))
    ts = raw.get("timestamp")
    timestamp = ts / 1000 if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
    if not psid:
        return Event("ignored", "", "no_sender")
    message = raw.get("message")
    if isinstance(message, dict):
        mid = _str(message.get("mid"))
        if message.get("is_echo"):
            return Event("ignored", psid, "echo", mid=mid)
        quick = message.get("quick_reply")
        payload = _str(quick.get("payload")) if isinstance(quick, dict) else None
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        if text.strip() or payload:
            return Event("text", psid, "quick_reply" if payload else "message", mid=mid, text=text,
                         payload=payload, timestamp=timestamp)
        attachments = message.get("attachments")
        types = tuple(str(a.get("type", "unknown")) for a in attachments if isinstance(a, dict)) \
            if isinstance(attachments, list) else ()
        if types or message.get("sticker_id"):
            return Event("attachment", psid, "attachment", mid=mid, attachments=types or ("sticker",),
                         timestamp=timestamp)
        return Event("ignored", psid, "empty_message", mid=mid)
    postback = raw.get("postback")
    if isinstance(postback, dict):
        return Event("postback", psid, "postback", mid=_str(postback.get("mid")),
                     payload=_str(postback.get("payload")) or "", text=_str(postback.get("title")) or "",
                     timestamp=timestamp)
    for what in ("delivery", "read", "reaction", "optin", "referral", "account_linking", "policy_enforcement"):
        if what in raw:
            return Event("ignored", psid, what)
    return Event("ignored", psid, "unknown")


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
