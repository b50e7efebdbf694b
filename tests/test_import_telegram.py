"""Telegram Desktop result.json: single chats, full-account exports, text entities, media, privacy."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from training.importers import telegram
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile

PLACEHOLDER = "(File not included. Change data exporting settings to download.)"


def msg(id_: int, **fields) -> dict:
    base = {"id": id_, "type": "message", "date": "2023-01-02T10:11:12", "date_unixtime": "1672654272",
            "from": "Ada", "from_id": "user1", "text": "", "text_entities": []}
    base.update(fields)
    return base


def chat(*messages: dict, **fields) -> dict:
    base = {"name": "Group", "type": "private_group", "id": 4815162342, "messages": list(messages)}
    base.update(fields)
    return base


def parse_doc(doc: object, raw: str | None = None):
    data = (raw if raw is not None else json.dumps(doc, ensure_ascii=False)).encode("utf-8")
    report = FileReport("result.json")
    messages = list(telegram.parse(SourceFile("result.json", data), report, ImportOptions()))
    return messages, report


def test_single_chat_export():
    messages, _ = parse_doc(chat(msg(1, text="see you at 8 😂")))
    (message,) = messages
    assert message.conversation == "telegram:4815162342"
    assert message.platform == "telegram"
    assert (message.author, message.author_id) == ("Ada", "user1")
    assert message.timestamp == 1672654272.0
    assert (message.text, message.kind) == ("see you at 8 😂", "text")


def test_entity_list_is_joined_with_the_empty_string():
    text = ["Hello ", {"type": "bold", "text": "world"}, "!"]
    messages, _ = parse_doc(chat(msg(1, text=text)))
    assert messages[0].text == "Hello world!"


def test_entities_of_every_type_keep_their_text():
    text = [{"type": "link", "text": "https://x.org"}, " and ", {"type": "mention_name", "text": "Bob", "user_id": 9},
            {"type": "unknown_future_type"}, " ok"]
    messages, _ = parse_doc(chat(msg(1, text=text)))
    assert messages[0].text == "https://x.org and Bob ok"


def test_service_and_unsupported_messages_are_skipped_with_reasons():
    doc = chat(
        {"id": 1, "type": "service", "date": "2023-01-02T10:00:00", "actor": "Ada", "actor_id": "user1",
         "action": "create_group", "title": "Group", "members": ["Ada"]},
        {"id": 2, "type": "service", "date": "2023-01-02T10:00:00", "actor": "Ada", "action": "phone_call"},
        {"id": 3, "type": "service", "date": "2023-01-02T10:00:00"},
        {"id": 4, "type": "unsupported", "date": "2023-01-02T10:00:00"},
        msg(5, text="real"),
    )
    messages, report = parse_doc(doc)
    assert [m.text for m in messages] == ["real"]
    assert report.skipped == {"service: create_group": 1, "service: phone_call": 1, "service": 1, "unsupported": 1}


def test_deleted_account_and_old_integer_ids():
    doc = chat(msg(1, text="ghost", **{"from": None, "from_id": "user77"}), msg(2, text="old", from_id=12345))
    messages, _ = parse_doc(doc)
    assert [(m.author, m.author_id) for m in messages] == [("Deleted Account", "user77"), ("Ada", "user12345")]


def test_channel_ids_are_kept():
    messages, _ = parse_doc(chat(msg(1, text="post", **{"from": "News", "from_id": "channel99"}), type="public_channel"))
    assert (messages[0].author, messages[0].author_id) == ("News", "channel99")


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"date_unixtime": "1672654272"}, 1672654272.0),
        ({"date_unixtime": None, "date": "2023-01-02T10:11:12"}, datetime(2023, 1, 2, 10, 11, 12, tzinfo=timezone.utc).timestamp()),
        ({"date_unixtime": "garbage", "date": "not a date"}, None),
        ({"date_unixtime": "\u00b2", "date": 5}, None),  # a superscript digit is no number
    ],
)
def test_timestamps(fields, expected):
    item = msg(1, text="hi")
    item.update(fields)
    if item["date_unixtime"] is None:
        del item["date_unixtime"]
    messages, _ = parse_doc(chat(item))
    assert messages[0].timestamp == expected


def test_old_edited_marker_breaks_nothing():
    messages, _ = parse_doc(chat(msg(1, text="hi", edited="1970-01-01T05:00:00")))
    assert [m.text for m in messages] == ["hi"]


@pytest.mark.parametrize(
    "fields, kind, text",
    [
        ({"photo": PLACEHOLDER, "width": 1, "height": 1}, "photo", ""),
        ({"photo": "photos/p.jpg", "text": "caption here"}, "photo", "caption here"),
        ({"file": PLACEHOLDER, "media_type": "sticker", "sticker_emoji": "😂"}, "sticker", "😂"),
        ({"file": PLACEHOLDER, "media_type": "voice_message", "duration_seconds": 3}, "voice", ""),
        ({"file": PLACEHOLDER, "media_type": "video_message"}, "video", ""),
        ({"file": "v.mp4", "media_type": "video_file", "text": "look"}, "video", "look"),
        ({"file": PLACEHOLDER, "media_type": "animation"}, "gif", ""),
        ({"file": PLACEHOLDER, "media_type": "audio_file", "performer": "X", "title": "Y"}, "audio", ""),
        ({"file": PLACEHOLDER, "mime_type": "application/pdf"}, "file", ""),
        ({"location_information": {"latitude": 48.85, "longitude": 2.29}}, "location", ""),
        ({"poll": {"question": "Pizza?", "closed": False, "answers": []}}, "poll", "Pizza?"),
        ({"text": PLACEHOLDER}, None, None),  # a placeholder alone is not speech
    ],
)
def test_media_kinds(fields, kind, text):
    messages, report = parse_doc(chat(msg(1, **fields)))
    if kind is None:
        assert messages == [] and report.skipped["empty"] == 1
    else:
        assert [(m.kind, m.text) for m in messages] == [(kind, text)]
        assert PLACEHOLDER not in messages[0].text


def test_shared_contact_keeps_no_phone_number():
    contact = {"first_name": "Eve", "last_name": "Secret", "phone_number": "+44 7700 900123"}
    messages, _ = parse_doc(chat(msg(1, contact_information=contact, contact_vcard="contacts/c.vcf", text="+44 7700 900123")))
    assert [(m.kind, m.text) for m in messages] == [("contact", "")]
    dumped = messages[0].to_json()
    assert "7700" not in dumped and "900123" not in dumped and "Secret" not in dumped


def test_forwarded_message_belongs_to_the_forwarder():
    messages, _ = parse_doc(chat(msg(1, text="fwd", forwarded_from="Someone Else", **{"from": "Bob", "from_id": "user2"})))
    assert (messages[0].author, messages[0].author_id) == ("Bob", "user2")


def test_empty_text_messages_are_skipped():
    messages, report = parse_doc(chat(msg(1, text=""), msg(2, text="   "), msg(3, text="ok")))
    assert [m.text for m in messages] == ["ok"]
    assert report.skipped["empty"] == 2


def test_full_account_export_reads_only_chats_and_keeps_no_personal_data():
    doc = {
        "about": "Here is the data you requested.",
        "personal_information": {"user_id": 1, "first_name": "Ada", "last_name": "Privatename",
                                 "phone_number": "+1 202 555 0199", "username": "@ada_private", "bio": "secret bio"},
        "profile_pictures": [{"date": "2020-01-01T00:00:00", "photo": "profile/p.jpg"}],
        "contacts": {"about": "...", "list": [{"first_name": "Eve", "last_name": "Contactname",
                                               "phone_number": "+44 20 7946 0958", "date": "2020-01-01T00:00:00"}]},
        "frequent_contacts": {"about": "...", "list": [{"id": 5, "category": "people", "name": "Frequentname"}]},
        "sessions": {"about": "...", "list": [{"ip": "203.0.113.77", "device": "Sessiondevice"}]},
        "chats": {"about": "...", "list": [
            chat(msg(1, text="in group")),
            {"type": "saved_messages", "id": 1, "messages": [msg(2, text="note to self")]},
        ]},
        "left_chats": {"about": "...", "list": [chat(msg(3, text="old group"), id=777, name="Left")]},
    }
    messages, _ = parse_doc(doc)
    assert [(m.conversation, m.text) for m in messages] == [
        ("telegram:4815162342", "in group"), ("telegram:1", "note to self"), ("telegram:777", "old group"),
    ]
    dumped = "\n".join(m.to_json() for m in messages)
    for secret in ("Privatename", "202 555", "0199", "ada_private", "secret bio", "Contactname", "7946", "0958",
                   "Frequentname", "203.0.113.77", "Sessiondevice"):
        assert secret not in dumped


def test_invalid_json_names_line_and_column():
    raw = '{\n  "name": "Group",\n  "messages": [\n    {"id": 1,, "type": "message"}\n  ]\n}'
    with pytest.raises(ParseError) as caught:
        parse_doc(None, raw=raw)
    assert "line 4" in str(caught.value) and "column" in str(caught.value)


def test_raw_control_characters_in_strings_are_tolerated():
    raw = json.dumps(chat(msg(1, text="tab\there"))).replace("\\t", "\t")
    messages, _ = parse_doc(None, raw=raw)
    assert messages[0].text == "tab\there"


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ([1, 2], "JSON object"),
        ({"name": "x", "messages": {"a": 1}}, "'messages' must be a list"),
        ({"chats": {"list": "nope"}}, "'chats.list' must be a list"),
        ({"name": "x"}, "no 'messages' or 'chats'"),
    ],
)
def test_wrong_structure_is_a_clear_parse_error(doc, fragment):
    with pytest.raises(ParseError) as caught:
        parse_doc(doc)
    assert fragment in str(caught.value)


def test_malformed_messages_are_skipped_not_fatal():
    messages, report = parse_doc(chat("not a message", msg(1, text=["ok", 5, {"text": 3}], **{"from": 42})))
    assert [(m.author, m.text) for m in messages] == [("Unknown", "ok")]
    assert report.skipped["malformed message"] == 1


@pytest.mark.parametrize(
    "head",
    [
        json.dumps(chat(msg(1, text="hi")), indent=1),
        json.dumps(chat(msg(1, text="hi"), type="saved_messages"))[:60],  # cut mid-document
        '{\n "about": "Here is the data you requested.",\n "personal_information": {\n  "user_id": 1,',
        json.dumps({"about": "x", "chats": {"about": "y", "list": []}}),
    ],
)
def test_sniff_accepts_telegram_exports(head):
    assert telegram.sniff(head)


@pytest.mark.parametrize(
    "head",
    [
        json.dumps({"participants": [{"name": "A"}], "messages": [{"sender_name": "A", "timestamp_ms": 1, "content": "x"}]}),
        json.dumps({"participants": ["A"], "threadName": "t", "messages": [{"senderName": "A", "text": "x", "timestamp": 1}]}),
        json.dumps({"letters": "ab", "authors": [{"email": "e", "name": "A"}], "messages": [{"email": "e", "message": "x"}]}),
        '{"conversation": "telegram:1", "platform": "telegram", "author": "A", "author_id": "user1", "text": "x"}\n',
        "12/28/19, 21:43 - Ada: hi\n",
    ],
)
def test_sniff_rejects_other_formats(head):
    assert not telegram.sniff(head)


def test_detection_picks_telegram_for_both_export_kinds():
    from training.importers.detect import detect

    single = json.dumps(chat(msg(1, text="hi")), indent=1).encode()
    account = json.dumps({"about": "x", "personal_information": {"phone_number": "+1"}, "chats": {"list": []}}).encode()
    assert detect(single) is telegram
    assert detect(account) is telegram
