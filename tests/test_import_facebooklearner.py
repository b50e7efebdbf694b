"""FacebookLearner messages.json: authors by pseudonym, one conversation, no timestamps, no emails kept."""

from __future__ import annotations

import json

import pytest

from training.importers import facebooklearner
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile

DOC = {
    "letters": "abcdefghijklmnopqrstuvwxyz ",
    "authors": [{"email": "ada@example.org", "name": "Ada"}, {"email": "bob@example.org", "name": "Bob"}],
    "messages": [
        {"email": "ada@example.org", "message": "hi bob"},
        {"email": "bob@example.org", "message": "hi ada"},
        {"email": "stranger@example.org", "message": "who am i"},
        {"email": "ada@example.org", "message": "   "},
        {"email": "ada@example.org", "message": 42},
        {"message": "no sender"},
    ],
}


def parse_doc(doc: object):
    report = FileReport("messages.json")
    source = SourceFile("messages.json", json.dumps(doc).encode())
    return list(facebooklearner.parse(source, report, ImportOptions())), report


def test_messages_in_order_with_names_and_no_timestamps():
    messages, report = parse_doc(DOC)
    assert [(m.author, m.text) for m in messages] == [
        ("Ada", "hi bob"), ("Bob", "hi ada"), ("Unknown", "who am i"), ("Unknown", "no sender"),
    ]
    assert all(m.timestamp is None and m.kind == "text" and m.platform == "facebooklearner" for m in messages)
    assert report.skipped == {"empty": 1, "malformed message": 1}


def test_emails_never_reach_the_corpus_and_ids_are_stable_pseudonyms():
    messages, _ = parse_doc(DOC)
    dumped = "\n".join(m.to_json() for m in messages)
    assert "@" not in dumped and "example.org" not in dumped
    ada = facebooklearner.author_id("ada@example.org")
    assert ada.startswith("fbl:") and len(ada) == len("fbl:") + 8
    assert messages[0].author_id == ada
    assert messages[1].author_id == facebooklearner.author_id("bob@example.org") != ada
    assert messages[2].author_id == facebooklearner.author_id("stranger@example.org")
    assert messages[3].author_id is None


def test_one_conversation_keyed_by_the_author_list():
    messages, _ = parse_doc(DOC)
    keys = {m.conversation for m in messages}
    assert len(keys) == 1
    (key,) = keys
    assert key.startswith("facebooklearner:") and len(key.split(":", 1)[1]) == 8
    reordered = dict(DOC, authors=list(reversed(DOC["authors"])))
    assert parse_doc(reordered)[0][0].conversation == key
    other = dict(DOC, authors=[{"email": "eve@example.org", "name": "Eve"}])
    assert parse_doc(other)[0][0].conversation != key


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ([], "JSON object"),
        ({"letters": "", "authors": "x", "messages": []}, "'authors'"),
        ({"letters": "", "authors": [], "messages": None}, "'messages'"),
    ],
)
def test_wrong_structure_is_a_clear_parse_error(doc, fragment):
    with pytest.raises(ParseError) as caught:
        parse_doc(doc)
    assert fragment in str(caught.value)


def test_invalid_json_names_line_and_column():
    source = SourceFile("messages.json", b'{"letters": "a",\n "authors": [}')
    with pytest.raises(ParseError) as caught:
        list(facebooklearner.parse(source, FileReport("messages.json"), ImportOptions()))
    assert "line 2" in str(caught.value) and "column" in str(caught.value)


def test_sniff():
    assert facebooklearner.sniff(json.dumps(DOC))
    assert facebooklearner.sniff(json.dumps(DOC, indent=2)[:200])
    assert not facebooklearner.sniff(json.dumps({"messages": [{"sender_name": "A", "content": "x"}], "participants": []}))
    assert not facebooklearner.sniff(json.dumps({"name": "g", "type": "private_group", "id": 1, "messages": []}))
    assert not facebooklearner.sniff('{"conversation": "c", "author": "A", "text": "letters authors email"}\n')


def test_detection_picks_facebooklearner():
    from training.importers.detect import detect

    assert detect(json.dumps(DOC, indent=2).encode()) is facebooklearner
