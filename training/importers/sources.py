"""Walk the user's inputs — files, folders, zips (also zips inside folders) — into candidate files.

Detection needs only the first bytes of a file, so a candidate reads its head cheaply and its whole
content only once an importer has claimed it: a Facebook archive full of photos costs a few reads.

Limits: a claimed file or zip member larger than `InputLimits.max_bytes`, or a member that inflates past
`max_ratio` times its compressed size (a zip bomb), is refused with one line naming it; a member is read
as a stream, so the refusal comes before its bytes are held in memory. Inside a folder, a symlink that
leads outside the folder is not followed (a named input that is itself a link is read).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from training.importers.base import ParseError

HEAD_BYTES = 64 * 1024
_CHUNK = 1 << 20
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


@dataclass(frozen=True)
class InputLimits:
    """How much one input file may hold; the defaults stay far above any real chat export."""

    max_bytes: int = 2 << 30  # 2 GiB, after decompression
    max_ratio: float = 200.0  # uncompressed / compressed; text and JSON compress 5-30 times, bombs 1000s
    ratio_floor: int = 16 << 20  # below 16 MiB a member may compress as well as it likes

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise ParseError(f"refused: larger than the {self.max_bytes >> 20} MB limit (--max-file-mb)")

    def check_ratio(self, size: int, compressed: int) -> None:
        if size > self.ratio_floor and size > self.max_ratio * max(compressed, 1):
            raise ParseError(f"refused: inflates {size // max(compressed, 1)} times over its compressed size "
                             f"(over {self.max_ratio:g}: a zip bomb?)")


@dataclass(frozen=True)
class NotFollowed:
    """A symlink inside a walked folder that leads outside it: named in the report, never read."""

    path: str
    target: str


def natural_key(name: str) -> list:
    """Sort key that orders message_2.json before message_10.json (numbers compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def iter_candidates(
    paths: list[str], limits: InputLimits | None = None
) -> Iterator[Candidate | NotFollowed | tuple[str, str]]:
    """Yield candidates, symlinks not followed, or (path, error) for an input that cannot be opened."""
    limits = limits or InputLimits()
    for path in paths:
        if os.path.isdir(path):
            yield from _walk_folder(path, limits)
        elif os.path.isfile(path):
            if zipfile.is_zipfile(path):
                yield from _walk_zip(path, True, limits)
            else:
                yield _disk_candidate(path, True, limits)
        elif os.path.exists(path):
            yield path, "not a regular file"
        else:
            yield path, "no such file or folder"


def _disk_candidate(path: str, explicit: bool, limits: InputLimits) -> Candidate:
    def read_head() -> bytes:
        with open(path, "rb") as handle:
            return handle.read(HEAD_BYTES)

    def read_all() -> bytes:
        limits.check_size(os.path.getsize(path))
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)  # a file still growing cannot pass the limit either
        limits.check_size(len(data))
        return data

    return Candidate(path, os.path.getsize(path), explicit, read_head, read_all)


def _walk_folder(root: str, limits: InputLimits) -> Iterator[Candidate | NotFollowed | tuple[str, str]]:
    """Every file under `root`, following symlinks only while they stay inside it (each folder once)."""
    inside = os.path.realpath(root)
    visited = {inside}
    for folder, subfolders, files in os.walk(root, followlinks=True):
        kept = []
        for name in sorted(subfolders, key=natural_key):
            path = os.path.join(folder, name)
            target = os.path.realpath(path)
            if not _within(target, inside):
                yield NotFollowed(path, target)
            elif target not in visited:  # a link back up, or a second link to one folder: walk it once
                visited.add(target)
                kept.append(name)
        subfolders[:] = kept
        for name in sorted(files, key=natural_key):
            path = os.path.join(folder, name)
            if _is_media_name(name):
                continue
            if os.path.islink(path) and not _within(os.path.realpath(path), inside):
                yield NotFollowed(path, os.path.realpath(path))
                continue
            if not os.path.isfile(path):
                continue
            if name.lower().endswith(".zip") and zipfile.is_zipfile(path):
                yield from _walk_zip(path, False, limits)
            else:
                yield _disk_candidate(path, False, limits)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk_zip(path: str, explicit: bool, limits: InputLimits) -> Iterator[Candidate | tuple[str, str]]:
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
                    # A zip inside a zip (a WhatsApp export inside a backup folder): held in memory, within
                    # the limits; its members are streamed from there like any other.
                    inner = zipfile.ZipFile(io.BytesIO(_read_member(archive, info, limits)))
                    with inner:
                        for inner_info in inner.infolist():
                            if inner_info.is_dir() or _is_media_name(inner_info.filename):
                                continue
                            yield _member_candidate(inner, inner_info, f"{display}!{inner_info.filename}",
                                                    explicit, limits)
                    continue
                yield _member_candidate(archive, info, display, explicit, limits)
            except ParseError as err:
                yield display, str(err)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as err:
                yield display, f"cannot read from zip ({err})"


def _member_candidate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, display: str, explicit: bool,
                      limits: InputLimits) -> Candidate:
    """A zip member read only when asked: its head for detection, all of it once an importer claims it."""

    def read_head() -> bytes:
        with _zip_errors(), archive.open(info) as stream:
            return stream.read(HEAD_BYTES)

    def read_all() -> bytes:
        with _zip_errors():
            return _read_member(archive, info, limits)

    return Candidate(display, info.file_size, explicit, read_head, read_all)


@contextmanager
def _zip_errors() -> Iterator[None]:
    """A damaged member is a ParseError naming what zip said, like any file that cannot be read."""
    try:
        yield
    except (zipfile.BadZipFile, ValueError, EOFError, zlib.error) as err:
        raise ParseError(f"cannot read from zip ({err})") from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: InputLimits) -> bytes:
    """The member's bytes, read in chunks and refused as soon as its size or inflation passes the limits
    (the sizes the zip declares are checked first, and then what actually comes out)."""
    limits.check_size(info.file_size)
    limits.check_ratio(info.file_size, info.compress_size)
    chunks = []
    total = 0
    with archive.open(info) as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            limits.check_size(total)
            limits.check_ratio(total, info.compress_size)
            chunks.append(chunk)
    return b"".join(chunks)


def _is_media_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES
