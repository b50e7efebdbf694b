"""Pastes and other words that are not the author's: the rule, the import report, re-imports, the stream."""

from __future__ import annotations

import json

import pytest

from model.stream import NOT_OWN_WORDS, message_text
from talklike.cli import main
from training.corpus import KINDS, OTHER_WORDS_KINDS, Message, read_corpus, write_corpus
from training.dataset import spoken
from training.pastes import CODE_OR_DATA, LONG, TRANSCRIPT, PasteRule, structure_share

# A drawing tool's clipboard as browsers put it (JSON.stringify: no spaces).
CLIPBOARD = json.dumps({"type": "excalidraw/clipboard", "elements": [
    {"id": f"k{i}", "type": "rectangle", "x": 120.5 + i, "y": 88.25, "width": 200, "height": 80, "angle": 0,
     "strokeColor": "#1e1e1e", "backgroundColor": "transparent", "fillStyle": "solid", "seed": 1234 + i,
     "isDeleted": False, "boundElements": None} for i in range(6)]}, separators=(",", ":"))
CODE = """def train(model, batches, steps=1000):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for step, (x, y) in enumerate(batches):
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}")
    return model
"""
LINKS = " ".join(f"https://example.com/articles/{i}/how-to-fix-the-thing?ref=chat&utm_source=share" for i in range(6))
# A long speech in the style of a monologue: prose, long, but speech.
MONOLOGUE = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and "
             "arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. ") * 8
ARTICLE = ("The city council voted on Tuesday to extend the night bus service to the northern districts, a move "
           "residents have asked for since the last line closed in 2019. The pilot will run for six months. ") * 30


def test_the_length_threshold_follows_the_corpus():
    rule = PasteRule()
    assert rule.long_threshold([]) == 2000
    assert rule.long_threshold([40] * 95 + [20_000] * 5) == 2000  # chat with a few pastes: the floor
    assert rule.long_threshold([100] * 800 + [400] * 200) == 4000  # long writers: 10 x the 90th percentile


@pytest.mark.parametrize(
    "text, reason",
    [
        (CLIPBOARD, CODE_OR_DATA),
        (CODE, CODE_OR_DATA),
        (LINKS, CODE_OR_DATA),
        ("[12/03/2024, 10:15:22] Bob: are you coming?\n[12/03/2024, 10:16:01] Carl: yes", TRANSCRIPT),
        ("look what she said\n12/28/19, 21:43 - Dana: no way", TRANSCRIPT),
        ("Bob, [12.03.24 10:15]\nare you coming?", TRANSCRIPT),
        ("[23:59] <goliath> did it finish downloading?", TRANSCRIPT),
        (MONOLOGUE, None),
        ("meet at 10:30: ok? bring the {big} umbrella", None),
        ('short json {"a": 1}', None),
    ],
)
def test_own_reasons(text, reason):
    assert PasteRule().own_reason(text) == reason


def test_structure_share_counts_code_and_links_not_prose():
    assert structure_share(CLIPBOARD) > 0.9
    assert structure_share(MONOLOGUE) == 0.0
    assert 0 < structure_share("see https://example.com/a for the docs, it is short") < 0.5


def csv_corpus(rows: list[tuple[str, str]]) -> str:
    lines = ["author,text,timestamp,conversation"]
    for i, (author, text) in enumerate(rows):
        quoted = '"' + text.replace('"', '""') + '"'
        lines.append(f"{author},{quoted},{1600000000 + 60 * i},group")
    return "\n".join(lines) + "\n"


def import_json(capsys, *argv):
    code = main(["import", *map(str, argv), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_pastes_are_kept_in_place_counted_by_reason_and_not_read(tmp_path, capsys):
    rows = [("Ada", f"chat line number {i}, nothing special") for i in range(60)]
    rows[10] = ("Bob", CLIPBOARD)
    rows[20] = ("Ada", ARTICLE)
    rows[30] = ("Bob", "[12/03/2024, 10:15:22] Carl: are you coming?\n[12/03/2024, 10:16:01] Dana: yes")
    rows[40] = ("Ada", MONOLOGUE)  # long for this corpus? 1.6k characters: under the 2,000 floor, speech
    source = tmp_path / "chat.csv"
    source.write_text(csv_corpus(rows), encoding="utf-8")
    out = tmp_path / "corpus.jsonl"
    code, report = import_json(capsys, source, "-o", out)
    assert code == 0
    assert report["set_aside"] == {CODE_OR_DATA: 1, LONG: 1, TRANSCRIPT: 1}
    assert report["files"][0]["set_aside"] == report["set_aside"]
    assert report["messages"] == 57 and report["paste_threshold"] == 2000
    messages = list(read_corpus(out))
    assert [m.kind for m in messages].count("paste") == 3 and len(messages) == 60  # kept in place
    assert messages[10].text.startswith('{"type":"excalidraw/clipboard"')  # text kept, in order
    assert [m.text for m in spoken(messages)].count(MONOLOGUE) == 1
    assert len(spoken(messages)) == 57


def test_a_transcript_pasted_into_a_whatsapp_message_is_one_paste_and_no_author(tmp_path, capsys):
    source = tmp_path / "WhatsApp Chat with Revati.txt"
    source.write_text("08/01/2020, 22:22 - Revati: I ended it and then this happened\n"
                      "08/01/2020, 22:22 - Jenit: [19/12/2019, 08:00] Anushka: he was saying weird stuff\n"
                      "[19/12/2019, 08:00] Jenit: Hitting on you\n"
                      "[19/12/2019, 08:01] Anushka: Idk i def got a vibe\n"
                      "[19/12/2019, 08:02] Anushka: yes\n"
                      "08/01/2020, 22:25 - Revati: don't reply to him\n", encoding="utf-8")
    code, report = import_json(capsys, source, "-o", tmp_path / "c.jsonl")
    assert code == 0
    assert report["authors"] == {"Revati": 2}  # Jenit only pasted; Anushka is only named in the paste
    assert report["set_aside"] == {TRANSCRIPT: 1}
    assert report["files"][0]["skipped"] == {"header line inside a message (pasted)": 3}


def test_the_text_report_names_what_was_set_aside(tmp_path, capsys):
    source = tmp_path / "chat.csv"
    source.write_text(csv_corpus([("Ada", "hi"), ("Bob", CODE)]), encoding="utf-8")
    assert main(["import", str(source), "-o", str(tmp_path / "c.jsonl")]) == 0
    out = capsys.readouterr().out
    assert f"kept in place, not read as the author's words: {CODE_OR_DATA} 1" in out


def test_reimporting_an_old_corpus_applies_todays_rules(tmp_path, capsys):
    old = tmp_path / "old.jsonl"

    def wa(text, kind="text", t=0.0):
        return Message("whatsapp:Family", "whatsapp", "Ada", None, 1600000000.0 + t, text, kind)

    write_corpus(old, [
        wa("hello", t=1),
        wa("<image omitted>", t=2),  # an older version kept these as speech
        wa("null", t=3),
        wa("Данное сообщение удалено", t=4),
        wa("bis gleich <Diese Nachricht wurde bearbeitet>", t=5),
        wa(CLIPBOARD, t=6),
        Message("messenger:inbox/bob_1", "messenger", "Bob", None, 1600000007.0, "Bob named the group Trip.", "text"),
        Message("telegram:1", "telegram", "Cy", "user3", 1600000008.0, "news of the day", "forward"),
    ])
    new = tmp_path / "new.jsonl"
    code, report = import_json(capsys, old, "-o", new)
    assert code == 0
    messages = list(read_corpus(new))
    assert [(m.kind, m.text) for m in messages] == [
        ("text", "hello"), ("photo", ""), ("text", "bis gleich"), ("paste", CLIPBOARD), ("forward", "news of the day")]
    skipped = report["files"][0]["skipped"]
    assert skipped == {"app line: null placeholder": 1, "deleted": 1, "system event": 1}
    assert report["set_aside"] == {"forwarded": 1, CODE_OR_DATA: 1}
    # and once more: the rules are stable
    again = tmp_path / "again.jsonl"
    import_json(capsys, new, "-o", again)
    assert [(m.kind, m.text) for m in read_corpus(again)] == [(m.kind, m.text) for m in messages]


def test_old_corpora_still_read_and_the_new_kinds_are_known():
    assert set(OTHER_WORDS_KINDS) <= set(KINDS)
    assert NOT_OWN_WORDS <= set(KINDS)  # every kind the stream skips is a corpus kind
    for kind in NOT_OWN_WORDS:
        assert message_text(kind, "someone else's words") is None
    assert message_text("text", "mine") == "mine"
    assert message_text("photo", "my caption") == "my caption"
