"""A generated group chat among the demo personas, deterministic for a seed.

The chat has the structure a conversation model can learn from:
- replies: a question is usually answered next (by the person it addressed, when it addressed one), answers
  stay on the question's topic, reactions answer the message before them;
- turn-taking: the next speaker is drawn from per-persona participation rates, rarely the same person twice;
- sessions: bursts of messages seconds to minutes apart, separated by gaps of hours or days.
A few percent of messages are photos (some captioned) or stickers, and a handful carry PII-like strings
(an email, a phone number, a URL) for the importer's scrubbing to catch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from training.demo.personas import PERSONAS, TOPICS, Persona

START = 1546858800  # 2019-01-07 11:00 UTC: the first session starts here
HOUR = 3600
DAY = 24 * HOUR
PHOTO_RATE = 0.06  # of statements and reactions: about 2.5 % of all messages
STICKER_RATE = 0.05


@dataclass(frozen=True)
class DemoMessage:
    """One generated message; `number` is its position in the whole chat, stable across platform splits."""

    author: str
    author_id: str
    timestamp: float  # seconds since the epoch, UTC, whole seconds
    text: str  # may be empty for photos and stickers
    kind: str = "text"  # text, photo or sticker
    number: int = 0
    reply_to: int | None = None  # `number` of the message this one answers
    sticker_emoji: str = ""


@dataclass
class _Turn:
    speaker: Persona
    intent: str
    topic: str
    number: int
    addressee: Persona | None = None
    answers: int = 0  # answers a question has received so far


def _pick(rng: random.Random, exclude: Persona | None = None) -> Persona:
    """A speaker drawn by participation rate, never `exclude`."""
    people = [p for p in PERSONAS if p is not exclude]
    return rng.choices(people, weights=[p.participation for p in people])[0]


def _next_turn(rng: random.Random, prev: _Turn, question: _Turn | None, number: int) -> tuple[_Turn, int | None]:
    """Who speaks next, with what intent, and which message (by number) they answer."""
    if prev.intent in ("question", "ask"):
        if prev.addressee is not None and rng.random() < 0.85:
            speaker = prev.addressee
        else:
            speaker = _pick(rng, exclude=prev.speaker)
        return _Turn(speaker, "answer", prev.topic, number), prev.number
    if prev.intent == "answer" and question is not None and question.answers < 2 and rng.random() < 0.3:
        # A second answer to the same question, from someone other than the asker and the last answerer.
        speaker = _pick(rng, exclude=prev.speaker)
        if speaker is not question.speaker:
            return _Turn(speaker, "answer", question.topic, number), question.number
    if rng.random() < 0.12:
        intent = rng.choices(("statement", "multiline"), weights=(0.8, 0.2))[0]
        return _Turn(prev.speaker, intent, prev.topic, number), None
    speaker = _pick(rng, exclude=prev.speaker)
    intent = rng.choices(("question", "ask", "statement", "reaction", "multiline"),
                         weights=(0.22, 0.12, 0.36, 0.26, 0.04))[0]
    topic = prev.topic if rng.random() < 0.6 else rng.choice(TOPICS)
    turn = _Turn(speaker, intent, topic, number)
    if intent == "ask":
        turn.addressee = _pick(rng, exclude=speaker)
    return turn, prev.number if intent == "reaction" else None


def generate_chat(seed: int = 7, messages: int = 3000) -> list[DemoMessage]:
    """`messages` chat messages in time order; the same seed always gives the same chat."""
    if messages < 0:
        raise ValueError(f"messages must be >= 0, got {messages}")
    rng = random.Random(seed)  # the only source of randomness: no global state
    pii_count = min(messages, max(3, messages // 500))
    # PII goes to the personas in turn, so even a short chat has an email, a phone number and a URL.
    pii_at = {position: k for k, position in enumerate(sorted(rng.sample(range(messages), pii_count)))}
    chat: list[DemoMessage] = []
    clock = START
    session_left = 0
    prev: _Turn | None = None
    question: _Turn | None = None  # the latest question, still collecting answers
    for number in range(messages):
        if session_left == 0 or prev is None:
            if chat:
                clock += int(rng.uniform(3, 20) * HOUR) if rng.random() < 0.65 else int(rng.uniform(1, 4) * DAY)
            session_left = max(3, int(rng.expovariate(1 / 28)))
            intent = "greeting" if rng.random() < 0.5 else "question"
            turn, reply_to = _Turn(_pick(rng), intent, rng.choice(TOPICS), number), None
            question = None
        else:
            turn, reply_to = _next_turn(rng, prev, question, number)
            # Answers come quickly; everything else after a pause of seconds to minutes.
            clock += rng.randint(4, 90) if turn.intent == "answer" else 3 + int(rng.expovariate(1 / 50))
        session_left -= 1
        if number in pii_at:
            k = pii_at[number]
            turn.speaker, turn.intent, reply_to = PERSONAS[k % len(PERSONAS)], "pii", None
        if turn.intent == "answer" and question is not None and reply_to == question.number:
            question.answers += 1
        if turn.intent in ("question", "ask"):
            question = turn
        speaker = turn.speaker
        if turn.intent == "pii":
            text = speaker.pii(pii_at[number] // len(PERSONAS))
        else:
            text = speaker.write(rng, turn.intent, turn.topic, turn.addressee)
        kind, emoji = "text", ""
        if turn.intent in ("statement", "reaction"):
            roll = rng.random()
            if roll < PHOTO_RATE:
                kind = "photo"
                text = text if rng.random() < 0.4 else ""  # some photos carry a caption
            elif roll < PHOTO_RATE + STICKER_RATE:
                kind, text, emoji = "sticker", "", speaker.sticker_emoji
        chat.append(DemoMessage(speaker.name, speaker.user_id, float(clock), text, kind, number, reply_to, emoji))
        prev = turn
    return chat
