"""Sealed objects: a fixed-size header, then the plaintext in AES-256-GCM chunks.

Layout (all integers big-endian)::

    header (HEADER_SIZE bytes)
        magic        8  b"TCSEALv1"
        chunk size   4  plaintext bytes per chunk
        nonce prefix 7  random per object
        key id len   1, key id (≤ 64 bytes, ASCII), padded
        wrapped len  2, wrapped data key (≤ 384 bytes), padded
    chunk 0 … chunk n-1: ciphertext ‖ 16-byte tag

Chunk i is sealed with nonce = prefix ‖ i (4 bytes) ‖ last flag (1 byte), and with the
immutable part of the header (magic, chunk size, prefix) as associated data: the STREAM
construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) that Tink's streaming AEAD also
uses. Reordering, dropping or appending chunks, or cutting the object at a chunk boundary,
fails authentication; the last chunk is always present (empty for an empty object).

The wrapped key sits outside the associated data on purpose: `rewrap` swaps it (a new
master key) by rewriting the header alone. A header swapped for another object's fails
too, since the data key comes out wrong for this object's chunks.

Objects are read through `SealedReader`, a seekable raw file: zip archives, PDFs and
Parquet footers read backwards and at random, one chunk is decrypted per position. Memory
stays at one chunk however large the object is.
"""

from __future__ import annotations

import io
import os
import struct
from typing import IO, TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenclub.atrest.keys import KeyWrapper
from tokenclub.errors import StateError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

MAGIC = b"TCSEALv1"
HEADER_SIZE = 512
CHUNK_SIZE = 1024 * 1024
TAG_SIZE = 16
_PREFIX_SIZE = 7
_FIXED = struct.Struct(">8sI7s")
_MAX_KEY_ID = 64
_MAX_WRAPPED = 384
DATA_KEY_CONTEXT = b"tokenclub data key v1"


class SealError(StateError):
    """A sealed object that cannot be opened: wrong key, tampered with, or truncated."""


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


def _header(chunk_size: int, prefix: bytes, key_id: str, wrapped: bytes) -> bytes:
    ident = key_id.encode("ascii")
    if len(ident) > _MAX_KEY_ID or len(wrapped) > _MAX_WRAPPED:
        raise StateError("master key id or wrapped data key too long for the sealed header")
    body = (
        _FIXED.pack(MAGIC, chunk_size, prefix)
        + bytes([len(ident)])
        + ident.ljust(_MAX_KEY_ID, b"\0")
        + struct.pack(">H", len(wrapped))
        + wrapped
    )
    return body.ljust(HEADER_SIZE, b"\0")


def _parse(header: bytes, name: str) -> tuple[int, bytes, str, bytes]:
    """(chunk size, nonce prefix, key id, wrapped key) of a header."""
    if len(header) < HEADER_SIZE or not is_sealed(header):
        raise SealError(f"{name}: not a sealed object (or its header is damaged)")
    _, chunk_size, prefix = _FIXED.unpack_from(header)
    at = _FIXED.size
    ident = header[at + 1 : at + 1 + header[at]].decode("ascii")
    at += 1 + _MAX_KEY_ID
    (size,) = struct.unpack_from(">H", header, at)
    return chunk_size, prefix, ident, header[at + 2 : at + 2 + size]


def _context(prefix: bytes) -> bytes:
    """What a wrapped data key is bound to: this object's nonce prefix."""
    return DATA_KEY_CONTEXT + prefix


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class SealedWriter(io.RawIOBase):
    """Encrypts what is written to it into `sink`, chunk by chunk; `close` seals the last chunk."""

    def __init__(self, sink: IO[bytes], wrapper: KeyWrapper, chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self._sink = sink
        self._chunk_size = chunk_size
        prefix = os.urandom(_PREFIX_SIZE)
        data_key = AESGCM.generate_key(bit_length=256)
        key_id, wrapped = wrapper.wrap(data_key, _context(prefix))
        header = _header(chunk_size, prefix, key_id, wrapped)
        self._aad = header[: _FIXED.size]
        self._prefix = prefix
        self._aead = AESGCM(data_key)
        self._buffer = bytearray()
        self._index = 0
        self._position = 0
        sink.write(header)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        self._position += len(view)
        while len(self._buffer) > self._chunk_size:
            self._seal(bytes(self._buffer[: self._chunk_size]), last=False)
            del self._buffer[: self._chunk_size]
        return len(view)

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = _nonce(self._prefix, self._index, last)
        self._sink.write(self._aead.encrypt(nonce, plain, self._aad))
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
        super().close()


class SealedReader(io.RawIOBase):
    """The plaintext of a sealed object, seekable; every chunk is authenticated before use."""

    def __init__(self, source: IO[bytes], size: int, wrapper: KeyWrapper, name: str) -> None:
        super().__init__()
        self._source = source
        self._name = name
        source.seek(0)
        header = source.read(HEADER_SIZE)
        chunk_size, prefix, key_id, wrapped = _parse(header, name)
        try:
            data_key = wrapper.unwrap(key_id, wrapped, _context(prefix))
        except (InvalidTag, KeyError) as err:
            raise SealError(
                f"{name}: the data key does not open with master key {key_id!r} ({err!r})"
            ) from None
        self._aead = AESGCM(data_key)
        self._aad = header[: _FIXED.size]
        self._prefix = prefix
        self._chunk_size = chunk_size
        stored = size - HEADER_SIZE
        per_chunk = chunk_size + TAG_SIZE
        self._chunks = max(1, -(-stored // per_chunk))
        self.size = stored - self._chunks * TAG_SIZE
        if stored < TAG_SIZE or self.size < 0:
            raise SealError(f"{name}: truncated sealed object")
        self._position = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._source.seek(HEADER_SIZE + index * (self._chunk_size + TAG_SIZE))
        sealed = self._source.read(self._chunk_size + TAG_SIZE)
        last = index == self._chunks - 1
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, index, last), sealed, self._aad)
        except InvalidTag:
            raise SealError(
                f"{self._name}: chunk {index} fails authentication (tampered or truncated)"
            ) from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self.size or not len(view):
            return 0
        index, offset = divmod(self._position, self._chunk_size)
        piece = self._chunk(index)[offset : offset + len(view)]
        view[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def rewrap_header(header: bytes, old: KeyWrapper, new: KeyWrapper, name: str) -> bytes | None:
    """The header with its data key wrapped by `new`'s current master key; None if it already is."""
    chunk_size, prefix, key_id, wrapped = _parse(header, name)
    if key_id == new.current_key_id:
        return None
    try:
        data_key = old.unwrap(key_id, wrapped, _context(prefix))
    except (InvalidTag, KeyError) as err:
        raise SealError(f"{name}: the data key does not open with master key {key_id!r} ({err!r})") from None
    new_id, new_wrapped = new.wrap(data_key, _context(prefix))
    return _header(chunk_size, prefix, new_id, new_wrapped)
