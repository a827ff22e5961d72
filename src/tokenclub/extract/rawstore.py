"""Content-addressed store for raw uploads: each distinct file once, under its SHA-256.

Uploads are kept until their receipt is written, so a crash mid-ingest can resume from the
raw bytes. The store lives on any fsspec filesystem (a local folder by default, or a URL such
as ``s3://bucket/raw``). On a local disk files are written to a temporary name, flushed to
disk and renamed into place, so a reader never sees half a file and a crash leaves at worst a
stray temporary file; on an object store a finished upload appears at once.

Given a `Sealing`, files are stored encrypted (see `atrest`); the address stays the SHA-256
of the plaintext, and `open` gives the plaintext back. Files are 0600 and folders 0700.
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
from typing import IO

from fsspec.implementations.local import LocalFileSystem

from tokenclub.atrest.objects import (
    Sealing,
    make_private_dirs,
    open_own,
    open_read,
    open_write,
    plaintext_size,
)
from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.extract.folder import open_regular
from tokenclub.storage import open_root

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


class RawStore:
    """Files under `root/ab/cd/<sha256>`; two levels of fan-out keep folders small at 10^9 files.

    `root` is a local path or an fsspec URL.
    """

    def __init__(self, root: Path | str, sealing: Sealing | None = None) -> None:
        self.fs, self.root = open_root(root)
        self.sealing = sealing
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

    def put_file(self, path: Path, *, regular_only: bool = False, sealed: bool = False) -> str:
        """Store a copy of the file, streamed and hashed in one pass; returns its SHA-256.

        Storing content that is already there changes nothing, so retries are harmless.
        With `regular_only` (a file found in a folder upload) the file is opened without
        following links and refused unless it is still a regular file with one name.
        With `sealed` the file is one this home sealed with the store's key (an upload staged by
        the data API): its plaintext is stored, decrypted on the way, never written out plain.
        """
        if not self.local:
            return self._put_remote(path, regular_only, sealed)
        make_private_dirs(self.fs, self._incoming)
        digest = hashlib.sha256()
        temp = f"{self._incoming}/{uuid.uuid4().hex}"
        try:
            with (
                self._open_source(path, regular_only, sealed) as source,
                open_write(self.fs, temp, self.sealing) as sink,
            ):
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
                sink.flush()
                if self.sealing is None:
                    os.fsync(sink.fileno())
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        sha256 = digest.hexdigest()
        target = self.path(sha256)
        if target.exists():
            os.unlink(temp)
            return sha256
        make_private_dirs(self.fs, str(target.parent))
        os.replace(temp, target)
        _fsync_dir(target.parent)
        return sha256

    def _put_remote(self, path: Path, regular_only: bool, sealed: bool) -> str:
        """Hash first, then upload under a temporary name and move it into place (a server-side copy)."""
        with self._open_source(path, regular_only, sealed) as source:
            digest = hashlib.sha256()
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
            sha256 = digest.hexdigest()
        target = self.location(sha256)
        if self.fs.isfile(target):
            return sha256
        temp = f"{self._incoming}/{uuid.uuid4().hex}"
        with (
            self._open_source(path, regular_only, sealed) as source,
            open_write(self.fs, temp, self.sealing) as sink,
        ):
            shutil.copyfileobj(source, sink, _CHUNK)
        self.fs.mv(temp, target)
        return sha256

    def _open_source(self, path: Path, regular_only: bool, sealed: bool) -> IO[bytes]:
        if sealed:
            return open_own(path, self.sealing)
        return open_regular(path, str(path)) if regular_only else path.open("rb")

    def size(self, sha256: str) -> int:
        """The plaintext size of a stored file."""
        with self.reader(sha256) as (_, size):
            return size

    def open(self, sha256: str) -> IO[bytes]:
        """The stored file's content (decrypted if sealed), opened for seekable binary reading."""
        try:
            return open_read(self.fs, self.location(sha256), self.sealing)
        except FileNotFoundError:
            raise NotFoundError(f"no raw file {sha256}") from None

    @contextmanager
    def reader(self, sha256: str) -> Iterator[tuple[IO[bytes], int]]:
        """The stored content as a seekable stream and its size: what readers read uploads from."""
        with self.open(sha256) as stream:
            yield stream, plaintext_size(stream)

    @contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """A local plaintext file with the stored content: the file itself on an unsealed local store,
        else a copy in a private temporary folder, removed on exit.

        Prefer `reader`: it never puts plaintext on disk.
        """
        if self.local and self.sealing is None:
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
