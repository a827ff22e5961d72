"""Content-addressed store for raw uploads: each distinct file once, under its SHA-256.

Uploads are kept until their receipt is written, so a crash mid-ingest can resume from the
raw bytes. The store lives on any fsspec filesystem (a local folder by default, or a URL such
as ``s3://bucket/raw``). On a local disk files are written to a temporary name, flushed to
disk and renamed into place, so a reader never sees half a file and a crash leaves at worst a
stray temporary file; on an object store a finished upload appears at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from fsspec.implementations.local import LocalFileSystem

from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.storage import open_root

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


class RawStore:
    """Files under `root/ab/cd/<sha256>`; two levels of fan-out keep folders small at 10^9 files.

    `root` is a local path or an fsspec URL.
    """

    def __init__(self, root: Path | str) -> None:
        self.fs, self.root = open_root(root)
        self.local = isinstance(self.fs, LocalFileSystem)
        self._incoming = f"{self.root}/incoming"

    def location(self, sha256: str) -> str:
        """Where the file with this hash lives inside `self.fs` (whether or not it is there)."""
        if not _SHA256.fullmatch(sha256):
            raise InvalidInputError(f"not a SHA-256 hex digest: {sha256!r}")
        return f"{self.root}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path(self, sha256: str) -> Path:
        """The local file with this hash; only a store on the local disk has one."""
        location = self.location(sha256)
        if not self.local:
            raise StateError(f"the raw store {self.fs.unstrip_protocol(self.root)} is not on the local disk")
        return Path(location)

    def exists(self, sha256: str) -> bool:
        return bool(self.fs.isfile(self.location(sha256)))

    def put_file(self, path: Path) -> str:
        """Store a copy of the file, streamed and hashed in one pass; returns its SHA-256.

        Storing content that is already there changes nothing, so retries are harmless.
        """
        if not self.local:
            return self._put_remote(path)
        incoming = Path(self._incoming)
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with path.open("rb") as source, tempfile.NamedTemporaryFile(dir=incoming, delete=False) as temp:
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

    def _put_remote(self, path: Path) -> str:
        """Hash first, then upload under a temporary name and move it into place (a server-side copy)."""
        with path.open("rb") as source:
            sha256 = hashlib.file_digest(source, "sha256").hexdigest()
        target = self.location(sha256)
        if self.fs.isfile(target):
            return sha256
        temp = f"{self._incoming}/{uuid.uuid4().hex}"
        self.fs.put_file(str(path), temp)
        self.fs.mv(temp, target)
        return sha256

    def open(self, sha256: str) -> BinaryIO:
        """The stored file, opened for binary reading."""
        try:
            return cast(BinaryIO, self.fs.open(self.location(sha256), "rb"))
        except FileNotFoundError:
            raise NotFoundError(f"no raw file {sha256}") from None

    @contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """A local file with the stored content: the file itself on a local store, else a spooled copy.

        Readers need a seekable local file (zip archives, PDF); the copy is removed on exit.
        """
        if self.local:
            yield self.path(sha256)
            return
        with tempfile.TemporaryDirectory(prefix="tokenclub-raw-") as folder:
            copy = Path(folder) / sha256
            with self.open(sha256) as source, copy.open("wb") as sink:
                shutil.copyfileobj(source, sink, _CHUNK)
            yield copy

    def delete(self, sha256: str) -> None:
        """Remove the stored file; removing one that is not there is not an error (retries)."""
        location = self.location(sha256)
        if self.local:
            Path(location).unlink(missing_ok=True)
        elif self.fs.isfile(location):
            self.fs.rm_file(location)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: on POSIX it lives in the folder's entry, not the file."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
