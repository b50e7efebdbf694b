"""Whose words are these? Forwards, bot posts, app lines and pasted transcripts, in the exports' real shapes.

Each is imported as what it is: a forward or a bot's post keeps its place under its own kind, an app line
under a person's name is dropped and counted under its reason, a pasted transcript stays one message of the
person who pasted it. The WhatsApp lines follow real exports (whats_json's test data, iOS and Android).
"""

from __future__ import annotations

import json
import re

import pytest

from model.stream import message_text
from training.importers import app_lines, messenger_json, telegram, whatsapp
from training.importers.base import FileReport, ImportOptions, SourceFile

LRM = "\u200e"


def parse_telegram(*messages: dict):
    doc = {"name": "Family", "type": "private_group", "id": 4815162342, "messages": list(messages)}
    report = FileReport("result.json")
    source = SourceFile("result.json", json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    return list(telegram.parse(source, report, ImportOptions())), report


def tg(id_: int, **fields) -> dict:
    base = {"id": id_, "type": "message", "date": "2024-03-12T10:15:22", "date_unixtime": str(1710238522 + id_),
            "from": "Ada", "from_id": "user1", "text": "", "text_entities": []}
    base.update(fields)
    return base


def parse_whatsapp(text: str, path: str = "WhatsApp Chat with Bob.txt"):
    report = FileReport(path)
    messages = list(whatsapp.parse(SourceFile(path, text.encode("utf-8")), report, ImportOptions()))
    return messages, report


# ---------------------------------------------------------------- Telegram: forwards, saved messages, bots


def test_telegram_forwards_keep_their_place_under_the_forwarder_but_are_not_speech():
    news = ["Breaking: ", {"type": "bold", "text": "the bridge reopens"}, " on Monday."]
    messages, _ = parse_telegram(
        tg(1, text="look at this"),
        tg(2, text=news, forwarded_from="City News", forwarded_from_id="channel1001"),
        tg(3, text="hidden sender", forwarded_from=None),  # the original sender hid their account
        tg(4, text="finally!", **{"from": "Bob", "from_id": "user2"}),
    )
    assert [(m.author, m.kind, m.text) for m in messages] == [
        ("Ada", "text", "look at this"),
        ("Ada", "forward", "Breaking: the bridge reopens on Monday."),
        ("Ada", "forward", "hidden sender"),
        ("Bob", "text", "finally!"),
    ]
    assert [message_text(m.kind, m.text) is not None for m in messages] == [True, False, False, True]


def test_telegram_saved_messages_and_forwarded_media_are_forwards():
    messages, _ = parse_telegram(
        tg(1, text="recipe for later", saved_from="Cooking Club"),
        tg(2, photo="photos/photo_1.jpg", width=800, height=600, text="their caption", forwarded_from="Bob"),
    )
    assert [(m.kind, m.text) for m in messages] == [("forward", "recipe for later"), ("forward", "their caption")]


def test_telegram_posts_sent_via_an_inline_bot_are_the_bots_words():
    messages, _ = parse_telegram(
        tg(1, text="Paris: 18°C, light rain", via_bot="@weatherbot"),
        tg(2, file="(File not included. Change data exporting settings to download.)", media_type="animation",
           mime_type="video/mp4", via_bot="@gif"),
        tg(3, text="so, umbrella"),
    )
    assert [(m.kind, m.text) for m in messages] == [("via_bot", "Paris: 18°C, light rain"), ("via_bot", ""),
                                                     ("text", "so, umbrella")]


def test_a_whatsapp_transcript_pasted_into_telegram_stays_one_message_of_its_sender():
    pasted = "[12/03/2024, 10:15:22] Bob: are you coming?\n[12/03/2024, 10:16:01] Carl: on my way"
    messages, _ = parse_telegram(tg(1, text=pasted))
    assert [(m.author, m.text) for m in messages] == [("Ada", pasted)]


# ---------------------------------------------------------------- Messenger: shares, calls


def test_messenger_shares_are_links_the_stream_does_not_read():
    doc = {"participants": [{"name": "Ada"}, {"name": "Bob"}], "thread_path": "inbox/bob_1",
           "messages": [{"sender_name": "Bob", "timestamp_ms": 1710238522000, "content": "Ada sent a link.",
                         "share": {"link": "https://news.example/a"}, "type": "Share"},
                        {"sender_name": "Bob", "timestamp_ms": 1710238523000,
                         "content": "https://news.example/b", "share": {"link": "https://news.example/b",
                                                                         "share_text": "Local man wins"},
                         "type": "Share"}]}
    report = FileReport("message_1.json")
    messages = list(messenger_json.parse(SourceFile("inbox/bob_1/message_1.json", json.dumps(doc).encode()),
                                         report, ImportOptions()))
    assert [m.kind for m in messages] == ["link", "link"]
    assert all(message_text(m.kind, m.text) is None for m in messages)


def test_messenger_missed_calls_are_counted_as_missed():
    doc = {"participants": [{"name": "Ada"}, {"name": "Bob"}], "thread_path": "inbox/bob_1",
           "messages": [{"sender_name": "Bob", "timestamp_ms": 1710238522000, "content": "Bob called you.",
                         "call_duration": 0, "missed": True, "type": "Call"},
                        {"sender_name": "Ada", "timestamp_ms": 1710238523000, "content": "sorry, driving",
                         "type": "Generic"}]}
    report = FileReport("message_1.json")
    messages = list(messenger_json.parse(SourceFile("inbox/bob_1/message_1.json", json.dumps(doc).encode()),
                                         report, ImportOptions()))
    assert [m.text for m in messages] == ["sorry, driving"]
    assert report.skipped == {"missed call": 1}


# ---------------------------------------------------------------- WhatsApp: app lines under a person's name


@pytest.mark.parametrize(
    "line, reason",
    [
        # iOS files the encryption notice under the other person (or the group), with U+200E
        (f"[3/18/22, 14:56:01] Elon Musk: {LRM}Messages and calls are end-to-end encrypted. No one outside of this "
         "chat, not even WhatsApp, can read or listen to them.", app_lines.ENCRYPTION),
        (f"[3/18/22 14:56:00] Elon Musk: {LRM}Les messages et les appels sont chiffrés de bout en bout. Aucun tiers, "
         "pas même WhatsApp, ne peut les lire ou les écouter.", app_lines.ENCRYPTION),
        (f"[3/18/22, 14:56:00] Elon Musk: {LRM}Сообщения и звонки защищены сквозным шифрованием. Третьи лица, "
         f"включая WhatsApp, не\u00a0могут прочитать ваши сообщения или прослушать звонки.", app_lines.ENCRYPTION),
        (f"[4/28/22, 20:17:30] Elon Musk: {LRM}{LRM}Your security code with Elon changed. {LRM}Tap to learn more.",
         app_lines.SECURITY_CODE),
        (f"[4/28/22, 20:17:30] Elon Musk: {LRM}{LRM}Deine Sicherheitsnummer für Elon hat sich geändert. "
         f"{LRM}Tippe, um mehr zu erfahren.", app_lines.SECURITY_CODE),
        (f"[4/28/22 20:17:30] Elon Musk: {LRM}{LRM}O seu código de segurança partilhado com Elon mudou. "
         f"{LRM}Toque para saber mais.", app_lines.SECURITY_CODE),
        (f"[4/28/22, 20:17:30] Elon Musk: {LRM}{LRM}Il tuo codice di sicurezza con Elon è cambiato. "
         f"{LRM}Tocca per saperne di più.", app_lines.SECURITY_CODE),
        (f"[4/28/22, 20:17:30] Elon Musk: {LRM}{LRM}Cambió tu código de seguridad con Elon. "
         f"{LRM}Pulsa para obtener más información.", app_lines.SECURITY_CODE),
        (f"[20/04/22, 21:02:10] Johannes: {LRM}Johannes's security code changed.", app_lines.SECURITY_CODE),
        (f"[11/01/23, 16:14:01] Dmitry S: {LRM}Dmitry S turned on disappearing messages. New messages will disappear "
         "from this chat 7 days after they're sent, except when kept.", app_lines.DISAPPEARING),
        (f"[11/01/23, 16:14:01] Dmitry S: {LRM}Dmitry S hat selbstlöschende Nachrichten aktiviert.",
         app_lines.DISAPPEARING),
        # Android writes these with a sender and no mark
        ("11/01/2023, 16:15 - Dmitry S: You turned off disappearing messages. Tap to change.", app_lines.DISAPPEARING),
        ("27/03/2022, 15:10 - Dmitry S: null", app_lines.NULL),  # a view-once photo
        ("07/12/2020, 7:32 am - Kenedy: Waiting for this message", app_lines.WAITING),
        ("27.03.2022, 13:44 - Dmitry S: Данное сообщение удалено", app_lines.DELETED),
        ("27.03.22 15:14 - Elon: Tuto zprávu jste odstranil/a.", app_lines.DELETED),
        ("27-03-2022 13:44 - Dmitry S: Dit bericht is verwijderd", app_lines.DELETED),
        ("27.03.2022 13:44 - Ahmet: Bu mesaj silindi", app_lines.DELETED),
        ("07.10.2026, 18:07 - Tata Kuby: Ta wiadomość została usunięta", app_lines.DELETED),
        (f"[3/27/22, 21:54:45] Elon Musk: {LRM}このメッセージは削除されました。", app_lines.DELETED),
    ],
)
def test_app_lines_under_a_persons_name_are_dropped_under_their_reason(line, reason):
    messages, report = parse_whatsapp(f"{line}\n[3/27/22, 21:55:00] Ada: real words\n"
                                      if line.startswith("[") else f"{line}\n{line.split(' - ')[0]} - Ada: real words\n")
    assert [m.text for m in messages] == ["real words"]
    assert report.skipped == {reason: 1}


@pytest.mark.parametrize(
    "line, kind",
    [
        ("07/01/2023, 23:32 - Dmitry S: Missed voice call", "call"),
        ("9/10/22, 10:31 PM - Charan: Missed group voice call", "call"),
        (f"[7/1/23, 23:32:30] Alya: {LRM}Missed Voice Call", "call"),
        ("07.01.2023, 23:32 - Dmitry S: Пропущенный аудиозвонок", "call"),
        ("07.01.23 23:32 - Dmitry S: Zmeškaný hovor", "call"),
        ("07-01-2023 23:32 - Dmitry S: Gemiste spraakoproep", "call"),
        ("07.01.2023, 23:32 - Hans: Verpasster Sprachanruf", "call"),
        ("18.03.2022, 15:10 - Dmitry S: <Без медиафайлов>", "other"),
        ("18.03.22 15:10 - Dmitry S: <Média vynechány>", "other"),
        ("18.03.2022 15:10 - Ahmet: <Medya dahil edilmedi>", "other"),
        ("07.10.2026, 18:06 - Tata Kuby: <Pominięto multimedia>", "other"),
        (f"[3/27/22, 21:41:55] Dmitry S: {LRM}изображение отсутствует", "photo"),
        (f"[3/27/22 21:44:47] Dmitry S: {LRM}audio omis", "audio"),
        (f"[3/27/22 21:47:54] Dmitry S: {LRM}Fiche contact manquante", "contact"),
        (f"[3/27/22 21:50:09] Dmitry S: Some file.txt {LRM}dokument vynechán", "file"),
        (f"[12/02/19, 13:05:11] Giorgia: <{LRM}image omitted>", "photo"),  # older iOS versions
        (f"[12/02/19, 13:05:12] Giorgia: <{LRM}audio omitted>", "audio"),
        ("23.03.2022, 13:33 - Elon: \u200eAlex.vcf (файл добавлен)", "contact"),
        ("18-03-2022 15:12 - Dmitry S: \u200ePTT-20220323-WA0000.opus (bestand bijgevoegd)", "voice"),
    ],
)
def test_localized_placeholders_are_media_not_speech(line, kind):
    messages, _ = parse_whatsapp(line + "\n")
    assert [(m.kind, m.text) for m in messages] == [(kind, "")]


def test_media_omitted_with_its_caption_on_the_next_line_is_media_with_the_caption():
    messages, _ = parse_whatsapp("18/03/2022, 15:10 - Dmitry S: <Media omitted>\nCaption\n")
    assert [(m.kind, m.text) for m in messages] == [("other", "Caption")]


@pytest.mark.parametrize(
    "body, text",
    [
        ("see you at 8 <This message was edited>", "see you at 8"),
        ("bis gleich <Diese Nachricht wurde bearbeitet>", "bis gleich"),
        ("yarın gel <Bu mesaj düzenlendi>", "yarın gel"),
        ("Dziękuję: do zobaczenia <Ta wiadomość została zmieniona>", "Dziękuję: do zobaczenia"),
        ("до встречи <Это сообщение изменено>", "до встречи"),
        ("a presto <Questo messaggio è stato modificato>", "a presto"),
        ("first line\nsecond line <This message was edited>", "first line\nsecond line"),
    ],
)
def test_the_edited_marker_is_stripped_and_the_message_kept(body, text):
    messages, _ = parse_whatsapp(f"12/28/19, 21:43 - Ada: {body}\n")
    assert [(m.kind, m.text) for m in messages] == [("text", text)]


@pytest.mark.parametrize(
    "body",
    [
        "I turned on disappearing messages.",
        "selbstlöschende Nachrichten sind nervig",
        "my security code changed, weird",
        "null and void, like your argument",
        "Waiting for this message to arrive takes forever",
        "Messages and calls are fine here, don't worry",
        "missed voice call from mum, calling her back",
    ],
)
def test_speech_that_mentions_app_phrases_stays_speech(body):
    messages, _ = parse_whatsapp(f"12/28/19, 21:43 - Ada: {body}\n")
    assert [(m.kind, m.text) for m in messages] == [("text", body)]


def test_every_language_of_the_table_has_phrases_and_every_notice_compiles():
    assert {"en", "de", "fr", "es", "it", "pt", "nl", "ru", "tr", "pl"} <= set(app_lines.LANGUAGES)
    for code, language in app_lines.LANGUAGES.items():
        if code != "fi":
            assert language.deleted and (language.media or language.calls), code
    # a notice that starts with a name is found through a topic word of its reason
    for language in app_lines.LANGUAGES.values():
        for reason, patterns in language.notices.items():
            if any(pattern.startswith(".") or pattern.startswith("(?!") for pattern in patterns):
                assert language.topics.get(reason), reason


# ---------------------------------------------------------------- WhatsApp: pasted transcripts

# Android export; Jenit pastes lines copied with WhatsApp's own copy (brackets, as in a real export in whats_json)
ANDROID_WITH_PASTE = """\
08/01/2020, 22:22 - Revati: I ended it and then this happened
08/01/2020, 22:22 - Jenit: [19/12/2019, 08:00] Anushka: OH BRO PAM WAS SAYING WEIRD STUFF YESTERDAY
[19/12/2019, 08:00] Jenit: Hitting on you
[19/12/2019, 08:00] Jenit: Wtf
a line of the pasted message
[19/12/2019, 08:01] Anushka: Idk i def got a vibe
08/01/2020, 22:22 - Jenit: Her birthday day
08/01/2020, 22:25 - Revati: don't reply to him
"""


def test_a_pasted_transcript_stays_one_message_and_creates_no_authors():
    messages, report = parse_whatsapp(ANDROID_WITH_PASTE)
    assert [m.author for m in messages] == ["Revati", "Jenit", "Jenit", "Revati"]
    pasted = messages[1].text
    assert pasted.startswith("[19/12/2019, 08:00] Anushka: OH BRO")
    assert "[19/12/2019, 08:01] Anushka: Idk i def got a vibe" in pasted and "a line of the pasted message" in pasted
    assert messages[2].text == "Her birthday day"
    assert report.skipped == {"header line inside a message (pasted)": 3}


def test_a_phone_number_naming_a_pasted_line_becomes_its_pseudonym():
    text = ("12/03/24, 10:15 - Ada: look\n"
            "[12/03/24, 09:01] \u202a+1\u00a0555\u2011123\u20114567\u202c: call me\n"
            "12/03/24, 10:16 - Bob: ok\n")
    messages, _ = parse_whatsapp(text)
    # The pseudonym's 6 hex digits come from a random key and may happen to hold "555": look around them.
    outside = re.sub(r"Contact [0-9a-f]{6}", "Contact ⟨pseudonym⟩", messages[0].text)
    assert len(messages) == 2 and "555" not in outside and "Contact ⟨pseudonym⟩" in outside


def test_an_android_export_pasted_into_an_ios_chat_stays_one_message():
    text = ("[12/03/2024, 10:15:22] Ada: look what Bob wrote\n"
            "12/03/24, 09:01 - Bob: the meeting is off\n"
            "12/03/24, 09:02 - Carl: finally\n"
            "[12/03/2024, 10:16:01] Bob: that was private!\n")
    messages, _ = parse_whatsapp(text)
    assert [(m.author, m.text.count("\n")) for m in messages] == [("Ada", 2), ("Bob", 0)]


def test_a_paste_at_the_end_of_the_file_and_across_chunks_stays_one_message(monkeypatch):
    monkeypatch.setattr(whatsapp, "_CHUNK", 64)
    lines = [f"12/28/19, 21:{i:02d} - Ada: message {i}" for i in range(20)]
    lines.append("12/28/19, 21:30 - Bob: " + "\n".join(f"[12/20/19, 10:{i:02d}] Carl: old line {i}" for i in range(30)))
    messages, _ = parse_whatsapp("\n".join(lines) + "\n")
    assert len(messages) == 21 and {m.author for m in messages} == {"Ada", "Bob"}
    assert messages[-1].text.count("Carl: old line") == 30


def test_late_deliveries_out_of_time_order_stay_messages():
    # Real exports put a late delivery, or a missed call stamped at the call's start, after later messages.
    text = ("23/09/2019, 12:51 - Ron: hi\n"
            "23/09/2019, 12:55 - Tamar: 😂😂😂\n"
            "23/09/2019, 12:54 - Ron: sent while offline\n"
            "31/10/2021, 14:35 - Pavithra: Vacheyna\n"
            "31/10/2021, 14:15 - Pavithra: Missed voice call\n")
    messages, report = parse_whatsapp(text)
    assert [m.text for m in messages] == ["hi", "😂😂😂", "sent while offline", "Vacheyna", ""]
    assert "header line inside a message (pasted)" not in report.skipped


def test_a_file_that_changes_style_for_good_keeps_its_messages(monkeypatch):
    monkeypatch.setattr(whatsapp, "_MAX_PASTED", 3)
    newer = [f"[28/12/2019, 21:{i:02d}:00] Ada: new {i}" for i in range(3)]
    older = [f"1/{i + 1}/19, 10:00 - Bob: old {i}" for i in range(6)]  # an older export joined after it
    messages, report = parse_whatsapp("\n".join(newer + older) + "\n")
    assert [m.text for m in messages] == [f"new {i}" for i in range(3)] + [f"old {i}" for i in range(6)]
    assert "header line inside a message (pasted)" not in report.skipped


def test_a_header_in_another_style_later_than_the_message_above_is_a_message():
    text = "12/28/19, 21:43 - Ada: before\n[12/29/19, 08:00:00] Bob: after, in another style\n"
    messages, _ = parse_whatsapp(text)
    assert [(m.author, m.text) for m in messages] == [("Ada", "before"), ("Bob", "after, in another style")]
