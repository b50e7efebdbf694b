"""`talklike import` end to end: walking inputs, detection by content, filters, scrubbing, the report."""

from __future__ import annotations

import json
import zipfile

import pytest

from talklike.cli import main
from training.corpus import read_corpus
from training.importers.sources import iter_candidates, natural_key

CSV = "author,text,timestamp,conversation\nAda,hi there,1600000000,g\nBoris,HELLO!!!,1600000060,g\nAda,mail me ada@example.com,1600000120,g\n"


def run(capsys, *argv):
    code = main(["import", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def import_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    return code, json.loads(out), err


def test_natural_order_puts_message_10_after_message_9():
    names = ["message_10.json", "message_2.json", "message_1.json", "message_9.json"]
    assert sorted(names, key=natural_key) == ["message_1.json", "message_2.json", "message_9.json", "message_10.json"]


def test_folders_and_zips_are_walked_and_media_skipped(tmp_path):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "chat.csv").write_text(CSV)
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff binary")
    with zipfile.ZipFile(folder / "more.zip", "w") as archive:
        archive.writestr("inner/chat.csv", CSV)
        archive.writestr("inner/voice.opus", b"OggS")
    paths = [c.path for c in iter_candidates([str(folder)])]
    assert any(p.endswith("sub/chat.csv") for p in paths)
    assert any(p.endswith("more.zip!inner/chat.csv") for p in paths)
    assert not any(p.endswith((".jpg", ".opus")) for p in paths)


def test_format_is_detected_from_content_not_name(tmp_path, capsys):
    misnamed = tmp_path / "notes.txt"
    misnamed.write_text(CSV)
    code, report, _ = import_json(capsys, misnamed, "-o", tmp_path / "c.jsonl")
    assert code == 0
    assert report["files"][0]["format"] == "csv"
    assert report["messages"] == 3


def test_report_keys_and_corpus_contract(tmp_path, capsys):
    source = tmp_path / "chat.csv"
    source.write_text(CSV)
    out = tmp_path / "corpus.jsonl"
    code, report, _ = import_json(capsys, source, "-o", out)
    assert code == 0
    assert {"messages", "authors", "conversations", "files"} <= set(report)
    assert report["authors"] == {"Ada": 2, "Boris": 1}
    assert report["files"][0]["path"] == str(source)
    assert report["files"][0]["messages"] == 3
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert set(lines[0]) == {"conversation", "platform", "author", "author_id", "timestamp", "text", "kind"}
    assert [m["timestamp"] for m in lines] == sorted(m["timestamp"] for m in lines)


def test_pii_is_scrubbed_by_default_and_kept_with_no_scrub(tmp_path, capsys):
    source = tmp_path / "chat.csv"
    source.write_text(CSV)
    run(capsys, source, "-o", tmp_path / "a.jsonl")
    assert "ada@example.com" not in (tmp_path / "a.jsonl").read_text()
    assert "<email>" in (tmp_path / "a.jsonl").read_text()
    run(capsys, source, "-o", tmp_path / "b.jsonl", "--no-scrub")
    assert "ada@example.com" in (tmp_path / "b.jsonl").read_text()


def test_the_report_counts_what_was_masked_by_kind_and_what_was_cut(tmp_path, capsys):
    rows = [
        "Ada,call me on 06 12 34 56 78 or +49 171 2345678,1600000000",
        "Boris,IBAN DE89 3704 0044 0532 0130 00 and t.me/boris,1600000060",
        f"Ada,{'spam ' * 30}0612345678,1600000120",  # over the cap: cut before the number
        "Boris,see you at 21:43 on 13.06.2018,1600000180",
    ]
    source = tmp_path / "chat.csv"
    source.write_text("author,text,timestamp\n" + "\n".join(rows) + "\n")
    code, report, _ = import_json(capsys, source, "-o", tmp_path / "c.jsonl", "--max-message-chars", "100")
    assert code == 0
    assert report["masked"] == {"phone": 2, "iban": 1, "url": 1}
    assert report["files"][0]["masked"] == {"iban": 1, "phone": 2, "url": 1}
    assert report["cut_to_length"] == report["files"][0]["cut_to_length"] == 1
    texts = [m.text for m in read_corpus(tmp_path / "c.jsonl")]
    assert texts[0] == "call me on <phone> or <phone>" and len(texts[2]) == 100
    assert texts[3] == "see you at 21:43 on 13.06.2018"
    code, out, _ = run(capsys, source, "-o", tmp_path / "d.jsonl", "--max-message-chars", "100")
    assert "masked: phone 2, iban 1, url 1" in out and "cut to the length cap before scrubbing: 1" in out
    code, report, _ = import_json(capsys, source, "-o", tmp_path / "e.jsonl", "--no-scrub")
    assert report["masked"] == {} and report["cut_to_length"] == 0
    assert "+49 171 2345678" in (tmp_path / "e.jsonl").read_text()


def test_alias_merges_identities_and_excludes_filter(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("author,text,conversation\nTimothy Smith,one,x\nTimmy,two,y\nEve,three,x\nBob,four,z\n")
    out = tmp_path / "c.jsonl"
    code, report, _ = import_json(
        capsys,
        tmp_path / "a.csv",
        "-o",
        out,
        "--alias",
        "Tim=Timothy Smith,Timmy",
        "--exclude-author",
        "Eve",
        "--exclude-conversation",
        "csv:z",
    )
    assert code == 0
    assert report["authors"] == {"Tim": 2}
    assert report["files"][0]["skipped"] == {"excluded author": 1, "excluded conversation": 1}


def test_since_and_until(tmp_path, capsys):
    rows = "\n".join(f"P{i % 2},msg {i},2023-01-{i + 1:02d}T12:00:00" for i in range(10))
    (tmp_path / "a.csv").write_text("author,text,timestamp\n" + rows + "\n")
    code, report, _ = import_json(
        capsys, tmp_path / "a.csv", "-o", tmp_path / "c.jsonl", "--since", "2023-01-03", "--until", "2023-01-06"
    )
    assert code == 0
    assert report["messages"] == 3
    assert report["files"][0]["skipped"] == {"before --since": 2, "after --until": 5}


def test_plain_text_needs_author(tmp_path, capsys):
    source = tmp_path / "diary.txt"
    source.write_text("first line\n\nsecond line 😂\n", encoding="utf-8")
    code, out, err = run(capsys, source, "-o", tmp_path / "c.jsonl")
    assert code == 2 and "no messages imported" in err
    assert "unrecognised format" in out
    code, report, _ = import_json(capsys, source, "-o", tmp_path / "c.jsonl", "--author", "Me")
    assert code == 0
    assert report["authors"] == {"Me": 2}
    texts = [m.text for m in read_corpus(tmp_path / "c.jsonl")]
    assert texts == ["first line", "second line 😂"]


def test_a_bad_file_is_reported_and_the_rest_imported(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(CSV)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)))
    code, report, _ = import_json(capsys, good, empty, junk, tmp_path / "missing.json", "-o", tmp_path / "c.jsonl")
    assert code == 1  # something failed
    errors = {f["path"]: f["error"] for f in report["files"] if "error" in f}
    assert errors[str(empty)] == "empty file"
    assert "unrecognised" in errors[str(junk)]
    assert "no such file" in errors[str(tmp_path / "missing.json")]
    assert report["messages"] == 3
    code, out, err = run(capsys, good, empty, "-o", tmp_path / "d.jsonl")
    assert f"error: {empty}: empty file" in out and "Traceback" not in out + err


def test_strict_stops_at_the_first_failure(tmp_path, capsys):
    (tmp_path / "a.json").write_text("")
    (tmp_path / "b.csv").write_text(CSV)
    code, out, err = run(capsys, tmp_path / "a.json", tmp_path / "b.csv", "-o", tmp_path / "c.jsonl", "--strict")
    assert code == 2
    assert f"{tmp_path / 'a.json'}: empty file" in err
    assert not (tmp_path / "c.jsonl").exists()


def test_failed_import_never_touches_an_existing_corpus(tmp_path, capsys):
    out = tmp_path / "corpus.jsonl"
    out.write_text("precious\n")
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = run(capsys, tmp_path / "bad.json", "-o", out)
    assert code == 2 and "no messages imported" in err
    assert out.read_text() == "precious\n"


def test_duplicates_across_inputs_are_counted_not_doubled(tmp_path, capsys):
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "b.csv").write_text(CSV)
    code, report, _ = import_json(capsys, tmp_path / "a.csv", tmp_path / "b.csv", "-o", tmp_path / "c.jsonl")
    assert report["messages"] == 3
    assert report["files"][1]["skipped"] == {"duplicate of another input": 3}


def test_corpus_can_be_reimported_and_output_must_differ_from_input(tmp_path, capsys):
    (tmp_path / "a.csv").write_text(CSV)
    run(capsys, tmp_path / "a.csv", "-o", tmp_path / "c.jsonl")
    code, report, _ = import_json(capsys, tmp_path / "c.jsonl", "-o", tmp_path / "d.jsonl", "--exclude-author", "Boris")
    assert report["files"][0]["format"] == "corpus" and report["authors"] == {"Ada": 2}
    code, _, err = run(capsys, tmp_path / "c.jsonl", "-o", tmp_path / "c.jsonl")
    assert code == 2 and "also an input" in err


def test_stats_prints_the_same_summary(tmp_path, capsys):
    (tmp_path / "a.csv").write_text(CSV)
    _, imported, _ = import_json(capsys, tmp_path / "a.csv", "-o", tmp_path / "c.jsonl")
    assert main(["stats", str(tmp_path / "c.jsonl"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    for key in ("messages", "authors", "conversations", "conversation_messages"):
        assert stats[key] == imported[key]
    assert sum(stats["conversation_messages"].values()) == stats["messages"]
    assert main(["stats", str(tmp_path / "c.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "Ada" in out
    for key, count in stats["conversation_messages"].items():  # the keys --exclude-conversation takes
        assert any(line.split() == [key, str(count)] for line in out.splitlines())


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"conversation": "x", "author": "A", "text": 5}\n', "field 'text' must be a string"),
        ('{"conversation": "x", "author": "A", "text": "t", "phone": "1"}\n', "unknown field"),
        ("not json\n", "not valid JSON"),
    ],
)
def test_stats_names_the_bad_line(tmp_path, capsys, content, message):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"conversation": "x", "author": "A", "text": "ok"}\n' + content)
    assert main(["stats", str(corpus)]) == 2
    err = capsys.readouterr().err
    assert f"{corpus}:2" in err and message in err


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "a.csv").write_text(CSV)
    for argv, expected in (
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--alias", "Tim"], "--alias 'Tim'"),
        (["--since", "2023-02-01", "--until", "2023-01-01"], "--since must be before --until"),
        (["--max-message-chars", "0"], "expected a positive whole number"),
        (["--max-file-mb", "lots"], "expected a positive whole number"),
    ):
        code, _, err = run(capsys, tmp_path / "a.csv", "-o", tmp_path / "c.jsonl", *argv)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
