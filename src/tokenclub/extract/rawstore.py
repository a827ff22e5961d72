"""Content-addressed store for raw uploads: each distinct file once, under its SHA-256.

Uploads are kept until their receipt is written, so a crash mid-ingest can resume from the
raw bytes. Files are written to a temporary name, flushed to disk and renamed into place,
so a reader never sees half a file and a crash leaves at worst a stray temporary file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from tokenclub.errors import InvalidInputError, NotFoundError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


class RawStore:
    """Files under `root/ab/cd/<sha256>`; two levels of fan-out keep folders small at 10^9 files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / "incoming"

    def path(self, sha256: str) -> Path:
        """Where the file with this hash lives (whether or not it is there)."""
        if not _SHA256.fullmatch(sha256):
            raise InvalidInputError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, path: Path) -> str:
        """Store a copy of the file, streamed and hashed in one pass; returns its SHA-256.

        Storing content that is already there changes nothing, so retries are harmless.
        """
        self._incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with path.open("rb") as source, tempfile.NamedTemporaryFile(dir=self._incoming, delete=False) as temp:
            try:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    temp.write(chunk)
                temp.flush()
                os.fsync(temp.fileno())
            except BaseException:
                os.unlink(temp.name)
                raise
        sha256 = digest.hexdigest()
        target = self.path(sha256)
        if target.exists():
            os.unlink(temp.name)
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp.name, 0o444)  # content-addressed files never change
        os.replace(temp.name, target)
        _fsync_dir(target.parent)
        return sha256

    def open(self, sha256: str) -> BinaryIO:
        """The stored file, opened for binary reading."""
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"no raw file {sha256}") from None

    def delete(self, sha256: str) -> None:
        """Remove the stored file; removing one that is not there is not an error (retries)."""
        self.path(sha256).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: on POSIX it lives in the folder's entry, not the file."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
