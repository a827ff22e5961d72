"""Stored objects as the stores see them: written sealed, read back as plaintext, and private.

`Sealing` is what a store is given to encrypt (None: plaintext, for tests and for an
operator who turned encryption off). Reading tells sealed objects from plain ones by their
magic bytes, so a home written before encryption was turned on stays readable and is
sealed object by object as it is rewritten. On a local disk files are created 0600 and
folders 0700, whatever the umask.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tokenclub.atrest.keys import (
    KEY_FILE_NAME,
    KeyWrapper,
    key_from_env,
    load_key_file,
    load_kms,
)
from tokenclub.atrest.sealed import (
    CHUNK_SIZE,
    HEADER_SIZE,
    MAGIC,
    SealedReader,
    SealedWriter,
    SealError,
    is_sealed,
    rewrap_header,
)

if TYPE_CHECKING:
    from tokenclub.settings import Settings

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_LOCAL = LocalFileSystem()


@dataclass(frozen=True, slots=True)
class Sealing:
    """How a store seals what it writes: the master key wrapper and the chunk size."""

    wrapper: KeyWrapper
    chunk_size: int = CHUNK_SIZE


def sealing_for(settings: Settings) -> Sealing | None:
    """The configured sealing: a KMS, else the environment's key, else the home's key file."""
    if not settings.encrypt_at_rest:
        return None
    if settings.kms:
        return Sealing(load_kms(settings.kms))
    if settings.master_key is not None:
        return Sealing(key_from_env(settings.master_key.get_secret_value()))
    return Sealing(load_key_file(key_file_path(settings)))


def key_file_path(settings: Settings) -> Path:
    return settings.master_key_file or settings.home / KEY_FILE_NAME


def make_private_dirs(fs: fsspec.AbstractFileSystem, folder: str) -> None:
    """Create `folder` (and its parents); on a local disk every folder created is 0700."""
    if not isinstance(fs, LocalFileSystem):
        fs.makedirs(folder, exist_ok=True)
        return
    missing: list[Path] = []
    path = Path(folder)
    while not path.exists():
        missing.append(path)
        path = path.parent
    for created in reversed(missing):
        created.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.chmod(created, FOLDER_MODE)


def open_private(fs: fsspec.AbstractFileSystem, path: str) -> IO[bytes]:
    """A new file for writing; on a local disk created 0600 from the start (no window at 0644)."""
    if isinstance(fs, LocalFileSystem):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(descriptor, FILE_MODE)
        return os.fdopen(descriptor, "wb")
    return cast(IO[bytes], fs.open(path, "wb"))


class _SealedSink(io.RawIOBase):
    """A sealed writer that also closes (and syncs, on a local disk) the file beneath it."""

    def __init__(self, sink: IO[bytes], sealing: Sealing) -> None:
        super().__init__()
        self._sink = sink
        self._writer = SealedWriter(sink, sealing.wrapper, sealing.chunk_size)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._writer.tell()

    def write(self, data: object) -> int:
        return self._writer.write(data)  # type: ignore[arg-type]

    def close(self) -> None:
        if not self.closed:
            self._writer.close()
            self._sink.flush()
            if hasattr(self._sink, "fileno") and isinstance(self._sink, io.BufferedWriter):
                os.fsync(self._sink.fileno())
            self._sink.close()
        super().close()


def open_write(fs: fsspec.AbstractFileSystem, path: str, sealing: Sealing | None) -> IO[bytes]:
    """A file that stores what is written to it, sealed if `sealing` is given."""
    sink = open_private(fs, path)
    if sealing is None:
        return sink
    return io.BufferedWriter(_SealedSink(sink, sealing), buffer_size=CHUNK_SIZE)


def open_read(fs: fsspec.AbstractFileSystem, path: str, sealing: Sealing | None) -> IO[bytes]:
    """The plaintext of a stored file, seekable: decrypted if sealed, as it is if not."""
    source = cast(IO[bytes], fs.open(path, "rb"))
    head = source.read(len(MAGIC))
    source.seek(0)
    if not is_sealed(head):
        return source
    if sealing is None:
        source.close()
        raise SealError(f"{path}: encrypted at rest, and no master key is configured")
    reader = SealedReader(source, int(fs.size(path)), sealing.wrapper, path)
    return io.BufferedReader(reader, buffer_size=sealing.chunk_size)


def open_own(path: Path, sealing: Sealing | None) -> IO[bytes]:
    """The plaintext of a local file this home wrote with `open_write` under the same `sealing`.

    Unlike `open_read`, which takes a plain file for one written before encryption was turned
    on, this refuses a file that should be sealed and is not: it was replaced behind our back.
    """
    stream = open_read(_LOCAL, str(path), sealing)
    if sealing is not None and not isinstance(getattr(stream, "raw", None), SealedReader):
        stream.close()
        raise SealError(f"{path}: expected an encrypted file, found plaintext (replaced or tampered with)")
    return stream


def plaintext_size(stream: IO[bytes]) -> int:
    """The plaintext size of a stream from `open_read`."""
    raw = getattr(stream, "raw", None)
    if isinstance(raw, SealedReader):
        return raw.size
    position = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(position)
    return size


def rewrap_files(
    fs: fsspec.AbstractFileSystem, root: str, old: KeyWrapper, new: KeyWrapper
) -> tuple[int, int]:
    """Re-wrap the data key of every sealed file under `root` with `new`; (re-wrapped, already current).

    Only headers change: on a local disk the header is overwritten in place and synced; an
    object store has no in-place writes, so there the object is copied with the new header
    (the ciphertext bytes unchanged, nothing decrypted).
    """
    rewrapped = current = 0
    for path in _files(fs, root):
        with fs.open(path, "rb") as source:
            header = source.read(HEADER_SIZE)
        if not is_sealed(header):
            continue
        new_header = rewrap_header(header, old, new, path)
        if new_header is None:
            current += 1
            continue
        if isinstance(fs, LocalFileSystem):
            descriptor = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(descriptor, new_header, 0)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        else:
            with fs.open(path, "rb") as source:
                source.seek(HEADER_SIZE)
                body = source.read()
            fs.pipe_file(path, new_header + body)
        rewrapped += 1
    return rewrapped, current


def _files(fs: fsspec.AbstractFileSystem, root: str) -> Iterator[str]:
    if not fs.exists(root):
        return
    for path in sorted(fs.find(root)):
        name = path.rsplit("/", 1)[-1]
        if not name.startswith(".") and "/incoming/" not in path and ".tmp" not in name:
            yield path
