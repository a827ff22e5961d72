"""Walking a folder upload without ever leaving it.

A folder handed over by a partner is untrusted like an archive: `ln -s /etc/passwd up/a.txt`
must not put the server's password file into the corpus. Only regular files with a single
name are read; symbolic links, hard links and special files (FIFOs, sockets, devices) are
refused one by one with a reason, as links inside tar archives are.

Hard links are refused too. A second name for a file is indistinguishable from the first: the
link inside the upload may be the way in to a file outside it (anything on the same filesystem
that the uploading account could read, later read again by a service with more rights), and
nothing in the folder tells which name is the "real" one. Folders with hard links are rare
(backup trees); copying the file gives it one name and makes it readable.

Every file is opened with O_NOFOLLOW and checked again on the open descriptor, so a file
swapped for a link between the walk and the read is refused rather than followed.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractionFailure

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True, slots=True)
class FolderFile:
    """A regular file of a folder upload: its name in the upload and its path here."""

    name: str
    path: Path


def refusal(mode: int, links: int) -> str | None:
    """Why a file with this `lstat` mode and link count may not be read, or None if it may."""
    if stat.S_ISLNK(mode):
        return "symbolic link; skipped (uploads never follow links)"
    if not stat.S_ISREG(mode):
        return f"not a regular file ({_kind(mode)}); skipped"
    if links > 1:
        return f"hard link ({links} names for one file); skipped: copy the file to upload it"
    return None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def walk_folder(folder: Path, name: str) -> Iterator[FolderFile | ExtractionFailure]:
    """Regular files under `folder` in name order, named `name/relative/path`; the rest refused.

    Links to folders are refused like links to files: the walk never leaves `folder`.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as err:
        yield ExtractionFailure(name, f"cannot list the folder: {err.strerror or err}")
        return
    for entry in entries:
        shown = f"{name}/{entry.name}"
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as err:
            yield ExtractionFailure(shown, f"cannot open: {err.strerror or err}")
            continue
        if stat.S_ISDIR(info.st_mode):
            yield from walk_folder(Path(entry.path), shown)
            continue
        reason = refusal(info.st_mode, info.st_nlink)
        if reason is not None:
            yield ExtractionFailure(shown, reason)
        else:
            yield FolderFile(shown, Path(entry.path))


def open_regular(path: Path, source: str) -> io.BufferedReader:
    """Open a file for reading only if it is still a regular file with one name (no link followed)."""
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        if os.path.islink(path):
            raise ExtractionError(source, "symbolic link; skipped (uploads never follow links)") from None
        raise ExtractionError(source, f"cannot open: {err.strerror or err}") from None
    info = os.fstat(descriptor)
    reason = refusal(info.st_mode, info.st_nlink)
    if reason is not None:
        os.close(descriptor)
        raise ExtractionError(source, reason)
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")
