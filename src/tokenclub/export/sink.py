"""Writing export files on any fsspec store: checksummed as they stream, the manifest atomically."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


@dataclass(frozen=True, slots=True)
class ShardFile:
    """One written file of an export, as the manifest lists it (`path` relative to the export)."""

    path: str
    format: str
    shard: int | None
    bytes: int
    sha256: str
    documents: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "shard": self.shard,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "documents": self.documents,
        }


class HashingSink:
    """A binary file opened for writing on `fs` that hashes and counts every byte written to it.

    Writers that want a file object (pyarrow's Parquet writer among them) get this one, so the
    checksum in the manifest costs no second read of the shard.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self.path = path
        self._file = fs.open(path, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._file.write(view)
        self._hash.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __enter__(self) -> HashingSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """A reader sees the whole file or none: local files are renamed into place, object stores
    take one upload of the finished bytes (atomic there)."""
    if isinstance(fs, LocalFileSystem):
        temporary = f"{path}.tmp{os.getpid()}"
        with open(temporary, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    else:
        fs.pipe_file(path, data)
