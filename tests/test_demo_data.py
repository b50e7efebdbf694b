"""The demo data generator: determinism, persona separation, chat structure, and real-format exports."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from training.demo.chat import DemoMessage, generate_chat
from training.demo.generate import generate_demo_exports, main
from training.demo.personas import PERSONAS, persona_by_name, style_hit_rate
from training.demo.writers import (
    FILE_NOT_INCLUDED,
    OWNER_PHONE,
    write_messenger_export,
    write_telegram_export,
    write_whatsapp_export,
)
from training.import_pipeline import ImportSettings, run_import

CHAT = generate_chat(seed=7, messages=3000)


def repair(text: str) -> str:
    return text.encode("latin-1").decode("utf-8")


def texts_by(chat: list[DemoMessage], name: str) -> list[str]:
    return [m.text for m in chat if m.author == name and m.text]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ determinism

def test_same_seed_gives_identical_exports_and_another_seed_does_not(tmp_path):
    assert generate_chat(seed=7, messages=3000) == CHAT
    assert generate_chat(seed=8, messages=3000) != CHAT
    generate_demo_exports(tmp_path / "a", seed=3, messages=800)
    generate_demo_exports(tmp_path / "b", seed=3, messages=800)
    generate_demo_exports(tmp_path / "c", seed=4, messages=800)
    a, b, c = (tree_bytes(tmp_path / name) for name in "abc")
    assert a and a == b
    assert a != c


def test_message_count_order_and_numbering():
    assert len(CHAT) == 3000
    assert [m.number for m in CHAT] == list(range(3000))
    assert all(later.timestamp > earlier.timestamp for earlier, later in pairwise(CHAT))
    assert all(m.timestamp == int(m.timestamp) for m in CHAT)  # whole seconds: exact in every format
    assert generate_chat(seed=1, messages=0) == []
    with pytest.raises(ValueError):
        generate_chat(messages=-1)


# ------------------------------------------------------------------------------------------ personas

@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.user_id)
def test_markers_separate_personas(persona):
    """Own messages show the persona's markers >= 80 % of the time; everyone else's <= 15 %."""
    for seed in (7, 11):
        chat = CHAT if seed == 7 else generate_chat(seed=seed, messages=3000)
        assert style_hit_rate(persona.name, texts_by(chat, persona.name)) >= 0.8
        for other in PERSONAS:
            if other is not persona:
                assert style_hit_rate(persona.name, texts_by(chat, other.name)) <= 0.15, other.name


def test_marker_examples():
    assert persona_by_name("Ada").markers("yeah ok see u there")
    assert not persona_by_name("Ada").markers("Yeah ok see u there")
    assert persona_by_name("Boris").markers("WHERE IS EVERYBODY!!!")
    assert not persona_by_name("Boris").markers("Where is everybody!!!")
    assert persona_by_name("Chloé").markers("Ça va très bien.")
    assert persona_by_name("Dmitri").markers("I must say, the weather has been rather unkind lately.")
    assert not persona_by_name("Dmitri").markers("Short, but with a comma.")
    assert persona_by_name("Emma").markers("Done!! 👩\u200d💻")
    assert not persona_by_name("Emma").markers("Done!!")


def test_persona_lookup_and_empty_hit_rate():
    assert persona_by_name("chloé") is persona_by_name("Chloé")
    with pytest.raises(KeyError, match="Ada"):
        persona_by_name("Zed")
    assert style_hit_rate("Ada", []) == 0.0
    assert [p.user_id for p in PERSONAS] == ["user1001", "user1002", "user1003", "user1004", "user1005"]
    assert len({p.name for p in PERSONAS}) == len(PERSONAS)


# ------------------------------------------------------------------------------------------ chat structure

def test_sessions_have_bursts_and_long_gaps():
    gaps = [later.timestamp - earlier.timestamp for earlier, later in pairwise(CHAT)]
    assert sum(gap >= 3 * 3600 for gap in gaps) >= 40  # many sessions
    assert sum(gap >= 86400 for gap in gaps) >= 10  # some of them days apart
    assert statistics.median(gaps) < 120  # within a session, seconds to minutes


def test_participation_rates_differ():
    counts = Counter(m.author for m in CHAT)
    assert set(counts) == {p.name for p in PERSONAS}
    assert counts["Ada"] > counts["Boris"] > counts["Dmitri"]
    assert max(counts.values()) >= 2 * min(counts.values())


def test_replies_follow_questions_and_addressees_answer():
    by_number = {m.number: m for m in CHAT}
    replies = [m for m in CHAT if m.reply_to is not None]
    assert len(replies) >= 0.25 * len(CHAT)
    assert all(m.reply_to < m.number for m in replies)
    # Most replies answer the message just before them, and nobody answers their own question.
    assert sum(m.reply_to == m.number - 1 for m in replies) >= 0.7 * len(replies)
    questions = [m for m in CHAT if m.text.rstrip().endswith("?")]
    answered = [q for q in questions if q.number + 1 < len(CHAT) and CHAT[q.number + 1].reply_to == q.number]
    assert len(answered) >= 0.8 * len(questions)
    assert all(by_number[m.reply_to].author != m.author for m in replies if by_number[m.reply_to] in questions)
    # A question addressed to someone is answered by that person most of the time.
    mentions = {"@" + p.username: p.name for p in PERSONAS} | {p.name.upper(): p.name for p in PERSONAS}
    addressed = [(q, mentions[q.text.split()[0].rstrip(",")]) for q in questions
                 if q.text.split()[0].rstrip(",") in mentions]
    assert len(addressed) >= 50
    hits = sum(CHAT[q.number + 1].author == name for q, name in addressed if q.number + 1 < len(CHAT))
    assert hits >= 0.7 * len(addressed)


def test_media_and_pii_are_present_but_rare():
    kinds = Counter(m.kind for m in CHAT)
    assert set(kinds) == {"text", "photo", "sticker"}
    assert 0.01 <= kinds["photo"] / len(CHAT) <= 0.06
    assert 0.01 <= kinds["sticker"] / len(CHAT) <= 0.06
    assert all(m.text == "" and m.sticker_emoji for m in CHAT if m.kind == "sticker")
    assert any(m.text for m in CHAT if m.kind == "photo")  # captioned photos
    everything = "\n".join(m.text for m in CHAT)
    for pii in ("ada.lovelace@example.com", "+44 20 7946 0958", "https://example.org/x"):
        assert pii in everything
    assert sum(bool(re.search(r"@example\.|\+44 |https://", m.text)) for m in CHAT) <= 10
    short = "\n".join(m.text for m in generate_chat(seed=5, messages=12))
    assert "@example.com" in short and "+44" in short and "https://" in short


# ------------------------------------------------------------------------------------------ Telegram

def telegram_text(record: dict) -> str:
    text = record["text"]
    return text if isinstance(text, str) else "".join(p if isinstance(p, str) else p["text"] for p in text)


def test_telegram_full_account_export(tmp_path):
    path = write_telegram_export(CHAT, tmp_path)
    raw = path.read_text(encoding="utf-8")
    assert path.name == "result.json"
    assert '"personal_information"' in raw and OWNER_PHONE in raw and "Chloé" in raw  # real UTF-8, no escapes
    root = json.loads(raw)
    assert {"personal_information", "contacts", "sessions", "chats", "left_chats"} <= set(root)
    (chat,) = root["chats"]["list"]
    assert chat["name"] == "Demo group" and chat["type"] == "private_group"
    records = chat["messages"]
    speech = [r for r in records if r["type"] == "message"]
    service = [r for r in records if r["type"] == "service"]
    assert {r["action"] for r in service} == {"create_group", "invite_members", "pin_message"}
    assert len(speech) == len(CHAT)
    for record, message in zip(speech, CHAT, strict=True):
        assert record["from"] == message.author and record["from_id"] == message.author_id
        assert int(record["date_unixtime"]) == message.timestamp
        assert telegram_text(record) == message.text
        assert isinstance(record["text_entities"], list)
        assert "".join(e["text"] for e in record["text_entities"]) == message.text
    mixed = [r for r in speech if isinstance(r["text"], list)]
    assert any(isinstance(p, str) for r in mixed for p in r["text"])
    assert {p["type"] for r in mixed for p in r["text"] if isinstance(p, dict)} >= {"bold", "link", "mention"}
    assert any(isinstance(r["text"], str) and r["text"] for r in speech)
    photos = [r for r in speech if "photo" in r]
    stickers = [r for r in speech if r.get("media_type") == "sticker"]
    assert photos and all(r["photo"] == FILE_NOT_INCLUDED for r in photos)
    assert stickers and all(r["sticker_emoji"] for r in stickers)
    ids = [r["id"] for r in records]
    assert ids == sorted(set(ids))
    assert all(r["reply_to_message_id"] in ids for r in speech if "reply_to_message_id" in r)


def test_telegram_single_chat_export_has_no_account_data(tmp_path):
    path = write_telegram_export(CHAT[:200], tmp_path, chat_name="Solo", full_account=False)
    root = json.loads(path.read_text(encoding="utf-8"))
    assert root["name"] == "Solo" and "messages" in root
    assert "personal_information" not in root and OWNER_PHONE not in path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ Messenger

def test_messenger_export_is_split_newest_first_and_mojibaked(tmp_path):
    folder = write_messenger_export(CHAT, tmp_path, per_file=1000)
    assert folder == tmp_path / "your_facebook_activity/messages/inbox/demogroup_1234567890"
    files = sorted(folder.glob("message_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    assert [p.name for p in files] == ["message_1.json", "message_2.json", "message_3.json", "message_4.json"]
    raw = files[0].read_bytes()
    raw.decode("ascii")  # ensure_ascii, like a real download
    assert b"Chlo\\u00c3\\u00a9" in raw
    documents = [json.loads(p.read_bytes()) for p in files]
    stamps = [[m["timestamp_ms"] for m in d["messages"]] for d in documents]
    assert all(s == sorted(s, reverse=True) for s in stamps)
    assert all(min(newer) >= max(older) for newer, older in pairwise(stamps))  # message_1 is newest
    head = documents[0]
    assert head["thread_type"] == "RegularGroup" and head["thread_path"] == "inbox/demogroup_1234567890"
    assert {repair(p["name"]) for p in head["participants"]} == {p.name for p in PERSONAS}
    records = [m for d in reversed(documents) for m in reversed(d["messages"])]  # oldest first
    assert any(m.get("type") == "Subscribe" and repair(m["content"]).endswith("to the group.") for m in records)
    assert any(repair(m.get("content", "")).endswith("named the group Demo.") for m in records)
    assert sum(bool(m.get("is_unsent")) for m in records) == 1
    reactions = [r for m in records for r in m.get("reactions", [])]
    assert reactions and any(repair(r["reaction"]) != r["reaction"] for r in reactions)
    photos = [m for m in records if "photos" in m]
    assert photos and all({"uri", "creation_timestamp"} <= set(m["photos"][0]) for m in photos)
    # The speech survives the round trip through mojibake.
    spoken = [repair(m["content"]) for m in records if "content" in m and m.get("type") != "Subscribe"]
    expected = [m.text for m in CHAT if m.text]
    assert spoken[1:] == expected  # [0] is "… named the group Demo."


def test_messenger_legacy_root_types_every_message(tmp_path):
    folder = write_messenger_export(CHAT[:50], tmp_path, root="messages", thread="old_42")
    document = json.loads((folder / "message_1.json").read_text(encoding="ascii"))
    assert folder == tmp_path / "messages/inbox/old_42"
    assert all("type" in m for m in document["messages"])


# ------------------------------------------------------------------------------------------ WhatsApp

ANDROID = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d\d), (\d\d):(\d\d) - ")
IOS = re.compile(r"^\u200e?\[(\d\d)\.(\d\d)\.(\d\d), (\d\d):(\d\d):(\d\d)\] ")


@pytest.mark.parametrize("style", ["android", "ios"])
def test_whatsapp_export(tmp_path, style):
    path = write_whatsapp_export(CHAT, tmp_path / "WhatsApp Chat with Demo group.txt", style=style)
    raw = path.read_bytes().decode("utf-8")
    if style == "ios":
        assert raw.count("\n") == raw.count("\r\n")
        assert "\u200e[" in raw and ": \u200eimage omitted" in raw
    else:
        assert "\r" not in raw and ": <Media omitted>" in raw
    lines = raw.splitlines()
    header = IOS if style == "ios" else ANDROID
    assert "end-to-end encrypted" in lines[0] and header.match(lines[0])
    headed = [line for line in lines if header.match(line)]
    continuation = [line for line in lines if not header.match(line)]
    names = "|".join(re.escape(p.name) for p in PERSONAS)
    spoken = [line for line in headed if re.match(header.pattern + f"(?:{names}): ", line)]
    assert len(spoken) == len(CHAT)
    assert len(continuation) == sum(m.text.count("\n") for m in CHAT if m.kind == "text") > 0
    if style == "android":
        assert any(int(ANDROID.match(line).group(2)) > 12 for line in headed)  # day > 12: month-first is decidable


# ------------------------------------------------------------------------------------------ generate

def test_generate_command_writes_both_platforms(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--seed", "3", "--messages", "500"]) == 0
    out = capsys.readouterr().out
    assert "messenger" in out and "telegram" in out and "Ada" in out
    telegram = json.loads((tmp_path / "telegram/result.json").read_text(encoding="utf-8"))
    speech = [r for r in telegram["chats"]["list"][0]["messages"] if r["type"] == "message"]
    folder = tmp_path / "messenger/your_facebook_activity/messages/inbox/demogroup_1234567890"
    document = json.loads((folder / "message_1.json").read_text(encoding="ascii"))
    assert len(speech) == 300  # the newest 60 %
    assert max(m["timestamp_ms"] for m in document["messages"]) / 1000 <= min(int(r["date_unixtime"]) for r in speech)
    assert {repair(p["name"]) for p in document["participants"]} == {r["from"] for r in speech}  # same people


def test_generate_command_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--messages", "0"])
    assert exit_info.value.code == 2
    assert "--messages" in capsys.readouterr().err


def test_demo_exports_import_cleanly_and_keep_each_persona_style(tmp_path):
    """What `make demo` relies on: both exports import, account data stays behind, styles survive."""
    generate_demo_exports(tmp_path, seed=7, messages=600)
    result = run_import([str(tmp_path)], ImportSettings())
    assert not result.failed
    corpus = "\n".join(m.to_json() for m in result.messages)
    for private in (OWNER_PHONE, "+1 555 01", "203.0.113.42", "Lovelace"):
        assert private not in corpus
    assert {m.platform for m in result.messages} == {"messenger", "telegram"}
    assert {m.author for m in result.messages} == {p.name for p in PERSONAS}  # Chloé repaired, not "ChloÃ©"
    for persona in PERSONAS:
        texts = [m.text for m in result.messages if m.author == persona.name and m.kind == "text"]
        assert style_hit_rate(persona.name, texts) >= 0.8
