"""`talklike chat`, `sample` and `simulate` from the command line."""

from __future__ import annotations

import io
import json

import pytest

from talklike.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, monkeypatch, argv, stdin: str = ""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_scripted_one_reply_per_line(capsys, monkeypatch, trained_artifact):
    lines = "hello\n\nhow are you?\n/persona Bob\nand you?\n"
    code, out, err = run(capsys, monkeypatch, ["chat", str(trained_artifact), "--persona", "Alice", "--seed", "3"], lines)
    assert code == 0
    replies = out.split("\n")[:-1]
    assert len(replies) == 4  # three messages and the empty line; the command answers on stderr
    assert replies[1] == ""
    assert all(replies[i].strip() for i in (0, 2, 3))
    assert "Now speaking as Bob." in err


def test_chat_history_survives_in_a_store(capsys, monkeypatch, trained_artifact, tmp_path):
    argv = ["chat", str(trained_artifact), "--persona", "Alice", "--as", "Bob", "--store", f"sqlite:///{tmp_path / 'c.db'}"]
    assert run(capsys, monkeypatch, argv, "first message\n")[0] == 0
    code, out, err = run(capsys, monkeypatch, argv, "/history\n/reset\n/history\n")
    assert code == 0 and out == ""
    assert err.startswith("Bob: first message\nAlice: ")
    assert "\nStarting over" in err and err.rstrip().endswith("(nothing said yet)")


def test_chat_commands_errors_keep_going(capsys, monkeypatch, tiny_artifact):
    lines = "/temperature hot\n/temperature 0.5\n/temperature\n/persona Zed\n/nope\nhi\n/quit\nnot read\n"
    code, out, err = run(capsys, monkeypatch, ["chat", str(tiny_artifact), "--persona", "Alice"], lines)
    assert code == 0
    assert "temperature must be a number" in err and "Temperature set to 0.5" in err and "Temperature is 0.5" in err
    assert "I can't be Zed" in err and "I don't know /nope" in err
    assert out.count("\n") == 1 + 3  # the reply to "hi", plus a blank line for each failed command (3)


def test_sample_json(capsys, monkeypatch, trained_artifact):
    argv = ["sample", str(trained_artifact), "--persona", "Alice", "-n", "3", "--prime", "hi", "--seed", "1", "--json"]
    code, out, _ = run(capsys, monkeypatch, argv)
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"persona", "samples"} and data["persona"] == "Alice"
    assert len(data["samples"]) == 3 and all(s.startswith("hi") for s in data["samples"])
    assert run(capsys, monkeypatch, argv)[1] == out  # the seed makes it reproducible


def test_sample_text(capsys, monkeypatch, tiny_artifact):
    code, out, _ = run(capsys, monkeypatch, ["sample", str(tiny_artifact), "--persona", "Bob", "-n", "2",
                                             "--max-chars", "10", "--min-chars", "10"])
    assert code == 0 and len(out.splitlines()) >= 2


def test_simulate_runs_the_turns(capsys, monkeypatch, trained_artifact):
    code, out, _ = run(capsys, monkeypatch, ["simulate", str(trained_artifact), "--turns", "4", "--seed", "0", "--no-guard",
                                             "--temperature", "0"])
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    speakers = [line.split(":", 1)[0] for line in lines]
    assert set(speakers) <= {"Alice", "Bob"}
    # The next-speaker head learned that Alice and Bob take turns.
    assert all(a != b for a, b in zip(speakers, speakers[1:], strict=False))
    code, out, _ = run(capsys, monkeypatch, ["simulate", str(trained_artifact), "--personas", "Bob", "--turns", "2"])
    assert code == 0 and [line.split(":")[0] for line in out.splitlines()] == ["Bob", "Bob"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["chat", "{model}", "--persona", "Zed"], "persona 'Zed' is not available here; choose from: Alice, Bob"),
        (["sample", "{model}", "--persona", "Zed"], "persona 'Zed' is not available here"),
        (["sample", "{model}", "--persona", "Alice", "-n", "0"], "-n must be at least 1"),
        (["sample", "{model}", "--persona", "Alice", "--temperature", "-2"], "temperature must be between"),
        (["simulate", "{model}", "--personas", "Alice,Zed", "--turns", "2"], "Zed"),
        (["simulate", "{model}", "--turns", "0"], "--turns must be at least 1"),
        (["chat", "{missing}", "--persona", "Alice"], "no such model file"),
        (["chat", "{model}", "--persona", "Alice", "--store", "postgres://x"], "unknown store"),
    ],
)
def test_user_mistakes_are_one_line_errors(capsys, monkeypatch, tiny_artifact, tmp_path, argv, message):
    argv = [a.format(model=tiny_artifact, missing=tmp_path / "nope.pt") for a in argv]
    code, out, err = run(capsys, monkeypatch, argv, "hi\n")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and err.startswith(f"talklike {argv[0]}: error:")
