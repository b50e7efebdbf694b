"""Walk the user's inputs — files, folders, zips (also zips inside folders) — into candidate files.

Detection needs only the first bytes of a file, so a candidate reads its head cheaply and its whole
content only once an importer has claimed it: a Facebook archive full of photos costs a few reads.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HEAD_BYTES = 64 * 1024
# Files that are never chat text; skipping them by name avoids reading gigabytes of media.
MEDIA_SUFFIXES = frozenset(
    ".jpg .jpeg .png .gif .webp .heic .bmp .tif .tiff .mp4 .mov .avi .mkv .webm .3gp .mp3 .m4a .aac "
    ".ogg .opus .oga .wav .flac .amr .pdf .vcf .tgs .psd .doc .docx .xls .xlsx .ppt .pptx .apk .exe".split()
)


@dataclass
class Candidate:
    """A file that might be a chat export. `explicit` is True when the user named it directly."""

    path: str
    size: int
    explicit: bool
    read_head: Callable[[], bytes]
    read_all: Callable[[], bytes]


def natural_key(name: str) -> list:
    """Sort key that orders message_2.json before message_10.json (numbers compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def iter_candidates(paths: list[str]) -> Iterator[Candidate | tuple[str, str]]:
    """Yield candidates, or (path, error) for an input that cannot be opened at all."""
    for path in paths:
        if os.path.isdir(path):
            yield from _walk_folder(path)
        elif os.path.isfile(path):
            if zipfile.is_zipfile(path):
                yield from _walk_zip(path, explicit=True)
            else:
                yield _disk_candidate(path, explicit=True)
        elif os.path.exists(path):
            yield path, "not a regular file"
        else:
            yield path, "no such file or folder"


def _disk_candidate(path: str, explicit: bool) -> Candidate:
    def read_head() -> bytes:
        with open(path, "rb") as handle:
            return handle.read(HEAD_BYTES)

    def read_all() -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    return Candidate(path, os.path.getsize(path), explicit, read_head, read_all)


def _walk_folder(root: str) -> Iterator[Candidate | tuple[str, str]]:
    for folder, subfolders, files in os.walk(root):
        subfolders.sort(key=natural_key)
        for name in sorted(files, key=natural_key):
            path = os.path.join(folder, name)
            if _is_media_name(name) or not os.path.isfile(path):
                continue
            if name.lower().endswith(".zip") and zipfile.is_zipfile(path):
                yield from _walk_zip(path, explicit=False)
            else:
                yield _disk_candidate(path, explicit=False)


def _walk_zip(path: str, explicit: bool) -> Iterator[Candidate | tuple[str, str]]:
    try:
        archive = zipfile.ZipFile(path)
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        yield path, f"cannot open zip ({err})"
        return
    with archive:
        members.sort(key=lambda info: natural_key(info.filename))
        for info in members:
            name = info.filename
            if _is_media_name(name) or "__MACOSX/" in name:
                continue
            display = f"{path}!{name}"
            try:
                if name.lower().endswith(".zip"):
                    # A zip inside a zip (a WhatsApp export inside a backup folder): read it into memory.
                    inner = zipfile.ZipFile(io.BytesIO(archive.read(info)))
                    with inner:
                        for inner_info in inner.infolist():
                            if inner_info.is_dir() or _is_media_name(inner_info.filename):
                                continue
                            data = inner.read(inner_info)
                            yield _memory_candidate(f"{display}!{inner_info.filename}", data, explicit)
                    continue
                # Read eagerly: member files are chat-sized (media are skipped above) and the zip stays simple.
                yield _memory_candidate(display, archive.read(info), explicit)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as err:
                yield display, f"cannot read from zip ({err})"


def _memory_candidate(display: str, data: bytes, explicit: bool) -> Candidate:
    return Candidate(display, len(data), explicit, lambda: data[:HEAD_BYTES], lambda: data)


def _is_media_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES
