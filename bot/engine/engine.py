"""The reply engine: conversation memory + batched generation for every adapter (CLI, web, bots).

One `Engine` per process loads the artifact once and owns a `BatchWorker` thread. Per conversation key
(`platform:chat_id`) a store keeps the recurrent state after the last message, so a new message costs only
its own characters, however long the history. Calls are thread-safe (one reply at a time per conversation,
through the store's lock) and have asyncio twins that never block the event loop.

Long incoming messages are truncated to their LAST `max_message_chars` characters (the end is what a reply
answers; platform limits are in this range anyway), never refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import random
import time
from dataclasses import dataclass, field

import torch

from bot.engine.batching import BatchWorker
from bot.engine.errors import EmptyMessage, EngineError, EngineTimeout, UnknownConversation, UnknownPersona
from bot.engine.jobs import FeedResult, GenerateResult, Job
from bot.engine.memory import Memory
from bot.engine.reply_text import cut_before_memorized, cut_runaway
from bot.engine.settings import SamplingSettings, SettingsError
from bot.infra.stores import Store, StoreError, open_store
from bot.infra.stores.base import DAY_S, DEFAULT_RETENTION_DAYS
from model.artifact import Artifact, load_artifact
from model.names import RECENT
from model.stream import DEFAULT_SESSION_GAP, encode_message
from model.vocab import AuthorTable, Vocabulary

log = logging.getLogger(__name__)


@dataclass
class EngineConfig:
    """Engine configuration; `personas` None allows every author of the model."""

    personas: list[str] | None = None  # the allowlist: people who agreed to be imitated
    store_url: str = "memory://"
    retention: float = DEFAULT_RETENTION_DAYS * DAY_S  # seconds of silence after which a conversation is forgotten
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    max_queue: int = 256  # waiting requests beyond this → EngineBusy
    max_batch: int = 64  # replies stepped together
    timeout: float = 30.0  # seconds per request, retries included
    num_threads: int | None = None  # torch intra-op threads; None leaves torch's default
    onednn: bool = False  # oneDNN's LSTM (prefills) is slower for short calls on CPU
    fast_step: bool = True  # step in numpy where the model allows it: several times cheaper than torch per step
    guard: bool = True  # resample / cut replies repeating a training message verbatim
    guard_retries: int = 3
    empty_retries: int = 3
    fallback_reply: str = "…"  # when every try came out empty
    transcript_len: int = 20
    # Readable transcripts are kept only for conversation keys starting with one of these (None: every key):
    # the console reads its own; platform conversations keep just the state the reply needs.
    transcript_prefixes: tuple[str, ...] | None = None
    min_temperature: float = 0.0  # public paths keep a floor: greedy decoding replays memorized text
    max_message_chars: int = 2000
    session_gap: float | None = None  # seconds of silence that open a new session; None: as in training


class Engine:
    """Replies in a persona's style, remembering each conversation."""

    def __init__(self, artifact: Artifact | str, config: EngineConfig | None = None, store: Store | None = None):
        self.config = config or EngineConfig()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        self.vocab: Vocabulary = self.artifact.vocab
        self.authors: AuthorTable = self.artifact.authors
        self.guard = self.artifact.guard if self.config.guard else None
        known = self.authors.personas
        allowed = known if self.config.personas is None else list(self.config.personas)
        missing = [p for p in allowed if p not in known]
        if missing:
            raise UnknownPersona(f"persona(s) {', '.join(missing)} not in the model (it knows: {', '.join(known)})")
        self.personas: list[str] = allowed
        trained = (self.artifact.card.get("train_config") or {}).get("session_gap")
        self.session_gap = float(self.config.session_gap or trained or DEFAULT_SESSION_GAP)
        self._owns_store = store is None
        self.store = store or open_store(self.config.store_url, retention=self.config.retention)
        module = self.artifact.module
        h0, _ = module.init_state(1)
        self.memory = Memory(self.store, self.authors, tuple(h0.shape), timeout=self.config.timeout,
                             session_gap=self.session_gap, transcript_len=self.config.transcript_len,
                             transcript_prefixes=self.config.transcript_prefixes)
        self.worker = BatchWorker(module, self.vocab, self.config.max_queue, self.config.max_batch,
                                  self.config.onednn, fast_step=self.config.fast_step, experts=self.artifact.experts)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(64, self.config.max_queue), thread_name_prefix="talklike-async"
        )

    # -- public API ---------------------------------------------------------------------------------
    def reply(self, conversation: str, persona: str | None, message: str, author: str | None = None, *,
              settings: dict | None = None, seed: int | None = None, timestamp: float | None = None,
              deadline: float | None = None, sender: str | None = None) -> str:
        """Fold `message` (by `author`; None or a stranger reads as ⟨other⟩) into the conversation and
        answer it as `persona` (None: the conversation's persona). `deadline` (time.monotonic()) bounds a
        caller's several replies together; each also keeps the engine's own timeout. `sender` (the person's
        platform id, e.g. "telegram:42") marks their words in a kept transcript, so they can be forgotten."""
        text = self._message(message)
        if not text.strip():
            raise EmptyMessage("the message is empty")
        return self._turn(conversation, persona, (author, text, sender), settings, seed, timestamp, deadline)

    def speak(self, conversation: str, persona: str | None, *, settings: dict | None = None,
              seed: int | None = None, timestamp: float | None = None, deadline: float | None = None) -> str:
        """Write the conversation's next message as `persona`, without a new incoming message."""
        return self._turn(conversation, persona, None, settings, seed, timestamp, deadline)

    def observe(self, conversation: str, author: str | None, text: str, timestamp: float | None = None,
                sender: str | None = None) -> bool:
        """Fold a message into the conversation without answering (group chats); False if it had no text."""
        text = self._message(text)
        if not text.strip():
            return False
        now = time.time() if timestamp is None else timestamp
        deadline = time.monotonic() + self.config.timeout
        with self.memory.lock(conversation):
            record = self.memory.load(conversation)
            h, c = self.memory.state(record)
            session = self.memory.opens_session(record, now)
            chars, authors = encode_message(self.vocab, self._author_id(author), text, session)
            result = self._wait(self.worker.submit(Job("feed", chars, authors, h, c, deadline)), deadline)
            self.memory.save(conversation, record, result.h, result.c, result.speaker, [(author, text, sender)], now)
        return True

    def sample(self, persona: str, n: int = 1, prime: str = "", *, settings: dict | None = None,
               seed: int | None = None) -> list[str]:
        """`n` independent messages by `persona` opening a fresh conversation, generated together;
        each starts with `prime`. Sample i uses seed + i, so results do not depend on `n`."""
        pid = self._persona_id(persona)
        if not 1 <= n <= self.config.max_queue:
            raise SettingsError(f"number of samples must be between 1 and {self.config.max_queue}, got {n}")
        options = self.config.settings.updated(settings)
        prefix = self.vocab.encode(prime)
        if len(prefix) >= options.max_chars:
            raise SettingsError(f"the prime ({len(prefix)} characters) must be shorter than max_chars ({options.max_chars})")
        deadline = time.monotonic() + self.config.timeout
        h, c = self.memory.zeros()
        rngs = [random.Random(None if seed is None else seed + i) for i in range(n)]
        futures = [self._start([Vocabulary.SESSION], [pid], h, c, pid, prefix, options, rng, deadline) for rng in rngs]
        return [self._complete(f, pid, prime, prefix, options, rng, deadline, refeed=False)[0]
                for f, rng in zip(futures, rngs, strict=True)]

    def reset(self, conversation: str) -> bool:
        """Start the conversation over (state and transcript cleared; persona and settings kept);
        False if nothing was stored."""
        return self.memory.reset(conversation)

    def mark_disclosed(self, conversation: str) -> bool:
        """Note that the conversation was told it talks to a model; True the first time (then tell it)."""
        return self.memory.mark_disclosed(conversation)

    def forget(self, conversation: str) -> bool:
        """Delete everything stored about the conversation; False if nothing was stored."""
        return self.memory.forget(conversation)

    def forget_sender(self, sender: str, prefix: str) -> int:
        """Take `sender`'s messages out of the kept transcripts of conversations under `prefix`."""
        return self.memory.forget_sender(sender, prefix)

    def configure(self, conversation: str, persona: str | None = None, **settings) -> None:
        """Set the conversation's persona and/or sampling settings (e.g. temperature=0.5) for later replies."""
        if persona is not None:
            self._persona_id(persona)
        with self.memory.lock(conversation):
            record = self.memory.load(conversation)
            merged = {**record.settings, **{k: v for k, v in settings.items() if v is not None}}
            checked = self.config.settings.updated(merged)  # validate now, not at the next reply
            if "temperature" in settings and checked.temperature < self.config.min_temperature:
                raise SettingsError(f"temperature must be at least {self.config.min_temperature:g} here (lower ones "
                                    f"replay training text word for word), got {checked.temperature:g}")
            record.settings = merged
            record.persona = persona or record.persona
            self.store.put(conversation, record)

    def chosen(self, conversation: str) -> tuple[str | None, dict]:
        """The persona and sampling settings chosen for the conversation (None and {} if never chosen)."""
        return self.memory.chosen(conversation)

    def move(self, conversation: str, to: str) -> bool:
        """Carry a conversation over to a new key (a group that got a new id); False if nothing was stored."""
        return self.memory.move(conversation, to)

    def next_speaker(self, conversation: str) -> list[tuple[str, float]]:
        """Who is likely to write next: (name, probability) for every author, most likely first."""
        odds = self.memory.speaker_odds(conversation)
        if odds is None:
            raise UnknownConversation(f"conversation {conversation!r} has no messages yet")
        return sorted(((self.authors.name_of(i), p) for i, p in enumerate(odds.tolist())), key=lambda x: -x[1])

    def who(self, text: str, context: list[tuple[str | None, str]] | None = None, top: int = 10,
            with_turns: bool = True) -> list[tuple[str, float, float]]:
        """Which personas would most likely have written `text` after `context` ((author, text) pairs, oldest
        first; an author the model does not know reads as ⟨other⟩): (name, bits, share), most likely first,
        where share is the persona's probability among the allowed ones. Runs in the caller's thread."""
        from model.attribution import rank_authors

        text = self._message(text)
        if not text.strip():
            raise EmptyMessage("the message is empty")
        entries = [(self._author_id(author), self._message(said), i == 0)
                   for i, (author, said) in enumerate(context or [])]
        candidates = [self.authors.id_of(p) for p in self.personas]
        module = self.artifact.module
        if self.artifact.experts is not None:  # a wrapper of its own per call: it keeps the rows' last symbols
            from model.experts import WithExperts

            module = WithExperts(module, self.artifact.experts, len(self.vocab))
        ranking = rank_authors(module, self.vocab, text, candidates, entries, with_turns)
        best = ranking.scores[0][1]
        weights = [2.0 ** (best - bits) for _, bits in ranking.scores]  # P ∝ 2^-bits, kept in range
        total = sum(weights)
        return [(self.authors.name_of(i), bits, w / total)
                for (i, bits), w in zip(ranking.top(top), weights, strict=False)]

    def worker_alive(self) -> bool:
        """Can the engine still generate (its worker thread runs)?"""
        return self.worker.alive

    def status(self) -> dict:
        """Where the engine stands, for operators (never for strangers): its model file, store and worker."""
        try:
            self.store.ping()
            store = "ok"
        except StoreError as err:
            store = f"unreachable ({type(err).__name__})"
        return {"model": self.artifact.path, "personas": len(self.personas), "store": self.store.url,
                "store_status": store, "engine": "running" if self.worker_alive() else "stopped"}

    def transcript(self, conversation: str) -> list[dict]:
        """The last few messages kept of the conversation ({"author", "text", "ts"}), oldest first."""
        return self.memory.transcript(conversation)

    async def in_thread(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` for asyncio callers: on the engine's own threads (as many as requests may
        wait), so the event loop stays free and replies are not capped by asyncio's default pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def areply(self, *args, **kwargs) -> str:
        """`reply` for asyncio callers."""
        return await self.in_thread(self.reply, *args, **kwargs)

    async def aspeak(self, *args, **kwargs) -> str:
        """`speak` for asyncio callers."""
        return await self.in_thread(self.speak, *args, **kwargs)

    async def aobserve(self, *args, **kwargs) -> bool:
        """`observe` for asyncio callers."""
        return await self.in_thread(self.observe, *args, **kwargs)

    def close(self) -> None:
        """Stop the worker thread, and close the store if the engine opened it."""
        self.worker.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one turn -----------------------------------------------------------------------------------
    def _turn(self, conversation: str, persona: str | None, incoming: tuple[str | None, str, str | None] | None,
              settings: dict | None, seed: int | None, timestamp: float | None, deadline: float | None) -> str:
        now = time.time() if timestamp is None else timestamp
        deadline = min(time.monotonic() + self.config.timeout, deadline or float("inf"))
        if deadline <= time.monotonic():
            raise EngineTimeout(f"the request took longer than its {self.config.timeout:g} s")
        rng = random.Random(seed)
        with self.memory.lock(conversation):
            record = self.memory.load(conversation)
            persona = persona or record.persona
            if persona is None:
                raise UnknownPersona(f"no persona chosen; choose from: {', '.join(self.personas)}")
            pid = self._persona_id(persona)
            options = self._floored(self.config.settings.updated(record.settings).updated(settings))
            h, c = self.memory.state(record)
            session = self.memory.opens_session(record, now)
            if incoming is not None:
                chars, authors = encode_message(self.vocab, self._author_id(incoming[0]), incoming[1], session)
            else:  # the persona opens or continues the conversation itself
                chars, authors = ([Vocabulary.SESSION], [pid]) if session else ([], [])
            names = self._names(record.speakers, persona, incoming[0] if incoming is not None else None)
            future = self._start(chars, authors, h, c, pid, [], options, rng, deadline, names)
            text, h, c, speaker = self._complete(future, pid, "", [], options, rng, deadline, refeed=True,
                                                 names=names)
            messages = ([incoming] if incoming is not None else []) + [(persona, text, None)]
            record.persona = persona
            self.memory.save(conversation, record, h, c, speaker, messages, now)
        return text

    def _start(self, chars, authors, h, c, pid, prefix, options, rng, deadline,
               names: list[list[int]] | None = None) -> concurrent.futures.Future:
        return self.worker.submit(Job("generate", chars, authors, h, c, deadline, persona_id=pid, prefix=prefix,
                                      settings=options, rng=rng, names=names or []))

    def _names(self, speakers: list[str], persona: str, incoming_author: str | None) -> list[list[int]]:
        """The recent speakers' names the names expert offers `persona` (not its own), encoded; the incoming
        message's author (about to be saved) first."""
        ordered = ([incoming_author] if incoming_author else []) + speakers
        recent = [name for name in dict.fromkeys(ordered) if name != persona][:RECENT]
        return [self.vocab.encode(name) for name in recent]

    def _complete(self, future, pid: int, prime: str, prefix: list[int], options: SamplingSettings,
                  rng: random.Random, deadline: float, refeed: bool, names: list[list[int]] | None = None):
        """Wait for a generation, resample empty or memorized replies, cut runaways; returns
        (text, h, c, speaker logits) with the state matching exactly the text returned."""
        result: GenerateResult = self._wait(future, deadline)
        pre: FeedResult = result.pre  # before the reply's BOS; retries start here
        tries = {"empty": 0, "guard": 0}
        limits = {"empty": self.config.empty_retries, "guard": self.config.guard_retries}
        while True:
            text = prime + self.vocab.decode(result.ids)
            problem = "empty" if not text.strip() else "guard" if self._memorized(text) else None
            if problem is None or tries[problem] >= limits[problem]:
                break
            tries[problem] += 1
            log.debug("resampling a reply (%s, try %d)", problem, tries[problem])
            result = self._wait(self._start([], [], pre.h, pre.c, pid, prefix, options, rng, deadline, names),
                                deadline)
        final = text if result.ended else cut_runaway(text)
        if self.guard is not None:
            final = cut_before_memorized(self.guard, final)
        if not final.strip():
            final = self.config.fallback_reply
        if final == text or not refeed:
            return final, result.h, result.c, result.speaker
        boundary = result.boundary
        if boundary is not None and final == text[: len(prime) + boundary[0]]:
            # Cut at the last word boundary: the state there only needs the closing EOS.
            fed = self._wait(self.worker.submit(Job("feed", [Vocabulary.EOS], [pid], boundary[1], boundary[2],
                                                    deadline)), deadline)
            return final, fed.h, fed.c, fed.speaker
        # The state read characters the reply no longer has: re-read the reply as sent.
        chars, authors = encode_message(self.vocab, pid, final, session=False)
        fed = self._wait(self.worker.submit(Job("feed", chars, authors, pre.h, pre.c, deadline)), deadline)
        return final, fed.h, fed.c, fed.speaker

    # -- helpers ------------------------------------------------------------------------------------
    def _wait(self, future: concurrent.futures.Future, deadline: float):
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise EngineTimeout(f"the reply took longer than {self.config.timeout:g} s") from None

    def _floored(self, options: SamplingSettings) -> SamplingSettings:
        """`options` with the temperature raised to this engine's floor, whatever a conversation stored."""
        if options.temperature >= self.config.min_temperature:
            return options
        return options.updated(temperature=self.config.min_temperature)

    def _memorized(self, text: str) -> bool:
        return self.guard is not None and self.guard.contains_memorized(text)

    def check_persona(self, persona: str) -> str:
        """`persona` if the engine may speak as it; UnknownPersona (naming the choices) otherwise."""
        self._persona_id(persona)
        return persona

    def _persona_id(self, persona: str) -> int:
        if persona not in self.personas:
            # The same words whether the model knows the name or not: a stranger must not learn who is in it.
            raise UnknownPersona(f"persona {persona!r} is not available here; choose from: {', '.join(self.personas)}")
        return self.authors.id_of(persona)

    def _author_id(self, author: str | None) -> int:
        return 0 if author is None else self.authors.id_of(author)  # strangers read as ⟨other⟩ (id 0)

    def _message(self, text: str) -> str:
        if not isinstance(text, str):
            raise EmptyMessage(f"a message must be text, got {type(text).__name__}")
        return text[-self.config.max_message_chars :]



__all__ = ["Engine", "EngineConfig", "EngineError", "EmptyMessage", "UnknownConversation", "UnknownPersona"]
