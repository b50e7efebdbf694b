"""Import limits: files and zip members too large or inflating like a bomb are refused with one line,
zip members are streamed, and symlinks leading out of a folder are not followed."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from talklike.cli import main
from training.import_pipeline import ImportSettings, run_import
from training.importers.base import ParseError
from training.importers.sources import InputLimits, NotFollowed, iter_candidates

CSV = "author,text,timestamp\nAda,hi there,1600000000\nBoris,hello,1600000060\n"


def import_json(capsys, *argv):
    code = main(["import", *map(str, argv), "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def big_csv(rows: int) -> str:
    return "author,text,timestamp\n" + "".join(f"Ada,{'x' * 60} {i},{1600000000 + i}\n" for i in range(rows))


def test_a_file_over_the_size_cap_is_refused_and_the_rest_imported(tmp_path, capsys):
    (tmp_path / "good.csv").write_text(CSV)
    (tmp_path / "huge.csv").write_text(big_csv(20_000))  # about 1.4 MB
    code, report, _ = import_json(capsys, tmp_path / "good.csv", tmp_path / "huge.csv", "-o", tmp_path / "c.jsonl",
                                  "--max-file-mb", "1")
    assert code == 1 and report["messages"] == 2
    errors = {f["path"]: f["error"] for f in report["files"] if "error" in f}
    assert errors == {str(tmp_path / "huge.csv"): "refused: larger than the 1 MB limit (--max-file-mb)"}
    code = main(["import", str(tmp_path / "huge.csv"), str(tmp_path / "good.csv"), "-o", str(tmp_path / "d.jsonl"),
                 "--max-file-mb", "1"])
    out = capsys.readouterr()
    assert f"error: {tmp_path / 'huge.csv'}: refused: larger than the 1 MB limit" in out.out
    assert "Traceback" not in out.out + out.err


def test_zip_members_over_the_cap_or_inflating_like_a_bomb_are_refused(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("good/chat.csv", CSV)
        out.writestr("big/chat.csv", big_csv(20_000))
        out.writestr("bomb/chat.csv", "author,text\n" + "Ada," + "a" * (4 << 20) + "\n")  # ~4 MB, compresses ~1000x
    limits = InputLimits(max_bytes=1 << 20, max_ratio=100, ratio_floor=1 << 16)
    result = run_import([str(archive)], ImportSettings(limits=limits))
    errors = {report.path.split("!")[1]: report.error for report in result.files if report.error}
    assert errors["big/chat.csv"].startswith("refused: larger than the 1 MB limit")
    assert set(errors) == {"big/chat.csv", "bomb/chat.csv"}
    limits = InputLimits(max_bytes=64 << 20, max_ratio=100, ratio_floor=1 << 16)
    result = run_import([str(archive)], ImportSettings(limits=limits))
    errors = {report.path.split("!")[1]: report.error for report in result.files if report.error}
    assert list(errors) == ["bomb/chat.csv"] and "a zip bomb?" in errors["bomb/chat.csv"]
    assert len(result.messages) == 2 + 20_000


def test_a_member_is_read_in_chunks_and_refused_before_it_is_read(tmp_path, monkeypatch):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("chat.csv", big_csv(40_000))  # about 2.8 MB
    reads = []
    original = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        reads.append(n)
        return original(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    # a candidate reads from the open zip while the walk is on it (the walk closes the zip when done)
    walk = iter_candidates([str(archive)], InputLimits(max_bytes=10 << 20))
    candidate = next(walk)
    assert len(candidate.read_all()) > 2 << 20 and all(0 < n <= 1 << 20 for n in reads)  # never read whole
    walk = iter_candidates([str(archive)], InputLimits(max_bytes=1 << 20))
    candidate = next(walk)
    reads.clear()
    with pytest.raises(ParseError, match="refused: larger than"):
        candidate.read_all()
    assert reads == []  # the size the zip declares settles it


def test_symlinks_leading_outside_the_folder_are_not_followed(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(CSV.replace("hi there", "private"))
    (outside / "more").mkdir()
    (outside / "more" / "chat.csv").write_text(CSV)
    folder = tmp_path / "export"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "chat.csv").write_text(CSV)
    os.symlink(outside / "secret.csv", folder / "linked.csv")
    os.symlink(outside / "more", folder / "linked_folder")
    os.symlink(folder / "inner" / "chat.csv", folder / "inside_link.csv")  # stays inside: followed
    os.symlink(folder, folder / "inner" / "loop")  # back up the tree: walked once, no endless loop
    items = list(iter_candidates([str(folder)]))
    skipped = {item.path for item in items if isinstance(item, NotFollowed)}
    assert skipped == {str(folder / "linked.csv"), str(folder / "linked_folder")}
    read = sorted(os.path.relpath(item.path, folder) for item in items if not isinstance(item, NotFollowed))
    assert read == ["inner/chat.csv", "inside_link.csv"]
    code, report, _ = import_json(capsys, folder, "-o", tmp_path / "c.jsonl")
    assert code == 0 and "private" not in (tmp_path / "c.jsonl").read_text()
    assert {link["path"] for link in report["not_followed"]} == skipped
    main(["import", str(folder), "-o", str(tmp_path / "d.jsonl")])
    out = capsys.readouterr().out
    assert f"not followed: {folder / 'linked.csv'} (a symlink to {outside / 'secret.csv'}, outside the input)" in out
    # a link named on the command line is the input itself: it is read
    code, report, _ = import_json(capsys, folder / "linked.csv", "-o", tmp_path / "e.jsonl")
    assert code == 0 and report["messages"] == 2
