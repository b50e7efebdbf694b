"""model/: vocabulary, authors, network, stream, guard, sampling, artifact and generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from model.artifact import FORMAT_VERSION, ArtifactError, load_artifact, read_metadata, save_artifact
from model.config import ModelConfig
from model.generation import Generator
from model.guard import MemorizationGuard
from model.network import CharLSTM
from model.sampler import sample_rows
from model.stream import encode_message, message_text, starts_session
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError

torch.set_num_threads(1)

TEXTS = ["Hey Bob 😂 see u at 8", "Ça va? OK!!", "ÄÖÜ äöü — fine 👍🏽"]


@pytest.fixture()
def tables() -> tuple[Vocabulary, AuthorTable]:
    return Vocabulary.build(TEXTS), AuthorTable.build({"Alice": 30, "Bob": 20, "Rare": 1}, min_messages=5)


@pytest.fixture()
def tiny(tables) -> tuple[CharLSTM, ModelConfig]:
    vocab, authors = tables
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny", len(vocab), len(authors))
    return CharLSTM(config).eval(), config


# ---------------------------------------------------------------------------------------------------
# vocabulary and authors


def test_vocabulary_keeps_case_accents_and_emoji():
    vocab = Vocabulary.build(TEXTS)
    for text in TEXTS:
        assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode("a") != vocab.encode("A")
    assert len(vocab.encode("😂")) == 1 and vocab.encode("😂")[0] > Vocabulary.UNK
    assert "👍" in vocab and "🏽" in vocab  # a skin-tone emoji is two code points, both kept


def test_vocabulary_unknown_specials_and_round_trip():
    vocab = Vocabulary.build(["abc"])
    assert vocab.encode("aZ") == [vocab.encode("a")[0], Vocabulary.UNK]
    assert vocab.decode([Vocabulary.BOS, *vocab.encode("ab"), Vocabulary.EOS, Vocabulary.SESSION]) == "ab"
    assert len(vocab) == len(Vocabulary.SPECIALS) + 3
    assert Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    assert Vocabulary.build(["aab"], min_count=2).encode("ab") == [Vocabulary.UNK + 1, Vocabulary.UNK]


def test_author_table_folds_rare_authors_into_other():
    authors = AuthorTable.build({"Alice": 30, "Bob": 20, "Rare": 1}, min_messages=5)
    assert authors.names == [AuthorTable.OTHER, "Alice", "Bob"]
    assert authors.id_of("Rare") == 0 and authors.id_of("Nobody") == 0
    assert authors.name_of(authors.id_of("Bob")) == "Bob"
    assert authors.personas == ["Alice", "Bob"]
    assert AuthorTable.from_dict(authors.to_dict()) == authors


def test_model_config_rejects_unknown_keys_and_presets():
    config = ModelConfig.from_preset("small", 100, 4)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({**config.to_dict(), "hidden": 3})
    with pytest.raises(ValueError, match="unknown model preset"):
        ModelConfig.from_preset("huge", 100, 4)


# ---------------------------------------------------------------------------------------------------
# network and stream


def test_network_shapes(tiny):
    model, config = tiny
    h, c = model.init_state(3)
    assert h.shape == c.shape == (config.num_layers, 3, config.hidden_size)
    chars = torch.randint(0, config.vocab_size, (3, 7))
    authors = torch.randint(0, config.n_authors, (3, 7))
    logits, speaker, h2, c2 = model(chars, authors, h, c)
    assert logits.shape == (3, 7, config.vocab_size)
    assert speaker.shape == (3, 7, config.n_authors)
    assert h2.shape == c2.shape == h.shape


def test_author_embedding_changes_every_step(tiny):
    model, config = tiny
    chars = torch.randint(5, config.vocab_size, (1, 12))
    h, c = model.init_state(1)
    with torch.no_grad():
        as_alice, _, _, _ = model(chars, torch.full_like(chars, 1), h, c)
        as_bob, _, _, _ = model(chars, torch.full_like(chars, 2), h, c)
        # Same first 11 steps, different author only at the last step: the last output still changes.
        mixed = torch.full_like(chars, 1)
        mixed[0, -1] = 2
        late, _, _, _ = model(chars, mixed, h, c)
    assert not torch.allclose(as_alice, as_bob)
    assert torch.allclose(late[0, :-1], as_alice[0, :-1])
    assert not torch.allclose(late[0, -1], as_alice[0, -1])


def test_encode_message_and_session_rule(tables):
    vocab, _ = tables
    chars, who = encode_message(vocab, 2, "OK", session=True)
    assert chars == [Vocabulary.SESSION, Vocabulary.BOS, *vocab.encode("OK"), Vocabulary.EOS]
    assert who == [2] * len(chars)
    assert encode_message(vocab, 1, "OK", session=False)[0][0] == Vocabulary.BOS
    assert starts_session(True, None, 100.0)
    assert starts_session(False, 0.0, 7 * 3600.0) and not starts_session(False, 0.0, 3600.0)
    assert not starts_session(False, None, 3600.0)
    assert message_text("photo", "") is None and message_text("photo", "look") == "look"
    assert message_text("text", "   ") is None


# ---------------------------------------------------------------------------------------------------
# memorization guard


def test_guard_detects_long_verbatim_spans_only():
    secret = "my new address is 12 Long Street, flat 4, and the door code is 7781, ok?"
    guard = MemorizationGuard.build([secret, "short one"], n=60)
    assert len(guard) == len(secret) - 60 + 1
    assert guard.contains_memorized("well, " + secret[5:65] + " right")
    assert not guard.contains_memorized(secret[5:64])  # 59 characters: shorter than the window
    changed = secret[:30] + "X" + secret[31:]  # one character differs in every window
    assert not guard.contains_memorized(changed)
    assert not guard.contains_memorized("short one" * 10)
    assert not guard.contains_memorized(secret.upper()[5:70])  # a changed-case stretch: no window matches
    assert guard.contains_memorized(secret.upper())  # the whole message, case aside: held as a message
    again = MemorizationGuard.from_bytes(guard.to_bytes())
    assert again.n == 60 and len(again) == len(guard)
    assert again.contains_memorized(secret)
    with pytest.raises(ValueError):
        MemorizationGuard.from_bytes(b"nonsense" * 3)
    with pytest.raises(ValueError):
        MemorizationGuard.from_bytes(guard.to_bytes()[:-3])


def test_guard_holds_whole_short_messages_case_and_spacing_aside():
    code = "the door code is 7781#, ok?"  # 27 characters: too short for a 60-character window
    guard = MemorizationGuard.build([code, "see you at 8 then!!", "ok"], n=60)
    assert len(guard) == 0 and guard.messages.size == 1  # the others are under 20 characters
    assert guard.contains_memorized("The  Door CODE is 7781#,\n ok?")  # equal, once normalised
    assert guard.contains_memorized("well: the door code is 7781#, ok? see you")  # inside a longer reply
    assert guard.contains_memorized("THE DOOR CODE IS 7781#, OK?!")  # a punctuation run may end it
    assert not guard.contains_memorized("the door code is 7781#")  # part of the message is not the message
    assert not guard.contains_memorized("xthe door code is 7781#, ok?")  # nor one glued inside a word
    assert not guard.contains_memorized("see you at 8 then!!")  # 19 characters: not held
    text = "Sure.  The DOOR code is 7781#, ok? bye"
    assert guard.memorized_start(text) == text.index("The")
    again = MemorizationGuard.from_bytes(guard.to_bytes())
    assert again.messages.size == 1 and again.contains_memorized(code.upper())


def test_guard_written_before_message_hashes_still_loads():
    import struct

    secret = "my new address is 12 Long Street, flat 4, and the door code is 7781, ok?"
    windows = MemorizationGuard.build([secret], n=60).hashes
    old = struct.pack("<8sIQ", b"TLGUARD1", 60, windows.size) + windows.astype("<u8").tobytes()
    guard = MemorizationGuard.from_bytes(old)
    assert guard.n == 60 and len(guard) == windows.size and guard.messages.size == 0
    assert guard.contains_memorized("so: " + secret[3:70]) and not guard.contains_memorized(secret.upper())
    assert guard.memorized_start("so: " + secret) == 4
    with pytest.raises(ValueError, match="truncated"):
        MemorizationGuard.from_bytes(old[:-1])


def test_guard_handles_emoji_and_empty():
    text = "😂" * 30 + "ab" * 20
    guard = MemorizationGuard.build([text], n=60)
    assert guard.contains_memorized("x" + text)
    assert not MemorizationGuard.build([], n=60).contains_memorized(text)


# ---------------------------------------------------------------------------------------------------
# sampling


def _sample(logits, temperature, top_k=0, top_p=1.0, allow_eos=False, seed=0):
    """One token per row of `logits` through the one sampler, each row with its own random number."""
    rows = logits.shape[0]
    rng = np.random.default_rng(seed)
    return sample_rows(logits, np.broadcast_to(np.asarray(temperature, dtype=np.float32), rows).copy(),
                       np.full(rows, top_k), np.full(rows, top_p, dtype=np.float32), np.full(rows, allow_eos),
                       rng.random(rows))


def test_sampling_temperature_top_k_top_p():
    # ids 0-4 are the specials (never written); the five real characters follow
    logits = np.tile(np.array([[0, 0, 0, 0, 0, 0.0, 3.0, 2.9, -1.0, 1.0]], dtype=np.float32), (400, 1))
    assert (_sample(logits, 0.0) == 6).all()
    assert (_sample(logits, 1.0, top_k=1) == 6).all()
    assert (_sample(logits, 1.0, top_p=0.01) == 6).all()
    assert set(_sample(logits, 1.0, top_k=2).tolist()) == {6, 7}
    free = _sample(logits, 5.0)
    assert set(free.tolist()) == {5, 6, 7, 8, 9}  # every real character, never a special
    # per-row temperature: greedy rows and sampled rows side by side
    temps = np.tile(np.array([0.0, 5.0], dtype=np.float32), 200)
    mixed = _sample(logits, temps)
    assert (mixed[0::2] == 6).all() and not (mixed[1::2] == 6).all()


def test_the_sampler_never_writes_specials_and_forbids_eos_where_asked(tables):
    vocab, _ = tables
    logits = np.zeros((400, len(vocab)), dtype=np.float32)
    logits[:, Vocabulary.EOS] = logits[:, Vocabulary.UNK] = logits[:, Vocabulary.BOS] = 20.0  # very likely
    allowed = _sample(logits, 1.0, allow_eos=True)
    assert set(allowed.tolist()) == {Vocabulary.EOS}
    forbidden = _sample(logits, 1.0, allow_eos=False)
    assert not set(forbidden.tolist()) & {Vocabulary.PAD, Vocabulary.BOS, Vocabulary.SESSION, Vocabulary.UNK,
                                          Vocabulary.EOS}


# ---------------------------------------------------------------------------------------------------
# artifact


def save(tmp_path, tiny, tables, quantize=None, name="model.pt"):
    model, config = tiny
    vocab, authors = tables
    guard = MemorizationGuard.build(["x" * 80], n=60)
    card = {"preset": "tiny", "authors": {"Alice": {"messages": 30, "chars": 300}}}
    path = tmp_path / name
    size = save_artifact(path, model, vocab, authors, config, card, guard, quantize=quantize)
    return path, size


def probe(config):
    torch.manual_seed(1)
    return torch.randint(0, config.vocab_size, (2, 9)), torch.randint(0, config.n_authors, (2, 9))


def test_artifact_round_trip(tmp_path, tiny, tables):
    model, config = tiny
    vocab, authors = tables
    path, size = save(tmp_path, tiny, tables)
    assert size == os.path.getsize(path)
    assert not [p for p in os.listdir(tmp_path) if p != "model.pt"]  # no temp file left behind
    artifact = load_artifact(path)
    assert artifact.vocab == vocab and artifact.authors == authors and artifact.config == config
    assert artifact.card["preset"] == "tiny" and artifact.quantized is None
    assert artifact.personas == ["Alice", "Bob"]
    assert artifact.guard is not None and artifact.guard.contains_memorized("x" * 70)
    chars, who = probe(config)
    with torch.no_grad():
        expected = model(chars, who, *model.init_state(2))
        got = artifact.module(chars, who, *artifact.module.init_state(2))
    for e, g in zip(expected, got, strict=True):
        assert torch.allclose(e, g, atol=1e-6)
    assert read_metadata(path)["format_version"] == FORMAT_VERSION


def test_int8_artifact_is_smaller_and_close(tmp_path, tiny, tables):
    model, config = tiny
    float_path, float_size = save(tmp_path, tiny, tables)
    path, size = save(tmp_path, tiny, tables, quantize="int8", name="q.pt")
    artifact = load_artifact(path)
    assert artifact.quantized == "int8"
    assert size < float_size
    chars, who = probe(config)
    with torch.no_grad():
        expected = model(chars, who, *model.init_state(2))[0].softmax(-1)
        got = artifact.module(chars, who, *artifact.module.init_state(2))[0].softmax(-1)
    difference = (expected - got).abs().max().item()
    assert 0 < difference < 0.05


def test_bad_model_files_fail_clearly(tmp_path, tiny, tables):
    path, _ = save(tmp_path, tiny, tables)
    with pytest.raises(ArtifactError, match="no such model file"):
        load_artifact(tmp_path / "missing.pt")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ArtifactError, match="not a talklike model file"):
        load_artifact(text)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(ArtifactError, match="truncated or damaged"):
        load_artifact(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(foreign))
    with pytest.raises(ArtifactError, match="not a talklike model file"):
        load_artifact(foreign)
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"model": tiny[0].state_dict()}, checkpoint)
    with pytest.raises(ArtifactError, match="training checkpoint"):
        load_artifact(checkpoint)
    assert issubclass(ArtifactError, UserError)


def test_newer_format_is_refused_with_its_version(tmp_path, tiny, tables):
    path, _ = save(tmp_path, tiny, tables)
    newer = tmp_path / "newer.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/extra/talklike.json"):
                meta = json.loads(data)
                meta["format_version"] = FORMAT_VERSION + 1
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(ArtifactError, match=rf"newer talklike \(format {FORMAT_VERSION + 1}\)"):
        load_artifact(newer)


def test_artifact_loads_with_torch_alone(tmp_path, tiny, tables):
    """A server needs only torch: no model/ or training/ code to read the file and run a step."""
    path, _ = save(tmp_path, tiny, tables)
    script = f"""
import json, sys, torch
extra = {{"talklike.json": "", "guard.bin": ""}}
module = torch.jit.load({str(path)!r}, _extra_files=extra)
meta = json.loads(extra["talklike.json"])
h, c = module.init_state(1)
logits, speaker, h, c = module(torch.tensor([[1, 5]]), torch.tensor([[1, 1]]), h, c)
assert not any(name.split(".")[0] in ("model", "training", "talklike", "bot") for name in sys.modules)
print(json.dumps({{"version": meta["format_version"], "shape": list(logits.shape), "guard": len(extra["guard.bin"])}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["version"] == FORMAT_VERSION
    assert result["shape"] == [1, 2, len(tables[0])]
    assert result["guard"] > 0


# ---------------------------------------------------------------------------------------------------
# generation


@pytest.mark.parametrize("scripted", [False, True])
def test_generator_replies(tmp_path, tiny, tables, scripted):
    model, config = tiny
    vocab, authors = tables
    module = load_artifact(save(tmp_path, tiny, tables)[0]).module if scripted else model
    generator = Generator(module, vocab, authors)
    state = generator.feed(generator.init_state(), authors.id_of("Bob"), "Hey Bob", session=True)
    assert state.h.shape == (config.num_layers, 1, config.hidden_size)
    probs = generator.next_speaker_probs(state)
    assert probs.shape == (len(authors),) and abs(float(probs.sum()) - 1) < 1e-5
    replies = generator.reply(state, 1, n=5, temperature=1.0, max_chars=12, min_chars=3, seed=3)
    assert len(replies) == 5 and all(len(r) <= 12 for r in replies)
    assert replies == generator.reply(state, 1, n=5, temperature=1.0, max_chars=12, min_chars=3, seed=3)
    # An untrained model rarely ends early, but min_chars must hold whenever it does.
    assert all(len(r) >= 3 for r in replies)
    greedy = generator.reply(state, 1, n=3, temperature=0.0, max_chars=10)
    assert greedy[0] == greedy[1] == greedy[2]
    with pytest.raises(ValueError):
        generator.next_speaker_probs(generator.init_state())
