"""WhatsApp `.txt` exports: every header variant, date order, senders, placeholders, privacy."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talklike.cli import main
from training.corpus import KINDS
from training.importers import whatsapp
from training.importers.base import FileReport, ImportOptions, SourceFile
from training.importers.pseudonyms import ENV

PHONE = "\u202a+1\u00a0555\u2011123\u20114567\u202c"
PHONE_DIGITS = "15551234567"


def parse_text(text: str, path: str = "WhatsApp Chat with Bob.txt", **options):
    report = FileReport(path)
    source = SourceFile(path, text.encode("utf-8"))
    messages = list(whatsapp.parse(source, report, ImportOptions(**options)))
    return messages, report


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "line, author, text, when",
    [
        ("12/28/19, 21:43 - Ada: hello", "Ada", "hello", (2019, 12, 28, 21, 43)),
        ("2/4/23, 10:35 PM - Ada: late", "Ada", "late", (2023, 2, 4, 22, 35)),
        ("2/4/23, 10:35\u202fPM - Ada: narrow space", "Ada", "narrow space", (2023, 2, 4, 22, 35)),
        ("12/28/19, 12:05 AM - Ada: midnight", "Ada", "midnight", (2019, 12, 28, 0, 5)),
        ("[20.06.19, 15:58:57] Ada: ios", "Ada", "ios", (2019, 6, 20, 15, 58, 57)),
        ("[9/17/19, 8:30:52 AM] Ada: ios us", "Ada", "ios us", (2019, 9, 17, 8, 30, 52)),
        ("\u200e[20.06.19, 15:58:57] Ada: marked", "Ada", "marked", (2019, 6, 20, 15, 58, 57)),
        ("13.6.2018 klo 21.25.15 - Ada: finnish", "Ada", "finnish", (2018, 6, 13, 21, 25, 15)),
        ("13. 6. 2018. 21:25:15 Ada: croatian", "Ada", "croatian", (2018, 6, 13, 21, 25, 15)),
        ("3/6/18, 1:55 p.m. - Ada: dotted pm", "Ada", "dotted pm", (2018, 3, 6, 13, 55)),
        ("[3/6/18 1:55:00 p. m.] Ada: spaced pm", "Ada", "spaced pm", (2018, 3, 6, 13, 55)),
        ("03-06-2018, 01.55 PM - Ada: dashes", "Ada", "dashes", (2018, 6, 3, 13, 55)),
        ("[2018/06/13, 21:25:15] Ada: year first", "Ada", "year first", (2018, 6, 13, 21, 25, 15)),
        ("28.12.19, 21:43 - Ada: german", "Ada", "german", (2019, 12, 28, 21, 43)),
        ("20/06/2019 15:58:57: Ada: old ios", "Ada", "old ios", (2019, 6, 20, 15, 58, 57)),
    ],
)
def test_header_variants(line, author, text, when):
    assert whatsapp.sniff(line + "\n")
    messages, report = parse_text(line + "\n")
    assert len(messages) == 1, report.skipped
    message = messages[0]
    assert (message.author, message.text, message.kind) == (author, text, "text")
    assert message.timestamp == utc(*when)
    assert message.author_id is None
    assert message.conversation == "whatsapp:Bob" and message.platform == "whatsapp"


@pytest.mark.parametrize(
    "lines, options, expected",
    [
        # a first field above 12 anywhere in the file settles day first for the whole file
        (["3/6/18, 10:00 - A: x", "13/6/18, 10:00 - A: y"], {}, [(2018, 6, 3, 10), (2018, 6, 13, 10)]),
        # a second field above 12 settles month first
        (["3/6/18, 10:00 - A: x", "3/13/18, 10:00 - A: y"], {}, [(2018, 3, 6, 10), (2018, 3, 13, 10)]),
        # undecided: slashes default to month first, dots to day first
        (["3/6/18, 10:00 - A: x"], {}, [(2018, 3, 6, 10)]),
        (["03.06.18, 10:00 - A: x"], {}, [(2018, 6, 3, 10)]),
        # the option wins over the custom
        (["3/6/18, 10:00 - A: x"], {"day_first": True}, [(2018, 6, 3, 10)]),
        (["03.06.18, 10:00 - A: x"], {"day_first": False}, [(2018, 3, 6, 10)]),
        # a file switching style midway: each style is decided on its own values
        (["12/28/19, 21:43 - A: android", "[03.01.20, 10:00:00] A: ios"], {}, [(2019, 12, 28, 21, 43), (2020, 1, 3, 10)]),
    ],
)
def test_day_first_inference(lines, options, expected):
    messages, _ = parse_text("\n".join(lines) + "\n", **options)
    assert [message.timestamp for message in messages] == [utc(*when) for when in expected]


def test_continuation_lines_and_blank_lines_stay_in_the_message():
    text = "12/28/19, 21:43 - Ada: first line\nsecond line\n\n    indented code\n12/28/19, 21:44 - Bob: next\n"
    messages, _ = parse_text(text)
    assert [m.text for m in messages] == ["first line\nsecond line\n\n    indented code", "next"]


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_line_endings(newline):
    text = newline.join(["12/28/19, 21:43 - Ada: one", "two", "12/28/19, 21:44 - Bob: three", ""])
    messages, _ = parse_text(text)
    assert [(m.author, m.text) for m in messages] == [("Ada", "one\ntwo"), ("Bob", "three")]


def test_mixed_line_endings():
    text = "12/28/19, 21:43 - Ada: one\r\ntwo\n12/28/19, 21:44 - Bob: three\r\n"
    messages, _ = parse_text(text)
    assert [(m.author, m.text) for m in messages] == [("Ada", "one\ntwo"), ("Bob", "three")]


def test_system_lines_are_skipped_and_counted():
    android = (
        "12/28/19, 21:43 - Messages to this group are now secured with end-to-end encryption. Tap for more info.\n"
        "12/28/19, 21:43 - Ada created group \"Trip\"\n"
        "12/28/19, 21:44 - Ada: hello\n"
    )
    ios = (
        "[20.06.19, 15:58:57] Trip: \u200eMessages and calls are end-to-end encrypted.\n"
        "[20.06.19, 15:58:58] Ada: \u200eAda changed the group description\n"
        "[20.06.19, 15:59:00] Ada: hello\n"
    )
    messages, report = parse_text(android)
    assert [m.text for m in messages] == ["hello"]
    assert report.skipped == {"system": 2}
    messages, report = parse_text(ios)
    assert [m.text for m in messages] == ["hello"]
    assert report.skipped == {"system": 1, "app line: encryption notice": 1}


def test_ios_media_with_a_sender_and_a_mark_is_media_not_speech():
    text = (
        "[20.06.19, 15:58:57] Ada: \u200eimage omitted\n"
        "\u200e[20.06.19, 15:58:58] Ada: \u200e<attached: 00000042-PHOTO-2019-06-20-15-58-57.jpg>\n"
        "[20.06.19, 15:58:59] Ada: \u200e<attached: 00000043-AUDIO-2019-06-20-15-58-59.opus>\n"
        "[20.06.19, 15:59:00] Ada: \u200eThis message was deleted.\n"
    )
    messages, report = parse_text(text)
    assert [(m.kind, m.text) for m in messages] == [("photo", ""), ("photo", ""), ("audio", "")]
    assert report.skipped["deleted"] == 1


@pytest.mark.parametrize(
    "body, kind, text",
    [
        ("<Media omitted>", "other", ""),
        ("image omitted", "photo", ""),
        ("video omitted", "video", ""),
        ("audio omitted", "audio", ""),
        ("sticker omitted", "sticker", ""),
        ("GIF omitted", "gif", ""),
        ("document omitted", "file", ""),
        ("Report.pdf \u2022 3 pages document omitted", "file", ""),
        ("Bild weggelassen", "photo", ""),
        ("Video weggelassen", "video", ""),
        ("<Medien ausgeschlossen>", "other", ""),
        ("<attached: 00000042-PHOTO-2019-06-20-15-58-57.jpg>", "photo", ""),
        ("<attached: 00000044-VIDEO-2019-06-20-15-59-01.mp4>", "video", ""),
        ("<attached: 00000045-Bob.vcf>", "contact", ""),
        ("IMG-20200101-WA0001.jpg (file attached)\nlook at this", "photo", "look at this"),
        ("PTT-20200101-WA0002.opus (file attached)", "voice", ""),
        ("Bob.vcf (file attached)", "contact", ""),
        ("location: https://maps.google.com/?q=48.8584,2.2945", "location", ""),
        ("POLL:\nWhere to eat?\nOPTION: Pizza (2 votes)\nOPTION: Sushi (1 vote)", "poll", "Where to eat?"),
    ],
)
def test_media_placeholders(body, kind, text):
    messages, _ = parse_text(f"12/28/19, 21:43 - Ada: {body}\n")
    assert [(m.kind, m.text) for m in messages] == [(kind, text)]


def test_deleted_messages_are_skipped_and_edit_marks_removed():
    text = (
        "12/28/19, 21:43 - Ada: This message was deleted\n"
        "12/28/19, 21:43 - Bob: You deleted this message\n"
        "12/28/19, 21:44 - Ada: see you at 8 <This message was edited>\n"
    )
    messages, report = parse_text(text)
    assert [m.text for m in messages] == ["see you at 8"]
    assert report.skipped["deleted"] == 2


def test_text_that_merely_mentions_media_is_speech():
    messages, _ = parse_text("12/28/19, 21:43 - Ada: the image omitted from the report (sadly) <3\n")
    assert [(m.kind, m.text) for m in messages] == [("text", "the image omitted from the report (sadly) <3")]


def test_sender_names_are_cleaned():
    text = (
        "12/28/19, 21:43 - ~\u202fCarla: tilde\n"
        "12/28/19, 21:44 - Bob : trailing space\n"
        "12/28/19, 21:45 - \u200eDee\u00a0Dee: marks\n"
    )
    messages, _ = parse_text(text)
    assert [m.author for m in messages] == ["Carla", "Bob", "Dee Dee"]


def test_text_loses_direction_marks_and_no_break_spaces():
    messages, _ = parse_text("12/28/19, 21:43 - Ada: a\u00a0b\u202fc\u200fd\n")
    assert messages[0].text == "a b cd"


def test_phone_number_senders_never_reach_the_corpus():
    text = (
        f"12/28/19, 21:43 - {PHONE}: hi from an unsaved number\n"
        f"12/28/19, 21:44 - Ada: hey @\u2068+1 555 123 4567\u2069 welcome\n"
        f"12/28/19, 21:45 - {PHONE} joined using this group's invite link\n"
    )
    messages, report = parse_text(text, path=f"WhatsApp Chat with {PHONE}.txt")
    expected = whatsapp.pseudonym(PHONE_DIGITS)
    assert expected.startswith("Contact ") and len(expected) == len("Contact ") + 6
    assert messages[0].author == expected and messages[0].author_id is None
    assert messages[1].text == f"hey @{expected} welcome"
    assert messages[0].conversation == f"whatsapp:{expected}"
    # The pseudonym's hex digits come from a random key and may happen to hold "555": look around them.
    dumped = "".join(m.to_json() for m in messages).replace(expected, "Contact ⟨pseudonym⟩")
    for needle in (PHONE_DIGITS, "555", "4567"):
        assert needle not in dumped


def test_pseudonym_is_stable_across_spellings():
    assert whatsapp.pseudonym(PHONE) == whatsapp.pseudonym("+1 555-123-4567") == whatsapp.pseudonym(PHONE_DIGITS)
    assert whatsapp.pseudonym("+1 555 123 4568") != whatsapp.pseudonym(PHONE)


def test_pseudonym_is_keyed_so_a_candidate_number_cannot_be_confirmed():
    key, other = b"k" * 32, b"o" * 32
    named = whatsapp.pseudonym(PHONE, key)
    assert named == whatsapp.pseudonym("+1 555-123-4567", key)  # stable under one key
    assert named != whatsapp.pseudonym(PHONE, other)
    unkeyed = hashlib.sha256(PHONE_DIGITS.encode()).hexdigest()[:6]  # what the earlier pseudonym was
    assert named != "Contact " + unkeyed
    messages, _ = parse_text(f"12/28/19, 21:43 - {PHONE}: hi\n", pseudonym_key=lambda: key)
    assert messages[0].author == named


def test_the_key_is_fetched_only_for_phone_number_senders():
    asked = []
    parse_text("12/28/19, 21:43 - Ada: hi 0171 2345678\n", pseudonym_key=lambda: asked.append(1) or b"k" * 32)
    assert not asked


def _import(capsys, *argv):
    code = main(["import", *map(str, argv), "--json"])
    return code, capsys.readouterr()


def test_pseudonyms_are_stable_across_imports_with_one_key_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    export = tmp_path / "WhatsApp Chat with Group.txt"
    export.write_text(f"12/28/19, 21:43 - {PHONE}: hi\n12/28/19, 21:44 - Ada: hey\n", encoding="utf-8")
    assert _import(capsys, export, "-o", tmp_path / "a.jsonl")[0] == 0
    key_file = tmp_path / "config" / "talklike" / "pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = bytes.fromhex(key_file.read_text())
    assert _import(capsys, export, "-o", tmp_path / "b.jsonl")[0] == 0
    first, again = (tmp_path / "a.jsonl").read_text(), (tmp_path / "b.jsonl").read_text()
    assert first == again and whatsapp.pseudonym(PHONE, key) in first
    assert key.hex() not in first and PHONE_DIGITS not in first
    # another key (a file of its own, or the environment) names the same number differently
    assert _import(capsys, export, "-o", tmp_path / "c.jsonl", "--pseudonym-key-file", tmp_path / "own.key")[0] == 0
    assert whatsapp.pseudonym(PHONE, key) not in (tmp_path / "c.jsonl").read_text()
    monkeypatch.setenv(ENV, "a passphrase of my own")
    assert _import(capsys, export, "-o", tmp_path / "d.jsonl")[0] == 0
    assert whatsapp.pseudonym(PHONE, b"a passphrase of my own") in (tmp_path / "d.jsonl").read_text()


def test_a_bad_key_is_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    export = tmp_path / "WhatsApp Chat with Group.txt"
    export.write_text(f"12/28/19, 21:43 - {PHONE}: hi\n", encoding="utf-8")
    (tmp_path / "bad.key").write_text("not hex")
    out = tmp_path / "corpus.jsonl"
    out.write_text("precious\n")
    code, captured = _import(capsys, export, "-o", out, "--pseudonym-key-file", tmp_path / "bad.key")
    assert code == 2 and f"{tmp_path / 'bad.key'}: not a pseudonym key" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert out.read_text() == "precious\n"
    monkeypatch.setenv(ENV, "short")
    code, captured = _import(capsys, export, "-o", out)
    assert code == 2 and f"{ENV} is too short" in captured.err


def test_name_holding_a_colon_is_kept_whole():
    text = "".join(f"12/28/19, 21:4{i} - Dr: Who: message {i}\n" for i in range(3))
    text += "12/28/19, 21:50 - Ada: Note: this colon is text\n12/28/19, 21:51 - Ada: plain\n"
    messages, _ = parse_text(text)
    assert [(m.author, m.text) for m in messages] == [
        ("Dr: Who", "message 0"), ("Dr: Who", "message 1"), ("Dr: Who", "message 2"),
        ("Ada", "Note: this colon is text"), ("Ada", "plain"),
    ]


@pytest.mark.parametrize(
    "path, name",
    [
        ("WhatsApp Chat with Bob.txt", "Bob"),
        ("exports/WhatsApp Chat - Bob.zip!_chat.txt", "Bob"),
        ("WhatsApp Chat with Family Group.txt", "Family Group"),
        ("WhatsApp-Chat mit Oma.txt", "Oma"),
        ("unpacked/WhatsApp Chat - Bob/_chat.txt", "Bob"),
        ("outer.zip!WhatsApp Chat - Bob.zip!_chat.txt", "Bob"),
        ("random.txt", "random"),
    ],
)
def test_conversation_key_from_the_file_name(path, name):
    messages, _ = parse_text("12/28/19, 21:43 - Ada: hi\n", path=path)
    assert messages[0].conversation == f"whatsapp:{name}"


def test_text_before_the_first_header_is_counted():
    messages, report = parse_text("stray line\n\n12/28/19, 21:43 - Ada: hi\n")
    assert [m.text for m in messages] == ["hi"]
    assert report.skipped["text before the first message"] == 1


def test_empty_message_is_skipped():
    messages, report = parse_text("12/28/19, 21:43 - Ada: \n12/28/19, 21:44 - Ada: ok\n")
    assert [m.text for m in messages] == ["ok"]
    assert report.skipped["empty"] == 1


def test_impossible_dates_give_no_timestamp_instead_of_failing():
    messages, _ = parse_text("31/31/19, 21:43 - Ada: hi\n12/28/19, 25:43 - Ada: ho\n")
    assert [m.timestamp for m in messages] == [None, None]


@pytest.mark.parametrize(
    "head",
    [
        json.dumps({"messages": [{"from": "a", "date": "2020-01-01T00:00:00"}]}),
        "author,text\nAda,hi\n",
        "just some notes\nwith no dates\n",
        "2020-01-01 10:00 meeting notes\n",
        '{"conversation": "whatsapp:Bob", "author": "Ada", "text": "hi"}\n',
    ],
)
def test_sniff_rejects_other_formats(head):
    assert not whatsapp.sniff(head)


def test_sniff_accepts_a_file_starting_with_blank_lines_and_a_bom():
    assert whatsapp.sniff("\ufeff\n\n[20.06.19, 15:58:57] Ada: hi\n")


def test_large_file_is_cut_into_chunks_without_losing_messages(monkeypatch):
    monkeypatch.setattr(whatsapp, "_CHUNK", 64)
    lines = [f"12/28/19, 21:{i % 60:02d} - {'Ada' if i % 2 else 'Bob'}: message {i}\nmore {i}" for i in range(200)]
    messages, _ = parse_text("\n".join(lines) + "\n")
    assert [m.text for m in messages] == [f"message {i}\nmore {i}" for i in range(200)]


@pytest.mark.parametrize(
    "body",
    [
        "I read book.pdf (great read)",
        "<note: not an attachment>",
        "meet at 8 (or 9)",
    ],
)
def test_speech_that_looks_like_an_attachment_stays_speech(body):
    messages, _ = parse_text(f"12/28/19, 21:43 - Ada: {body}\n")
    assert [(m.kind, m.text) for m in messages] == [("text", body)]


def test_mentions_of_numbers_are_pseudonymized_and_of_names_kept():
    text = "12/28/19, 21:43 - Ada: @15551234567 12 apples for @\u2068Bob Smith\u2069\n"
    messages, _ = parse_text(text)
    assert messages[0].text == f"@{whatsapp.pseudonym(PHONE_DIGITS)} 12 apples for @Bob Smith"


def test_a_phone_number_inside_a_saved_name_is_replaced():
    messages, _ = parse_text("12/28/19, 21:43 - Plumber +1 555 123 4567: fixed it\n12/28/19, 21:44 - Flat 12B: hi\n")
    assert [m.author for m in messages] == [f"Plumber {whatsapp.pseudonym(PHONE_DIGITS)}", "Flat 12B"]


def test_zipped_export_end_to_end(tmp_path):
    import zipfile

    from training.import_pipeline import ImportSettings, run_import

    archive = tmp_path / "WhatsApp Chat - Bob.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("_chat.txt", "\ufeff[20.06.19, 15:58:57] Bob: hi\r\n[20.06.19, 15:59:01] Ada: \u200eimage omitted\r\n")
        out.writestr("00000042-PHOTO-2019-06-20-15-58-57.jpg", b"\xff\xd8\xff")
    result = run_import([str(archive)], ImportSettings())
    assert [report.format for report in result.files] == ["whatsapp"]
    assert [(m.conversation, m.author, m.kind, m.text) for m in result.messages] == [
        ("whatsapp:Bob", "Bob", "text", "hi"), ("whatsapp:Bob", "Ada", "photo", ""),
    ]


_FRAGMENTS = [
    "12/28/19, 21:43 - ", "[20.06.19, 15:58:57] ", "13. 6. 2018. 21:25:15 ", "2/4/23, 10:35\u202fPM - ",
    "99/99/99, 99:99 - ", "Ada: ", f"{PHONE}: ", "~\u202fEve: ", "Dr: Who: ", "\u200e", "\u2068", "<Media omitted>",
    "<attached: 00000042-PHOTO-2019-06-20-15-58-57.jpg>", "image omitted", "POLL:", "@15551234567",
    "<This message was edited>", "This message was deleted", "\n", "\r\n", " ", "text", "😂", ":", "(", ")",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=40), st.sampled_from([None, True, False]))
def test_any_mix_of_fragments_parses_cleanly(pieces, day_first):
    messages, _ = parse_text("".join(pieces), day_first=day_first)
    for message in messages:
        assert message.author and message.author_id is None
        assert message.kind in KINDS
        assert message.timestamp is None or isinstance(message.timestamp, float)
        assert PHONE_DIGITS not in message.to_json()


def test_a_colon_name_ending_in_a_phone_number_is_still_pseudonymized():
    text = "".join(f"12/28/19, 21:4{i} - Work: {PHONE}: note {i}\n" for i in range(3))
    messages, _ = parse_text(text)
    assert [m.text for m in messages] == ["note 0", "note 1", "note 2"]
    assert {m.author for m in messages} == {f"Work: {whatsapp.pseudonym(PHONE_DIGITS)}"}
    assert PHONE_DIGITS not in "".join(m.to_json() for m in messages)
