"""The reply engine: personas, allowlist, cached state, concurrency, the guard, bad inputs."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch
from conftest import ALICE_LINE, BOB_LINE, build_artifact

from bot.engine.engine import Engine, EngineConfig
from bot.engine.errors import EmptyMessage, EngineBusy, EngineTimeout, UnknownConversation, UnknownPersona
from bot.engine.settings import SettingsError
from model.artifact import load_artifact
from talklike.errors import UserError

GREEDY = {"temperature": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def engine(tiny_artifact):
    with Engine(str(tiny_artifact)) as e:
        yield e


class CountingModule:
    """Wraps a module; counts the steps it is asked to read (batch x time), can be made to hang."""

    def __init__(self, module):
        self.module = module
        self.steps = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, chars, authors, h, c):
        self.entered.set()
        self.gate.wait()
        self.steps += chars.numel()
        return self.module(chars, authors, h, c)

    def init_state(self, batch: int):
        return self.module.init_state(batch)


# --- personas ----------------------------------------------------------------------------------------
def test_replies_in_each_persona(trained_artifact):
    with Engine(str(trained_artifact), EngineConfig(guard=False)) as e:
        # Each persona, opening a conversation greedily, writes its own line.
        assert e.speak("c:alice", "Alice", settings=GREEDY) == ALICE_LINE
        e.observe("c:bob", "Alice", ALICE_LINE)
        assert e.speak("c:bob", "Bob", settings=GREEDY) == BOB_LINE
        # The next-speaker head learned the turn-taking: after Bob, Alice.
        assert e.next_speaker("c:bob")[0][0] == "Alice"
        assert [m["author"] for m in e.transcript("c:bob")] == ["Alice", "Bob"]


def test_every_persona_answers(engine):
    assert engine.personas == ["Alice", "Bob"]
    for persona in engine.personas:
        text = engine.reply(f"t:{persona}", persona, "hello there", author="Carol", seed=1)
        assert isinstance(text, str) and text.strip()
        last = engine.transcript(f"t:{persona}")
        assert [m["author"] for m in last] == ["Carol", persona] and last[1]["text"] == text


def test_allowlist(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(personas=["Alice"])) as e:
        assert e.personas == ["Alice"]
        assert e.reply("t:1", "Alice", "hi", seed=0)
        with pytest.raises(UnknownPersona, match="'Bob' is not available here; choose from: Alice"):
            e.reply("t:1", "Bob", "hi")
        with pytest.raises(UnknownPersona) as unknown:
            e.reply("t:1", "Zed", "hi")
        # a persona kept off the allowlist reads exactly like a name the model never had
        assert str(unknown.value).replace("Zed", "Bob") == "persona 'Bob' is not available here; choose from: Alice"
        with pytest.raises(UnknownPersona):
            e.sample("Bob")
    with pytest.raises(UnknownPersona, match="Zed"):
        Engine(str(tiny_artifact), EngineConfig(personas=["Alice", "Zed"]))


def test_conversation_persona_and_settings_are_remembered(engine):
    with pytest.raises(UnknownPersona, match="no persona chosen"):
        engine.reply("t:p", None, "hi")
    engine.configure("t:p", persona="Bob", max_chars=5, temperature=0.3)
    assert engine.transcript("t:p") == []
    engine.reply("t:p", None, "hi", seed=3)
    assert engine.transcript("t:p")[-1]["author"] == "Bob"
    assert len(engine.transcript("t:p")[-1]["text"]) <= 5
    with pytest.raises(SettingsError):
        engine.configure("t:p", temperature=-1)
    with pytest.raises(SettingsError, match="unknown sampling setting"):
        engine.reply("t:p", "Bob", "hi", settings={"temprature": 1})


# --- state caching -----------------------------------------------------------------------------------
HISTORY = [("Alice", "are you coming tonight?"), (None, "who is this"), ("Bob", "bring the bike"),
           ("Carol", "ok ok"), ("Alice", "see you at 8")]


def test_cached_state_gives_the_same_reply_as_replayed_history(tiny_artifact, tmp_path):
    url = f"sqlite:///{tmp_path / 'conv.db'}"
    with Engine(str(tiny_artifact), EngineConfig(store_url=url)) as first:
        for i, (author, text) in enumerate(HISTORY):
            first.observe("tg:1", author, text, timestamp=1000.0 + i)
    # A new process (engine) reads the state from the file; another one replays the whole history.
    with Engine(str(tiny_artifact), EngineConfig(store_url=url)) as cached, Engine(str(tiny_artifact)) as replayed:
        for i, (author, text) in enumerate(HISTORY):
            replayed.observe("tg:1", author, text, timestamp=1000.0 + i)
        a, b = cached.store.get("tg:1"), replayed.store.get("tg:1")
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.speaker, b.speaker)
        for seed in range(3):
            kwargs = {"seed": seed, "timestamp": 1010.0 + seed, "settings": {"temperature": 1.0}}
            assert cached.reply("tg:1", "Bob", "and you?", **kwargs) == replayed.reply("tg:1", "Bob", "and you?", **kwargs)


def test_a_message_costs_only_its_own_characters(tiny_artifact):
    artifact = load_artifact(tiny_artifact)
    counter = CountingModule(artifact.module)
    artifact.module = counter
    with Engine(artifact) as e:
        for i in range(200):
            e.observe("long", "Alice", f"message number {i}", timestamp=float(i))
        for key in ("long", "new"):
            counter.steps = 0
            text = e.reply(key, "Bob", "hello", settings={"max_chars": 20}, seed=1, timestamp=300.0)
            session = 1 if key == "new" else 0
            # [session] BOS hello EOS, BOS, one step per written character, the closing EOS; a reply that
            # ran to max_chars and was cut at its last space gets one EOS more from the state there.
            read = session + 7 + 1
            assert counter.steps in {read + len(text) + 1, read + 20 + 1, read + 20 + 1 + 1}


# --- concurrency -------------------------------------------------------------------------------------
def test_many_threads_many_conversations_no_crossed_state(tiny_artifact):
    config = EngineConfig(transcript_len=100)
    with Engine(str(tiny_artifact), config) as e, Engine(str(tiny_artifact)) as check:
        errors = []

        def chat(t: int):
            try:
                for turn in range(4):
                    e.reply(f"c:{t % 4}", ["Alice", "Bob"][t % 2], f"thread {t} turn {turn}", author=f"user{t}",
                            settings={"max_chars": 30})
            except Exception as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=chat, args=(t,)) for t in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert e.worker.max_seen_batch > 1  # replies really were stepped together
        for k in range(4):
            record = e.store.get(f"c:{k}")
            assert record.messages == 24
            # Only this conversation's threads wrote here, each incoming message answered right after.
            incoming = record.transcript[::2]
            assert {m["author"] for m in incoming} == {f"user{t}" for t in range(12) if t % 4 == k}
            # Replaying the transcript alone reproduces the stored state: nothing leaked in from elsewhere.
            for m in record.transcript:
                check.observe(f"c:{k}", m["author"], m["text"], timestamp=m["ts"])
            np.testing.assert_allclose(check.store.get(f"c:{k}").state, record.state, atol=1e-5)


def test_asyncio_callers(engine):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        replies = await asyncio.gather(*(engine.areply(f"a:{i}", "Alice", "hey", seed=i) for i in range(6)))
        await engine.aobserve("a:0", "Bob", "cool")
        task.cancel()
        return replies, ticks

    replies, ticks = asyncio.run(main())
    assert len(replies) == 6 and all(r for r in replies)
    assert ticks > 1  # the loop kept running while replies were generated


def test_busy_and_timeout(tiny_artifact):
    artifact = load_artifact(tiny_artifact)
    counter = CountingModule(artifact.module)
    artifact.module = counter
    with Engine(artifact, EngineConfig(max_queue=1, timeout=0.5)) as e:
        counter.gate.clear()  # the worker hangs inside the model
        counter.entered.clear()
        results = []
        first = threading.Thread(target=lambda: results.append(_catch(e.reply, "b:1", "Alice", "hi")))
        first.start()
        assert counter.entered.wait(10)  # the worker holds the first request
        second = threading.Thread(target=lambda: results.append(_catch(e.reply, "b:2", "Alice", "hi")))
        second.start()
        _until(lambda: e.worker.waiting == 1)  # the second one waits in the queue
        with pytest.raises(EngineBusy, match="busy"):
            e.reply("b:3", "Alice", "hi")
        first.join()
        second.join()
        assert [type(r) for r in results] == [EngineTimeout, EngineTimeout]
        counter.gate.set()
        _until(lambda: e.worker.waiting == 0)
        assert e.reply("b:4", "Alice", "hi", seed=0)  # serves again afterwards


def _until(condition, limit: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(limit / 0.005)):
        if condition():
            return
        event.wait(0.005)
    raise AssertionError("condition not reached")


def _catch(fn, *args):
    try:
        return fn(*args)
    except Exception as err:
        return err


# --- the guard ---------------------------------------------------------------------------------------
def test_guard_stops_a_memorized_line(trained_artifact):
    guard = load_artifact(trained_artifact).guard
    for seed in range(3):
        with Engine(str(trained_artifact), EngineConfig(guard=False)) as free:
            free.observe("g", "Alice", ALICE_LINE)
            leaked = free.speak("g", "Bob", seed=seed, settings={"temperature": 0.2})
        assert guard.contains_memorized(leaked)  # without the guard the model repeats its training text
        with Engine(str(trained_artifact)) as guarded:
            guarded.observe("g", "Alice", ALICE_LINE)
            text = guarded.speak("g", "Bob", seed=seed, settings={"temperature": 0.2})
            assert not guard.contains_memorized(text)
            assert BOB_LINE[:60] not in text
            # The state holds what was sent, not the memorized line that was cut.
            with Engine(str(trained_artifact)) as check:
                check.observe("g", "Alice", ALICE_LINE, timestamp=guarded.transcript("g")[0]["ts"])
                check.observe("g", "Bob", text, timestamp=guarded.transcript("g")[1]["ts"])
                np.testing.assert_allclose(check.store.get("g").state, guarded.store.get("g").state, atol=1e-5)


def test_guard_cuts_a_short_training_message_inside_a_reply(trained_artifact):
    """A training message too short for a window ("the same very long sentence", 27 characters), held
    in another case and spacing, inside the greedy reply: resampled, then cut before it."""
    from bot.engine.reply_text import cut_before_memorized
    from model.guard import MemorizationGuard

    short = MemorizationGuard.build(["The  SAME very long\tsentence"], n=60)
    assert len(short) == 0 and short.contains_memorized(BOB_LINE)
    assert cut_before_memorized(short, BOB_LINE) == "bob always says"
    with Engine(str(trained_artifact)) as e:
        e.guard = short
        e.observe("g", "Alice", ALICE_LINE)
        text = e.speak("g", "Bob", settings=GREEDY)  # greedy: every resample says the same
    assert text == "bob always says" and not short.contains_memorized(text)
    whole = MemorizationGuard.build([BOB_LINE.upper()], n=60)  # the reply is the whole message: nothing left
    assert cut_before_memorized(whole, "  " + BOB_LINE.replace(" ", "   ")) == ""


# --- lengths, bad inputs -----------------------------------------------------------------------------
def test_runaway_is_cut_and_state_matches(engine):
    lengths = []
    for seed in range(6):
        key = f"r{seed}"
        text = engine.reply(key, "Alice", "go on", settings={"min_chars": 40, "max_chars": 40, "temperature": 1.5},
                            seed=seed, timestamp=0.0)
        assert 0 < len(text) <= 40 and text == text.rstrip()
        lengths.append(len(text))
        # The stored state is that of the text as sent (cut at a word boundary), not of all 40 characters.
        with Engine(engine.artifact) as check:
            check.observe(key, None, "go on", timestamp=0.0)
            check.observe(key, "Alice", text, timestamp=0.0)
            np.testing.assert_allclose(check.store.get(key).state, engine.store.get(key).state, atol=1e-5)
    assert min(lengths) < 40  # some replies really were cut


@pytest.mark.parametrize("message", ["", "   \n", None, 42])
def test_empty_or_non_text_message(engine, message):
    with pytest.raises(EmptyMessage):
        engine.reply("e", "Alice", message)
    assert engine.observe("e", "Bob", "") is False
    assert engine.transcript("e") == []


def test_huge_message_is_truncated_to_its_end(tiny_artifact):
    with Engine(str(tiny_artifact), EngineConfig(max_message_chars=500)) as e:
        huge = "x" * 1_000_000 + "the end"
        assert e.reply("h", "Alice", huge, seed=0)
        stored = e.transcript("h")[0]["text"]
        assert len(stored) == 500 and stored.endswith("the end")


def test_unknown_conversation(engine):
    assert engine.reset("nobody") is False
    assert engine.forget("nobody") is False
    with pytest.raises(UnknownConversation):
        engine.next_speaker("nobody")
    with pytest.raises(UserError, match="conversation key"):
        engine.reply("", "Alice", "hi")


def test_reset_and_forget(engine):
    engine.configure("f", persona="Bob")
    engine.reply("f", None, "hi", seed=0)
    names = [name for name, _ in engine.next_speaker("f")]
    assert sorted(names) == ["Alice", "Bob", "⟨other⟩"]
    assert engine.reset("f") is True
    record = engine.store.get("f")
    assert record.state is None and record.transcript == [] and record.persona == "Bob"
    assert engine.forget("f") is True
    assert engine.store.get("f") is None


def test_sample_is_reproducible_and_keeps_the_prime(engine):
    a = engine.sample("Bob", n=4, prime="ok ", seed=11)
    assert a == engine.sample("Bob", n=4, prime="ok ", seed=11)
    assert all(s.startswith("ok ") for s in a)
    assert engine.sample("Bob", n=2, prime="ok ", seed=11) == a[:2]  # sample i depends on seed + i only
    with pytest.raises(SettingsError):
        engine.sample("Bob", n=0)


def test_int8_artifact(tmp_path):
    path = build_artifact(tmp_path / "int8.pt", quantize="int8")
    with Engine(str(path)) as e:
        assert e.artifact.quantized == "int8"
        assert e.reply("q", "Alice", "hi", seed=0)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_engines_share_a_store_and_serialize_replies(tiny_artifact, tmp_path, request, backend):
    """Two engines (as two worker processes would) answer in one conversation: the store's lock keeps
    every incoming message next to its own reply, and no turn is lost."""
    url = f"sqlite:///{tmp_path / 's.db'}" if backend == "sqlite" else request.getfixturevalue("redis_server").url
    key = f"shared:{backend}:{tmp_path.name}"
    with Engine(str(tiny_artifact), EngineConfig(store_url=url, transcript_len=100)) as a, \
            Engine(str(tiny_artifact), EngineConfig(store_url=url, transcript_len=100)) as b:

        def chat(engine, tag):
            for i in range(5):
                engine.reply(key, "Alice", f"{tag} says {i}", author=tag, settings={"max_chars": 15})

        threads = [threading.Thread(target=chat, args=(e, f"user{n}")) for n, e in enumerate([a, b, a, b])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        record = b.store.get(key)
        assert record.messages == 40
        for incoming, answer in zip(record.transcript[::2], record.transcript[1::2], strict=True):
            assert incoming["author"].startswith("user") and answer["author"] == "Alice"
        a.forget(key)


def test_long_silence_opens_a_new_session(tiny_artifact):
    def state_after(gap: float):
        with Engine(str(tiny_artifact)) as e:
            e.observe("s", "Alice", "first", timestamp=0.0)
            e.observe("s", "Bob", "second", timestamp=gap)
            return e.store.get("s").state

    hour = 3600.0
    np.testing.assert_array_equal(state_after(1.0), state_after(5 * hour))  # same session
    assert not np.allclose(state_after(1.0), state_after(7 * hour))  # past 6 h: a session marker first


# --- the sampler -------------------------------------------------------------------------------------
def test_sampler_follows_each_rows_settings():
    from model.sampler import sample_rows
    from model.vocab import Vocabulary

    V = 12
    logits = np.tile(np.array([0.0] * 5 + [3.0, 2.0, 1.0, 0.5, 0.0, -1.0, -2.0], dtype=np.float32), (5, 1))
    logits[:, Vocabulary.EOS] = 10.0  # the end of message is by far the likeliest
    grid = np.linspace(0, 0.999, 400)
    temps = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    top_k = np.array([0, 0, 2, 0, 0])
    top_p = np.array([1.0, 1.0, 1.0, 0.5, 1.0])
    allow_eos = np.array([False, False, False, False, True])
    seen = [set() for _ in range(5)]
    for u in grid:
        out = sample_rows(logits, temps, top_k, top_p, allow_eos, np.full(5, u))
        for row, token in enumerate(out.tolist()):
            seen[row].add(token)
    specials = {Vocabulary.PAD, Vocabulary.BOS, Vocabulary.SESSION, Vocabulary.UNK}
    assert not set().union(*seen) & specials  # never written
    assert seen[0] == set(range(5, V))  # EOS forbidden: every character can come
    assert seen[1] == {5}  # greedy
    assert seen[2] == {5, 6}  # top-k 2
    assert seen[3] == {5}  # top-p 0.5: the likeliest already covers more than half
    assert Vocabulary.EOS in seen[4]
    # Inverse CDF over a uniform grid reproduces the softmax probabilities.
    probs = torch.softmax(torch.from_numpy(logits[0, 5:]), dim=0).numpy()
    counts = np.zeros(V - 5)
    for u in grid:
        counts[sample_rows(logits[:1], temps[:1], top_k[:1], top_p[:1], allow_eos[:1], np.array([u]))[0] - 5] += 1
    np.testing.assert_allclose(counts / len(grid), probs, atol=0.01)


def test_each_request_keeps_its_own_settings(engine):
    # One request after another (each a batch of one): greedy ones agree whatever the seed, hot ones do not.
    for _ in range(2):
        greedy = {engine.sample("Alice", seed=s, settings={"temperature": 0, "max_chars": 30})[0] for s in range(3)}
        hot = {engine.sample("Alice", seed=s, settings={"temperature": 2.0, "max_chars": 30})[0] for s in range(3)}
        assert len(greedy) == 1 and len(hot) == 3


@pytest.mark.parametrize("message", ["and you?", "and you? " * 12])  # under and over FOLD_MAX
def test_a_reply_joining_a_running_batch_reads_as_if_alone(trained_artifact, message):
    # A short incoming message is folded into the running batch's steps, a long one (over FOLD_MAX) read at
    # once; alone, either is read at once. The text depends on the seed alone, neither on the company nor
    # on how the message was read.
    settings = {"temperature": 0.8, "max_chars": 60}

    def answer(engine):
        engine.observe("c", "Alice", ALICE_LINE, timestamp=1.0)
        return engine.reply("c", "Bob", message, author="Alice", settings=settings, seed=7, timestamp=2.0)

    with Engine(str(trained_artifact), EngineConfig(guard=False)) as e:
        alone = answer(e)
        assert e.worker.folded == 0
    with Engine(str(trained_artifact), EngineConfig(guard=False)) as e:
        long = {"temperature": 1.0, "min_chars": 400, "max_chars": 400}
        busy = [threading.Thread(target=e.speak, args=(f"busy:{i}", "Alice"), kwargs={"settings": long})
                for i in range(3)]
        for t in busy:
            t.start()
        while e.worker.steps < 5:
            time.sleep(0.001)
        together = answer(e)
        assert e.worker.folded >= 1
        for t in busy:
            t.join()
    assert together == alone


def test_the_engine_and_the_generator_write_the_same_samples(trained_artifact):
    # One stepper, one sampler: `Generator` (previews, evaluation) and the engine agree sample for sample.
    from model.generation import Generator

    artifact = load_artifact(trained_artifact)
    generator = Generator(artifact.module, artifact.vocab, artifact.authors, experts=artifact.experts)
    settings = {"max_chars": 120, "temperature": 0.9}
    with Engine(artifact, EngineConfig(guard=False)) as e:
        for persona in ("Alice", "Bob"):
            ours = e.sample(persona, n=6, seed=21, settings=settings)
            theirs = generator.reply(generator.init_state(), artifact.authors.id_of(persona), n=6, temperature=0.9,
                                     max_chars=120, seed=21)
            assert ours == theirs
