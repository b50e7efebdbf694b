"""The five demo personas: distinct, machine-checkable writing styles a small char-LSTM can learn.

Each persona writes from templates and small vocabularies, and has a `markers(text)` test chosen so that its
own messages pass it almost always and everyone else's almost never (tests/test_demo_data.py measures this):

- Ada: all lowercase, no final punctuation, short, says "lol" / "ok" / "yeah".
- Boris: WRITES IN CAPITALS WITH "!!!".
- Chloé: French ("ça", "merci", "oui", "c'est"), proper casing, ends with "." (questions with " ?").
- Dmitri: long, formal sentences with commas and semicolons; never an emoji.
- Emma: emoji in every message (ZWJ sequences too) and "!!".
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

TOPICS = ("pizza", "movie", "match", "weekend", "bug", "concert", "rain", "trip", "book", "coffee")
INTENTS = ("greeting", "question", "ask", "answer", "statement", "reaction", "multiline", "pii")

# Emma's emoji: plain ones, a ZWJ sequence (woman technologist), a ZWJ + variation selector sequence
# (woman shrugging) and a skin-tone modifier, so tokenizers and mojibake repair meet real grapheme clusters.
EMMA_EMOJI = ("😂", "🔥", "✨", "🙌", "💖", "🎉", "😍", "🥳", "👩\u200d💻", "🤷\u200d♀️", "👍🏽")

_ADA_WORDS = re.compile(r"\b(?:lol|ok|yeah|idk|tbh|omw|brb|ya)\b")
_FRENCH_WORDS = re.compile(
    r"(?<!\w)(?:ça|merci|oui|c'est|très|bisous|je|tu|nous|vous|avec|pour|d'accord|j'adore)(?!\w)", re.IGNORECASE
)


def _ada_marker(text: str) -> bool:
    return not any(char.isupper() for char in text) and _ADA_WORDS.search(text) is not None


def _boris_marker(text: str) -> bool:
    letters = [char for char in text if char.isalpha()]
    return len(letters) >= 3 and sum(char.isupper() for char in letters) >= 0.7 * len(letters)


def _chloe_marker(text: str) -> bool:
    return _FRENCH_WORDS.search(text) is not None


def _dmitri_marker(text: str) -> bool:
    return len(text) >= 40 and (";" in text or "," in text)


def _emma_marker(text: str) -> bool:
    return any(emoji in text for emoji in EMMA_EMOJI)


@dataclass(frozen=True, eq=False)  # identity equality: personas are singletons, usable as dict keys
class Persona:
    """One demo speaker: identity, how often they talk, how they write, and how to recognise their writing."""

    name: str  # display name, as the exports show it
    user_id: str  # Telegram `from_id`
    username: str  # ASCII handle others use in @mentions
    participation: float  # relative weight of being the next speaker
    style: str  # one line for humans
    vocab: dict[str, str]  # topic -> how this persona names it
    templates: dict[str, tuple[str, ...]]  # intent -> templates: {t} topic, {who} addressee, {e} emoji, fillers
    sticker_emoji: str
    marker: Callable[[str], bool] = field(repr=False)
    fillers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # {name} slots templates may use
    shouts_names: bool = False  # Boris addresses people by their name in capitals instead of an @mention

    def markers(self, text: str) -> bool:
        """True when `text` shows this persona's style."""
        return self.marker(text)

    def mention(self, other: Persona) -> str:
        """How this persona addresses `other` at the start of a message."""
        return other.name.upper() if self.shouts_names else "@" + other.username

    def write(self, rng: random.Random, intent: str, topic: str, addressee: Persona | None = None) -> str:
        """One message of the given intent about `topic`, drawn with `rng` (never the global random state)."""
        if intent == "ask" and addressee is None:
            intent = "question"
        template = rng.choice(self.templates[intent])
        emoji = "".join(rng.choice(EMMA_EMOJI) for _ in range(rng.randint(1, 3))) if "{e}" in template else ""
        who = self.mention(addressee) if addressee is not None else ""
        slots = {name: rng.choice(options) for name, options in self.fillers.items() if "{" + name + "}" in template}
        return template.format(t=self.vocab[topic], who=who, e=emoji, **slots)

    def pii(self, index: int) -> str:
        """This persona's `index`-th message carrying an email, phone number or URL (cycles through them)."""
        templates = self.templates["pii"]
        return templates[index % len(templates)].format(t="", who="", e=EMMA_EMOJI[3])


ADA = Persona(
    name="Ada",
    user_id="user1001",
    username="ada",
    participation=0.30,
    style="all lowercase, no final punctuation, short; lol / ok / yeah",
    vocab={"pizza": "pizza", "movie": "the movie", "match": "the match", "weekend": "the weekend", "bug": "that bug",
           "concert": "the gig", "rain": "the rain", "trip": "the trip", "book": "that book", "coffee": "coffee"},
    templates={
        "greeting": ("hey all lol", "yo ok whats up", "ok who is awake", "morning lol", "hiii ok im back"),
        "question": ("ok who wants {t} tonight", "anyone up for {t} lol", "wait is {t} still on yeah",
                     "so are we doing {t} or not idk", "ok what time is {t}"),
        "ask": ("{who} u coming to {t} or what lol", "{who} ok did u see {t}", "{who} yeah so {t} tomorrow"),
        "answer": ("yeah ok {t} sounds good", "lol yeah", "ok im in", "idk maybe later", "yeah {t} works for me",
                   "nah not today tbh", "ok omw", "ya sure lol"),
        "statement": ("lol {t} was so good", "tbh {t} is overrated", "ok {t} is happening", "yeah i miss {t}",
                      "idk about {t} tbh", "brb getting coffee lol"),
        "reaction": ("lol", "ok", "yeah", "lol ok", "ok ok", "idk lol", "yeah true"),
        "multiline": ("ok so\n{t}\nthen sleep lol", "wait\nyeah ok {t}"),
        "pii": ("ok my email is ada.lovelace@example.com", "yeah the link is https://example.org/x lol"),
    },
    sticker_emoji="👍",
    marker=_ada_marker,
)

BORIS = Persona(
    name="Boris",
    user_id="user1002",
    username="boris",
    participation=0.15,
    style="WRITES IN CAPITALS WITH !!!",
    vocab={"pizza": "PIZZA", "movie": "THE MOVIE", "match": "THE MATCH", "weekend": "THE WEEKEND", "bug": "THE BUG",
           "concert": "THE CONCERT", "rain": "THE RAIN", "trip": "THE TRIP", "book": "THE BOOK", "coffee": "COFFEE"},
    templates={
        "greeting": ("HELLO EVERYBODY!!!", "GOOD MORNING FRIENDS!!!", "I AM BACK!!!", "WHO IS HERE???"),
        "question": ("WHO IS COMING TO {t}???", "WHEN IS {t}???", "DID ANYBODY SEE {t}???", "WHAT ABOUT {t} TONIGHT???"),
        "ask": ("{who} ARE YOU COMING TO {t}???", "{who} DID YOU SEE {t}???"),
        "answer": ("YES!!! {t} IS GREAT!!!", "NO WAY!!!", "OF COURSE!!!", "ABSOLUTELY!!!", "I AM IN!!!",
                   "NOT TODAY MY FRIEND!!!"),
        "statement": ("I LOVE {t}!!!", "{t} WAS AMAZING!!!", "BEST DAY EVER!!!", "{t} IS THE BEST THING IN THE WORLD!!!",
                      "I NEED {t} RIGHT NOW!!!"),
        "reaction": ("HAHAHA!!!", "YES!!!", "WOW!!!", "NOOO!!!", "TRUE!!!"),
        "multiline": ("LISTEN!!!\n{t} TONIGHT!!!", "BIG NEWS!!!\nI BOUGHT TICKETS FOR {t}!!!"),
        "pii": ("CALL ME AT +44 20 7946 0958!!!", "MY NEW NUMBER IS +44 20 7946 0958!!!"),
    },
    sticker_emoji="💪",
    marker=_boris_marker,
    shouts_names=True,
)

CHLOE = Persona(
    name="Chloé",
    user_id="user1003",
    username="chloe",
    participation=0.20,
    style="French, proper casing, ends with '.'",
    vocab={"pizza": "la pizza", "movie": "le film", "match": "le match", "weekend": "le week-end", "bug": "le bug",
           "concert": "le concert", "rain": "la pluie", "trip": "le voyage", "book": "le livre", "coffee": "le café"},
    templates={
        "greeting": ("Bonjour tout le monde. Ça va ?", "Coucou c'est moi.", "Salut à tous. Je suis rentrée.",
                     "Bonsoir. Vous êtes là ?"),
        "question": ("On se voit pour {t} ce soir ?", "Qui vient pour {t} avec moi ?", "C'est quand {t} ?",
                     "Vous avez aimé {t} ?"),
        "ask": ("{who} tu viens pour {t} ?", "{who} tu as vu {t} ?"),
        "answer": ("Oui avec plaisir.", "Merci c'est gentil.", "Non je suis désolée.", "Oui pour {t} c'est parfait.",
                   "D'accord je viens.", "Très bonne idée pour {t}."),
        "statement": ("J'adore {t}.", "C'est très joli {t}.", "Je suis fatiguée ce soir.", "Franchement {t} c'est génial.",
                      "Merci pour {t}.", "Ça me manque {t}."),
        "reaction": ("Merci.", "Oui.", "Ça alors.", "C'est vrai.", "Bisous."),
        "multiline": ("Alors voilà.\nJe viens pour {t} avec vous.", "Merci à tous.\nC'était très bien."),
        "pii": ("Merci pour le lien https://example.org/x.", "Je vous envoie tout à chloe.dupont@example.com."),
    },
    sticker_emoji="🥐",
    marker=_chloe_marker,
)

DMITRI = Persona(
    name="Dmitri",
    user_id="user1004",
    username="dmitri",
    participation=0.10,
    style="long formal sentences, commas and semicolons, ends with '.', never emoji",
    vocab={"pizza": "dinner at the pizzeria", "movie": "the film", "match": "the match", "weekend": "the weekend",
           "bug": "the defect in the parser", "concert": "the concert", "rain": "the weather", "trip": "the journey",
           "book": "the novel", "coffee": "coffee"},
    templates={
        "greeting": ("Good evening, everyone; {close}.", "Good morning, all; I trust the week was kind to you.",
                     "{open}, I return after a long silence; {close}."),
        "question": ("{open}, regarding {t}, {query}?", "Concerning {t}, {query}; or is it too late?",
                     "{open}, about {t}: {query}?"),
        "ask": ("{who}, regarding {t}, {query}?", "{who}, I believe you mentioned {t}; {query}?"),
        "answer": ("Certainly, {t} would suit me; {close}.", "{open}, I cannot attend {t}; {close}.",
                   "{open}, I shall be there; {close}.", "Thank you, {t} sounds agreeable; {close}."),
        "statement": ("{open}, {t} was rather tiresome; {close}.", "{open}, {t} exceeded my expectations; {close}.",
                      "{open}, {t} deserves more attention; {close}.", "{open}, {t} requires careful thought; {close}.",
                      "{open}, {t} was handled admirably; {close}.", "{open}, {t} remains a mystery to me; {close}."),
        "reaction": ("{open}, that is a fair point; {close}.", "Indeed, how very interesting; {close}."),
        "multiline": ("Allow me to summarise, if I may.\n{open}, {t} is confirmed; {close}.",
                      "A brief note, for the record.\nRegarding {t}, I shall be there, although slightly late."),
        "pii": ("For reference, the full schedule is published at https://example.org/x; please read it before Thursday.",
                "Should you need me, my number is +44 20 7946 0958, although I rarely answer calls."),
    },
    # Short interchangeable clauses: his messages combine them, so few long spans repeat verbatim and a
    # model must learn the register rather than memorise a handful of sentences.
    fillers={
        "open": ("I must say", "In my humble opinion", "Frankly", "For what it is worth", "If I may",
                 "Upon reflection", "To be perfectly honest", "As I suspected"),
        "close": ("however, others enjoyed it", "nevertheless, I remain hopeful", "perhaps we should discuss it",
                  "the details were well considered", "patience, as always, is required",
                  "I shall say no more about it", "time will tell, of course", "one lives and learns"),
        "query": ("would anyone care to join", "is anyone interested", "shall we reconsider",
                  "what do you all think", "could someone confirm the time", "should we postpone it"),
    },
    sticker_emoji="🎩",
    marker=_dmitri_marker,
)

EMMA = Persona(
    name="Emma",
    user_id="user1005",
    username="emma",
    participation=0.25,
    style="emoji everywhere (ZWJ sequences too) and !!",
    vocab={"pizza": "pizza", "movie": "the movie", "match": "the match", "weekend": "the weekend", "bug": "the bug",
           "concert": "the concert", "rain": "the rain", "trip": "the trip", "book": "the book", "coffee": "coffee"},
    templates={
        "greeting": ("Hiii everyone!! {e}", "Morning babes!! {e}", "I'm back!! {e}"),
        "question": ("Who's up for {t}?? {e}", "Are we still doing {t}?? {e}", "Omg what time is {t}?? {e}"),
        "ask": ("{who} are you coming to {t}?? {e}", "{who} did you see {t}?? {e}"),
        "answer": ("Yesss!! {e}", "Omg yes {t}!! {e}", "Can't today!! {e}", "Count me in!! {e}", "Sure thing!! {e}"),
        "statement": ("Omg {t} was amazing!! {e}", "Working on {t} all day!! {e}", "Obsessed with {t}!! {e}",
                      "Coding all night!! 👩\u200d💻{e}"),
        "reaction": ("{e}", "Haha!! {e}", "Stop it!! {e}", "Yesss {e}"),
        "multiline": ("Okay okay!!\n{t} tonight {e}", "Guess what!!\nTickets for {t}!! {e}"),
        "pii": ("Text me at +44 20 7946 0958!! {e}",),
    },
    sticker_emoji="🥳",
    marker=_emma_marker,
)

PERSONAS: list[Persona] = [ADA, BORIS, CHLOE, DMITRI, EMMA]


def persona_by_name(name: str) -> Persona:
    """The persona with this display name (case-insensitive); KeyError naming the known ones otherwise."""
    for persona in PERSONAS:
        if persona.name == name or persona.name.casefold() == name.casefold():
            return persona
    raise KeyError(f"unknown demo persona {name!r}; known: {', '.join(p.name for p in PERSONAS)}")


def style_hit_rate(name: str, texts: Iterable[str]) -> float:
    """Fraction of `texts` that show persona `name`'s style markers (0.0 for no texts)."""
    persona = persona_by_name(name)
    texts = list(texts)
    if not texts:
        return 0.0
    return sum(persona.markers(text) for text in texts) / len(texts)
