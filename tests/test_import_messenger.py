"""Messenger importers: classic JSON, the end-to-end-encrypted export, and both HTML layouts.

Every fixture is written here, shaped like Facebook's files: JSON through `facebook_json`, which
reproduces Facebook's mojibake (UTF-8 bytes as Latin-1 code points, escaped as \\u00XX).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from training.importers import messenger_e2ee, messenger_html, messenger_json
from training.importers.base import FileReport, ImportOptions, ParseError, SourceFile
from training.importers.mojibake import repair, repair_tree

T0 = 1_600_000_000_000  # 2020-09-13, in milliseconds as the export writes it


# ---------------------------------------------------------------- builders


def mojibake(value):
    """What Facebook does to every string: its UTF-8 bytes read back as Latin-1."""
    if isinstance(value, str):
        return value.encode("utf-8").decode("latin-1")
    if isinstance(value, list):
        return [mojibake(item) for item in value]
    if isinstance(value, dict):
        return {mojibake(key): mojibake(item) for key, item in value.items()}
    return value


def facebook_json(doc: dict) -> bytes:
    return json.dumps(mojibake(doc), indent=2).encode("ascii")


def thread(messages, **fields) -> dict:
    """A classic thread file; `messages` are given oldest first and written newest first, as Facebook does."""
    doc = {
        "participants": [{"name": "Ada Lovelace"}, {"name": "Bob Stone"}],
        "messages": list(reversed(messages)),
        "title": "Bob Stone",
        "is_still_participant": True,
        "thread_type": "Regular",
        "magic_words": [],
    }
    doc.update(fields)
    return doc


def msg(sender="Bob Stone", content=None, at=0, **fields) -> dict:
    out = {"sender_name": sender, "timestamp_ms": T0 + at * 1000}
    if content is not None:
        out["content"] = content
    out.setdefault("type", "Generic")
    out.update(fields)
    return out


def parse(module, data: bytes, path="export.zip!messages/inbox/bobstone_abc123/message_1.json"):
    report = FileReport(path=path)
    messages = list(module.parse(SourceFile(path, data), report, ImportOptions()))
    return messages, report


def parse_thread(messages, path="export.zip!messages/inbox/bobstone_abc123/message_1.json", **fields):
    return parse(messenger_json, facebook_json(thread(messages, **fields)), path)


# ---------------------------------------------------------------- mojibake


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("cafÃ©", "café"),
        ("café", "café"),  # already correct: the encode succeeds, the decode fails
        ("\u00f0\u009f\u0098\u0082", "😂"),
        ("😂 already fine", "😂 already fine"),  # above U+00FF: the encode fails
        ("plain ascii", "plain ascii"),
        ("Ã", "Ã"),  # a lone lead byte is not UTF-8: left alone
        ("JÃ¼rgen says Ã§a va", "Jürgen says ça va"),
    ],
)
def test_repair_is_conditional(broken, fixed):
    assert repair(broken) == fixed


def test_repair_tree_fixes_keys_and_values_at_any_depth():
    tree = {"cafÃ©": [{"reaction": "\u00e2\u009d\u00a4", "actor": "JosÃ©"}, 3, None, True], "ok": "déjà"}
    assert repair_tree(tree) == {"café": [{"reaction": "❤", "actor": "José"}, 3, None, True], "ok": "déjà"}


def test_messenger_document_strings_are_all_repaired():
    doc = json.loads(
        facebook_json(
            thread(
                [
                    msg(
                        content="see https://x.example",
                        share={"link": "https://x.example", "share_text": "Ça marche"},
                        reactions=[{"reaction": "😂", "actor": "Zoë"}],
                    )
                ],
                title="Café crew",
            )
        )
    )
    assert doc["title"] == "CafÃ© crew"  # the fixture really is broken before the repair
    fixed = repair_tree(doc)
    message = fixed["messages"][0]
    assert fixed["title"] == "Café crew"
    assert message["share"]["share_text"] == "Ça marche"
    assert message["reactions"] == [{"reaction": "😂", "actor": "Zoë"}]


# ---------------------------------------------------------------- sniffing


E2EE_DOC = {
    "participants": ["Ada Lovelace", "Bob Stone"],
    "threadName": "Bob Stone",
    "messages": [
        {
            "isUnsent": False,
            "media": [],
            "reactions": [],
            "senderName": "Bob Stone",
            "text": "later",
            "timestamp": T0 + 5000,
            "type": "text",
        },
        {
            "isUnsent": False,
            "media": [],
            "reactions": [],
            "senderName": "Ada Lovelace",
            "text": "first",
            "timestamp": T0,
            "type": "text",
        },
    ],
}
TELEGRAM_HEAD = (
    '{\n "name": "Group",\n "type": "private_group",\n "id": 42,\n "messages": [{"id": 1, "from": "Ada"}]}'
)


def test_sniff_claims_classic_json_even_when_cut_mid_document():
    text = facebook_json(thread([msg(content=f"message {i}", at=i) for i in range(2000)])).decode()
    head = text[: 64 * 1024]
    assert len(text) > len(head)
    assert messenger_json.sniff(head)
    assert messenger_json.sniff("\ufeff" + head)
    assert not messenger_e2ee.sniff(head)
    assert not messenger_html.sniff(head)


def test_sniff_tells_the_e2ee_export_from_the_classic_one():
    head = json.dumps(E2EE_DOC, indent=2)
    assert messenger_e2ee.sniff(head)
    assert not messenger_json.sniff(head)
    assert not messenger_html.sniff(head)


@pytest.mark.parametrize(
    "head", [TELEGRAM_HEAD, '{"letters": "ab", "authors": [], "messages": []}', "[1, 2]", "hello"]
)
def test_sniffs_leave_other_formats_alone(head):
    assert not messenger_json.sniff(head)
    assert not messenger_e2ee.sniff(head)
    assert not messenger_html.sniff(head)


# ---------------------------------------------------------------- classic JSON: where a thread lives


ROOTS = ["messages/", "your_activity_across_facebook/messages/", "your_facebook_activity/messages/"]
SECTIONS = ["inbox", "archived_threads", "filtered_threads", "message_requests", "e2ee_cutover"]


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("section", SECTIONS)
def test_conversation_key_comes_from_the_thread_folder(root, section):
    path = f"facebook-ada.zip!{root}{section}/bobstone_abc123/message_1.json"
    messages, _ = parse_thread([msg(content="hi")], path=path)
    assert [m.conversation for m in messages] == [f"messenger:{section}/bobstone_abc123"]


def test_conversation_key_prefers_thread_path_and_survives_a_folder_on_disk(tmp_path):
    folder = tmp_path / "your_facebook_activity" / "messages" / "e2ee_cutover" / "bobstone_abc123"
    folder.mkdir(parents=True)
    file = folder / "message_1.json"
    file.write_bytes(facebook_json(thread([msg(content="hi")])))
    messages, _ = parse(messenger_json, file.read_bytes(), str(file))
    assert messages[0].conversation == "messenger:e2ee_cutover/bobstone_abc123"

    messages, _ = parse_thread(
        [msg(content="hi")], path="renamed/message_1.json", thread_path="inbox/bobstone_abc123"
    )
    assert messages[0].conversation == "messenger:inbox/bobstone_abc123"


def test_conversation_key_falls_back_to_the_repaired_title():
    messages, _ = parse_thread([msg(content="hi")], path="message_1.json", title="Café crew")
    assert messages[0].conversation == "messenger:Café crew"


def test_thread_file_number_orders_split_threads_numerically():
    names = [f"export.zip!messages/inbox/bob_1/message_{n}.json" for n in range(1, 13)]
    shuffled = random.Random(4).sample(names, len(names))
    assert sorted(shuffled, key=messenger_json.thread_file_number) == names
    assert sorted(names)[2].endswith("message_11.json")  # what string order would have done
    assert messenger_json.thread_file_number("C:\\fb\\inbox\\bob_1\\message_10.json") == 10
    assert messenger_json.thread_file_number("notes.json") == 0


def test_split_files_of_one_thread_share_a_conversation_and_merge_in_time_order():
    # message_1 holds the newest part of the thread, message_2 the older one.
    base = "export.zip!your_facebook_activity/messages/inbox/bobstone_abc123/"
    newer, _ = parse_thread(
        [msg(content="three", at=30), msg(content="four", at=40)], path=base + "message_1.json"
    )
    older, _ = parse_thread(
        [msg(content="one", at=10), msg(content="two", at=20)], path=base + "message_2.json"
    )
    assert {m.conversation for m in newer + older} == {"messenger:inbox/bobstone_abc123"}
    merged = sorted(newer + older, key=lambda m: m.timestamp)
    assert [m.text for m in merged] == ["one", "two", "three", "four"]


# ---------------------------------------------------------------- classic JSON: messages


def test_messages_come_out_oldest_first_with_fields_filled():
    messages, report = parse_thread(
        [
            msg("Ada Lovelace", "first", at=0),
            msg("Bob Stone", "second", at=60),
            msg("Ada Lovelace", "third", at=61),
        ]
    )
    assert [(m.author, m.text) for m in messages] == [
        ("Ada Lovelace", "first"),
        ("Bob Stone", "second"),
        ("Ada Lovelace", "third"),
    ]
    assert [m.timestamp for m in messages] == [T0 / 1000, T0 / 1000 + 60, T0 / 1000 + 61]
    assert all(m.platform == "messenger" and m.author_id is None and m.kind == "text" for m in messages)
    assert not report.skipped


def test_messages_out_of_order_in_the_file_are_sorted_and_ties_keep_their_order():
    doc = thread([])
    # Newest first, but one message is out of place, and two share a millisecond.
    doc["messages"] = [msg(content="c", at=30), msg(content="e", at=50), msg(content="b2", at=20),
                       msg(content="b1", at=20), msg(content="a", at=10)]  # fmt: skip
    messages, _ = parse(messenger_json, facebook_json(doc))
    assert [m.text for m in messages] == ["a", "b1", "b2", "c", "e"]


def test_byte_order_mark_is_accepted():
    messages, _ = parse(messenger_json, b"\xef\xbb\xbf" + facebook_json(thread([msg(content="hi")])))
    assert [m.text for m in messages] == ["hi"]


def test_mojibake_is_repaired_in_content_and_names_and_correct_text_is_kept():
    doc = thread([msg("José Núñez", "café 😂"), msg("Ada Lovelace", "déjà vu", at=1)])
    data = facebook_json(doc)
    assert b"\\u00c3\\u00a9" in data  # the fixture carries Facebook's broken encoding
    # One message was written correctly (as some exports do): repair must leave it alone.
    correct = json.dumps(
        {"sender_name": "Zoë", "timestamp_ms": T0 + 5000, "content": "naïve café", "type": "Generic"}
    )
    data = data.replace(b'"messages": [', b'"messages": [' + correct.encode() + b",", 1)
    messages, _ = parse(messenger_json, data)
    assert [(m.author, m.text) for m in messages] == [
        ("José Núñez", "café 😂"),
        ("Ada Lovelace", "déjà vu"),
        ("Zoë", "naïve café"),
    ]


def test_unsent_taken_down_geoblocked_and_senderless_messages_are_counted_not_kept():
    messages, report = parse_thread(
        [
            msg(content="kept"),
            msg(content="oops", is_unsent=True),
            msg(content="gone", is_taken_down=True),
            msg(content="blocked", is_geoblocked_for_viewer=True),
            msg(sender="", content="who?"),
            {"timestamp_ms": T0, "content": "no sender at all"},
            msg(),  # neither text nor media
            "not a message",
        ]
    )
    assert [m.text for m in messages] == ["kept"]
    assert report.skipped == {
        "unsent": 1, "taken down": 1, "geoblocked": 1, "no sender": 2, "empty message": 1, "malformed message": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sender", "content", "type_", "reason"),
    [
        ("Bob Stone", "Bob Stone added Ada Lovelace to the group.", "Subscribe", "system event"),
        ("Bob Stone", "Bob Stone left the group.", "Unsubscribe", "system event"),
        ("Bob Stone", "Bob Stone named the group Weekend plans.", "Generic", "system event"),
        ("Bob Stone", "Bob Stone added Ada Lovelace to the group.", None, "system event"),
        ("Bob Stone", "Bob Stone left the group.", "Generic", "system event"),
        ("Ada Lovelace", "You set the nickname for Bob Stone to Bobby.", "Generic", "system event"),
        ("Bob Stone", "Bob Stone changed the group photo.", "Generic", "system event"),
        ("Bob Stone", "Bob Stone started sharing video.", "Generic", "call event"),
        ("Ada Lovelace", "You called Bob Stone.", "Generic", "call event"),
        ("Bob Stone", "The video chat ended.", "Generic", "call event"),
        ("Ada Lovelace", "Bob Stone missed your call.", "Generic", "call event"),
        ("Bob Stone", "Bob Stone unsent a message.", "Generic", "unsent"),
        (
            "Bob Stone",
            "Messages and calls are secured with end-to-end encryption. Only people in this chat can read them.",
            "Generic",
            "system event",
        ),
        ("Bob Stone", "", "Call", "call event"),
    ],
)
def test_system_events_are_skipped_with_a_reason(sender, content, type_, reason):
    event = msg(sender, content, at=5, call_duration=12) if type_ == "Call" else msg(sender, content, at=5)
    if type_ is None:
        del event["type"]
    else:
        event["type"] = type_
    messages, report = parse_thread([msg("Ada Lovelace", "before", at=0), event])
    assert [m.text for m in messages] == ["before"]
    assert report.skipped == {reason: 1}


@pytest.mark.parametrize(
    "content",
    [
        "my cousin named the group chat Bob",  # the actor is not the sender: speech
        "I added salt to the group dinner lol",
        "You called it! Bob Stone left the group chat silent for days",
        "The call ended. Then what?",
    ],
)
def test_speech_that_resembles_a_system_line_is_kept(content):
    messages, report = parse_thread([msg("Bob Stone", content)])
    assert [m.text for m in messages] == [content]
    assert not report.skipped


def test_system_line_with_a_mojibake_name_is_recognised_after_repair():
    _, report = parse_thread([msg("José Núñez", "José Núñez named the group Fiesta.")])
    assert report.skipped == {"system event": 1}


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"photos": [{"uri": "messages/inbox/b/photos/1.jpg", "creation_timestamp": 1}]}, "photo"),
        ({"videos": [{"uri": "messages/inbox/b/videos/1.mp4", "creation_timestamp": 1}]}, "video"),
        ({"audio_files": [{"uri": "messages/inbox/b/audio/1.mp4", "creation_timestamp": 1}]}, "voice"),
        ({"gifs": [{"uri": "messages/inbox/b/gifs/1.gif"}]}, "gif"),
        ({"files": [{"uri": "messages/inbox/b/files/plan.pdf", "creation_timestamp": 1}]}, "file"),
        ({"sticker": {"uri": "messages/stickers_used/1.png"}}, "sticker"),
        ({"share": {"link": "https://news.example/a"}, "type": "Share"}, "link"),
    ],
)
def test_media_keep_their_place_with_a_kind(fields, kind):
    messages, report = parse_thread([msg(**fields), msg(content="after", at=1)])
    assert [(m.kind, m.text) for m in messages] == [(kind, ""), ("text", "after")]
    assert not report.skipped


def test_media_placeholder_sentences_are_not_speech_but_captions_are():
    messages, _ = parse_thread(
        [
            msg(content="Bob Stone sent a photo.", photos=[{"uri": "p.jpg"}]),
            msg(content="Bob Stone sent an attachment.", at=1),
            msg(content="look at this", photos=[{"uri": "p.jpg"}], at=2),
        ]
    )
    assert [(m.kind, m.text) for m in messages] == [("photo", ""), ("file", ""), ("photo", "look at this")]


def test_shared_links_keep_only_the_senders_words():
    messages, _ = parse_thread(
        [
            msg(content="you have to read this", type="Share",
                share={"link": "https://news.example/a?id=7", "share_text": "Local man wins — read more"}),
            msg(type="Share", share={"link": "https://news.example/b", "share_text": "Preview text"}, at=1),
        ]
    )  # fmt: skip
    assert [(m.kind, m.text) for m in messages] == [("link", "you have to read this"), ("link", "")]


def test_reactions_are_not_messages():
    messages, report = parse_thread(
        [msg(content="hi", reactions=[{"reaction": "😍", "actor": "Ada Lovelace"}])]
    )
    assert [m.text for m in messages] == ["hi"]
    assert not report.skipped


def test_truncated_json_names_line_and_column():
    data = facebook_json(thread([msg(content=f"line {i}", at=i) for i in range(20)]))
    with pytest.raises(ParseError, match=r"line \d+, column \d+"):
        parse(messenger_json, data[: len(data) // 2])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], "JSON list"),
        ({"participants": [], "messages": "none"}, "'messages'"),
        ({"participants": []}, "'messages'"),
    ],
)
def test_wrong_structure_is_a_clear_parse_error(doc, message):
    with pytest.raises(ParseError, match=message):
        parse(messenger_json, json.dumps(doc).encode())


def test_wrongly_typed_fields_do_not_crash():
    messages, report = parse_thread(
        [
            msg(content=["not", "text"], photos="x"),
            msg(content="bad time", timestamp_ms="yesterday"),
            msg(content="huge time", timestamp_ms=10**400),
            msg(sender=7, content="numeric sender"),
        ]
    )
    # no usable times: document order reversed (Messenger writes newest first)
    assert [(m.text, m.timestamp) for m in messages] == [("bad time", None), ("huge time", None)]
    assert report.skipped == {"empty message": 1, "no sender": 1}


# ---------------------------------------------------------------- end-to-end-encrypted export


def test_e2ee_export_reads_camel_case_oldest_first():
    path = "secure.zip!messages/Bob Stone_1.json"
    messages, report = parse(messenger_e2ee, json.dumps(E2EE_DOC).encode(), path)
    assert [(m.author, m.text, m.timestamp) for m in messages] == [
        ("Ada Lovelace", "first", T0 / 1000),
        ("Bob Stone", "later", T0 / 1000 + 5),
    ]
    assert {m.conversation for m in messages} == {"messenger:e2ee/Bob Stone"}
    assert all(m.platform == "messenger" and m.author_id is None for m in messages)
    assert not report.skipped


def test_e2ee_export_media_unsent_mojibake_and_file_name_key():
    def item(at, **fields):
        return {
            "isUnsent": False,
            "media": [],
            "reactions": [],
            "senderName": "Bob Stone",
            "text": "",
            "timestamp": T0 + at,
            "type": "text",
            **fields,
        }

    doc = {
        "participants": ["Ada Lovelace", "Bob Stone"],
        "messages": [
            item(6, media=[{"uri": "media/voice.m4a"}]),
            item(5, media=[{"uri": "media/clip.mp4"}]),
            item(4, media=[{"uri": "media/pic.jpg"}], text="caption"),
            item(3, text="deleted", isUnsent=True),
            item(2, text=mojibake("café 😂"), senderName=mojibake("José")),
            item(1, text="déjà vu", reactions=[{"actor": "Ada Lovelace", "reaction": "❤"}]),
            item(0, text="Bob Stone named the group Trip."),
        ],
    }
    messages, report = parse(messenger_e2ee, json.dumps(doc).encode(), "secure.zip!messages/Bob_Stone_2.json")
    assert [(m.author, m.kind, m.text) for m in messages] == [
        ("Bob Stone", "text", "déjà vu"),
        ("José", "text", "café 😂"),
        ("Bob Stone", "photo", "caption"),
        ("Bob Stone", "video", ""),
        ("Bob Stone", "voice", ""),
    ]
    assert messages[0].conversation == "messenger:e2ee/Bob_Stone_2"
    assert report.skipped == {"unsent": 1, "system event": 1}


def test_e2ee_truncated_file_is_a_parse_error():
    with pytest.raises(ParseError, match=r"line \d+, column \d+"):
        parse(messenger_e2ee, json.dumps(E2EE_DOC, indent=1).encode()[:200], "messages/Bob_1.json")


# ---------------------------------------------------------------- HTML: legacy messages.htm


def legacy_page(threads: list[tuple[str, list[tuple[str, str, str]]]]) -> bytes:
    """threads: (participants, [(user, date, html text)]) with messages newest first, as Facebook wrote them."""
    body = ""
    for participants, messages in threads:
        body += f'<div class="thread">{participants}\n'
        for user, date, text in messages:
            body += (
                '<div class="message"><div class="message_header">'
                f'<span class="user">{user}</span><span class="meta">{date}</span></div></div>\n<p>{text}</p>\n'
            )
        body += "</div>\n"
    return (
        '<html><head><title>Ada Lovelace - Messages</title></head><body><div class="nav"></div>'
        f'<div class="contents"><h1>Ada Lovelace</h1><div>{body}</div></div></body></html>'
    ).encode()


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_legacy_messages_htm_threads_senders_dates_and_text():
    page = legacy_page(
        [
            ("Ada Lovelace, Bob Stone", [
                ("Bob Stone", "Friday, October 4, 2013 at 10:07pm PDT", "two lines<br />here &amp; there"),
                ("Ada Lovelace", "Friday, October 4, 2013 at 10:05pm PDT", "hello 😂"),
            ]),
            ("Ada Lovelace, Zoë Park", [
                ("Zoë Park", "Wednesday, November 12, 2008 at 8:53pm UTC+01", "Zoë Park left the group."),
                ("Ada Lovelace", "Wednesday, November 12, 2008 at 8:50pm UTC+01", ""),
                ("Zoë Park", "Wednesday, November 12, 2008 at 8:49pm UTC+01", "hi"),
            ]),
        ]
    )  # fmt: skip
    assert messenger_html.sniff(page.decode())
    messages, report = parse(messenger_html, page, "facebook.zip!html/messages.htm")
    assert [(m.conversation, m.author, m.text) for m in messages] == [
        ("messenger:html/Ada Lovelace, Bob Stone", "Ada Lovelace", "hello 😂"),
        ("messenger:html/Ada Lovelace, Bob Stone", "Bob Stone", "two lines\nhere & there"),
        ("messenger:html/Ada Lovelace, Zoë Park", "Zoë Park", "hi"),
    ]
    assert messages[0].timestamp == utc(2013, 10, 5, 5, 5)  # 10:05 pm PDT
    assert messages[2].timestamp == utc(2008, 11, 12, 19, 49)  # 8:49 pm UTC+01
    assert report.skipped == {"system event": 1, "empty message": 1}


def test_legacy_index_page_and_error_page_are_clear_errors():
    index = (
        '<html><body><div class="contents"><h1>Ada Lovelace</h1><div>'
        '<p><a href="messages/1.html">Bob Stone</a></p><p><a href="messages/2.html">Zoë Park</a></p>'
        "</div></div></body></html>"
    )
    assert messenger_html.sniff(index)
    with pytest.raises(ParseError, match=r"index page only: import the linked messages/\*\.html files too"):
        parse(messenger_html, index.encode(), "html/messages.htm")

    error = "<html><body><div><h2>There was an error loading the data</h2></div></body></html>"
    assert messenger_html.sniff(error)
    with pytest.raises(ParseError, match="error page"):
        parse(messenger_html, error.encode(), "html/messages.htm")


# ---------------------------------------------------------------- HTML: per-thread message_N.html


def thread_page(
    block_classes, rows, title="Bob Stone", header="Participants: Ada Lovelace and Bob Stone"
) -> bytes:
    """A per-thread page; rows (sender, content html, date) newest first. `block_classes` are the generated
    class names of one year's layout: (block, sender, content, date)."""
    block, sender, content, date = block_classes
    blocks = "".join(
        f'<div class="{block}"><div class="{sender}">{who}</div>'
        f'<div class="{content}"><div><div></div><div>{body}</div><div></div><div></div></div></div>'
        f'<div class="{date}">{when}</div></div>'
        for who, body, when in rows
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8" /><title>{title}</title></head>'
        '<body class="_5vb_ _2yq _4yic"><div class="clearfix _ikh"><div class="_4bl9"><div class="_li">'
        f'<div class="_3a_u"><div class="_4t5n" role="main"><div class="_3-8y _3-95 _3b0a"><div class="_3b0d">{title}</div></div>'
        f'<div class="{block}"><div class="_2lek">{header}</div></div>{blocks}</div></div></div></div></div></body></html>'
    ).encode()


LAYOUT_2019 = (
    "pam _3-95 _2pi0 _2lej uiBoxWhite noborder",
    "_3-96 _2pio _2lek _2lel",
    "_3-96 _2let",
    "_3-94 _2lem",
)
LAYOUT_2024 = (
    "pam _3-95 _2ph- _a6-g uiBoxWhite noborder",
    "_3-95 _2pim _a6-h _a6-i",
    "_3-95 _a6-p",
    "_3-94 _a6-o",
)
LAYOUT_UNSEEN = ("_zz1 _q9", "_zz2", "_zz3", "_zz4")  # a future year's names: only the structure is known


@pytest.mark.parametrize(
    ("layout", "dates", "expected"),
    [
        (LAYOUT_2019, ["Jan 5, 2019, 10:05 PM", "Jan 5, 2019, 10:07 PM", "Jan 6, 2019, 9:00 AM"],
         [utc(2019, 1, 5, 22, 5), utc(2019, 1, 5, 22, 7), utc(2019, 1, 6, 9, 0)]),
        (LAYOUT_2024, ["Mar 12, 2024 8:25:13 pm", "Mar 12, 2024 8:26:00 pm", "Mar 13, 2024 12:01:00 am"],
         [utc(2024, 3, 12, 20, 25, 13), utc(2024, 3, 12, 20, 26), utc(2024, 3, 13, 0, 1)]),
        (LAYOUT_UNSEEN, ["2021年4月30日 下午8:11", "2021年4月30日 下午8:15", "2021年5月1日 上午9:02"],
         [utc(2021, 4, 30, 20, 11), utc(2021, 4, 30, 20, 15), utc(2021, 5, 1, 9, 2)]),
        (LAYOUT_2024, ["Tháng 10 13, 2023 8:35:59chiều", "Tháng 10 13, 2023 8:40:00chiều", "Tháng 10 14, 2023 7:00:00sáng"],
         [utc(2023, 10, 13, 20, 35, 59), utc(2023, 10, 13, 20, 40), utc(2023, 10, 14, 7, 0)]),
    ],
)  # fmt: skip
def test_per_thread_pages_are_read_by_structure_with_localized_dates(layout, dates, expected):
    rows = [
        ("Ada Lovelace", "hello 😂", dates[0]),
        ("Bob Stone", 'see you<ul class="_tqp"><li>❤Ada Lovelace</li><li>😂Zoë Park</li></ul>', dates[1]),
        ("Ada Lovelace", "bye", dates[2]),
    ]
    page = thread_page(layout, list(reversed(rows)))
    assert messenger_html.sniff(page.decode())
    path = "facebook.zip!your_facebook_activity/messages/inbox/bobstone_abc123/message_1.html"
    messages, report = parse(messenger_html, page, path)
    assert [(m.author, m.text, m.kind) for m in messages] == [
        ("Ada Lovelace", "hello 😂", "text"),
        ("Bob Stone", "see you", "text"),  # the reactions are not part of the text
        ("Ada Lovelace", "bye", "text"),
    ]
    assert [m.timestamp for m in messages] == expected
    assert {m.conversation for m in messages} == {"messenger:html/inbox/bobstone_abc123"}
    assert not report.skipped


def test_per_thread_page_media_system_lines_and_title_key():
    rows = [
        ("Bob Stone", "Bob Stone named the group Trip.", "Feb 16, 2018 10:20pm"),
        ("Ada Lovelace", '<a href="https://news.example/a">https://news.example/a</a>', "Feb 16, 2018 10:19pm"),
        ("Bob Stone", '<a href="messages/inbox/b/files/plan.pdf">plan.pdf</a>', "Feb 16, 2018 10:18pm"),
        ("Bob Stone", '<a href="messages/inbox/b/photos/1.png"><img src="messages/inbox/b/photos/1.png" /></a>'
                      '<ul class="_tqp"><li>😍Ada Lovelace</li></ul>', "Feb 16, 2018 10:17pm"),
        ("Ada Lovelace", "You called Bob Stone.", "Feb 16, 2018 10:16pm"),
    ]  # fmt: skip
    messages, report = parse(
        messenger_html, thread_page(LAYOUT_2019, rows, title="Trip"), "downloads/message_1.html"
    )
    assert [(m.author, m.kind, m.text) for m in messages] == [
        ("Bob Stone", "photo", ""),
        ("Bob Stone", "file", ""),
        ("Ada Lovelace", "link", "https://news.example/a"),
    ]
    assert {m.conversation for m in messages} == {"messenger:html/Trip"}
    assert report.skipped == {"system event": 1, "call event": 1}


def test_per_thread_page_with_unknown_dates_keeps_messages_without_inventing_times():
    rows = [("Bob Stone", "newest", "3. März 2021, 08:07"), ("Ada Lovelace", "oldest", "3. März 2021, 08:05")]
    messages, _ = parse(messenger_html, thread_page(LAYOUT_2024, rows), "inbox/bob_1/message_1.html")
    assert [(m.text, m.timestamp) for m in messages] == [("oldest", None), ("newest", None)]


def test_other_facebook_html_pages_are_not_messenger():
    friends = (
        '<!DOCTYPE html><html><head><title>Friends</title></head><body><div role="main">'
        '<div class="pam _3-95 _2pi0 _2lej uiBoxWhite noborder"><div class="_3-96 _2pio _2lek _2lel">Bob Stone</div>'
        '<div class="_3-94 _2lem">Mar 1, 2019 2:05pm</div></div></div></body></html>'
    )
    assert not messenger_html.sniff(friends)
    assert not messenger_html.sniff("<html><body><p>just a page</p></body></html>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mar 12, 2024 8:25:13 pm", datetime(2024, 3, 12, 20, 25, 13, tzinfo=timezone.utc)),
        ("Mar 12, 2024 12:25:13 am", datetime(2024, 3, 12, 0, 25, 13, tzinfo=timezone.utc)),
        ("2021年4月30日 下午8:11", datetime(2021, 4, 30, 20, 11, tzinfo=timezone.utc)),
        ("2021年4月30日 上午12:30", datetime(2021, 4, 30, 0, 30, tzinfo=timezone.utc)),
        ("Tháng 10 13, 2023 8:35:59chiều", datetime(2023, 10, 13, 20, 35, 59, tzinfo=timezone.utc)),
        ("Jan 5, 2019, 10:05 PM", datetime(2019, 1, 5, 22, 5, tzinfo=timezone.utc)),
        ("Feb 16, 2018 10:17pm", datetime(2018, 2, 16, 22, 17, tzinfo=timezone.utc)),
        (
            "Friday, October 4, 2013 at 10:05pm PDT",
            datetime(2013, 10, 4, 22, 5, tzinfo=timezone(timedelta(hours=-7))),
        ),
        (
            "Sunday, 18 December 2016 at 10:25 UTC+05:30",
            datetime(2016, 12, 18, 10, 25, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("3. März 2021, 08:05", None),
        ("Feb 30, 2019, 10:05 PM", None),
        ("yesterday", None),
    ],
)
def test_parse_date_reads_the_localized_formats(text, expected):
    assert messenger_html.parse_date(text) == (expected.timestamp() if expected else None)


def test_per_thread_page_with_a_single_short_message():
    # The page wrapper, whose last child is the one short block, must not pass for a message block.
    page = thread_page(LAYOUT_2024, [("Bob Stone", "hi", "Jan 5, 2019, 10:05 PM")])
    messages, _ = parse(messenger_html, page, "inbox/bob_1/message_1.html")
    assert [(m.author, m.text) for m in messages] == [("Bob Stone", "hi")]


def test_per_thread_page_quoting_the_error_text_is_still_a_thread():
    rows = [("Bob Stone", "it said There was an error loading the data", "Jan 5, 2019, 10:05 PM")]
    messages, _ = parse(messenger_html, thread_page(LAYOUT_2019, rows), "inbox/bob_1/message_1.html")
    assert [m.text for m in messages] == ["it said There was an error loading the data"]


def test_per_thread_block_without_a_date_is_counted_not_guessed():
    rows = [
        ("Bob Stone", "later", "Jan 5, 2019, 10:07 PM"),
        ("Bob Stone", "no date here", "sometime"),
        ("Ada Lovelace", "first", "Jan 5, 2019, 10:05 PM"),
    ]
    messages, report = parse(messenger_html, thread_page(LAYOUT_2019, rows), "inbox/bob_1/message_1.html")
    assert [m.text for m in messages] == ["first", "later"]
    assert report.skipped == {"unreadable message block": 1}
