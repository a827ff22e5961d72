"""Sealed objects: round trips at every size, random access, and every kind of tampering caught."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.sealed import (
    HEADER_SIZE,
    TAG_SIZE,
    SealedReader,
    SealedWriter,
    SealError,
    rewrap_header,
)

CHUNK = 1024
RING = Keyring({}, "").with_new_key()


def seal(data: bytes, ring: Keyring = RING, chunk: int = CHUNK) -> bytes:
    sink = io.BytesIO()
    writer = SealedWriter(sink, ring, chunk)
    for start in range(0, len(data), 333):  # writes that do not line up with chunks
        writer.write(data[start : start + 333])
    writer.close()
    return sink.getvalue()


def opened(blob: bytes, ring: Keyring = RING) -> io.BufferedReader:
    return io.BufferedReader(SealedReader(io.BytesIO(blob), len(blob), ring, "obj"), CHUNK)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5 * CHUNK + 7), st.integers(min_value=0, max_value=6 * CHUNK))
def test_round_trip_and_random_access(data: bytes, offset: int) -> None:
    blob = seal(data)
    chunks = max(1, -(-len(data) // CHUNK))
    assert len(blob) == HEADER_SIZE + len(data) + chunks * TAG_SIZE
    reader = opened(blob)
    assert reader.read() == data
    reader.seek(offset)
    assert reader.read(CHUNK + 5) == data[offset : offset + CHUNK + 5]
    reader.seek(-3, io.SEEK_END)
    assert reader.read() == data[-3:] if len(data) >= 3 else True


def test_plaintext_is_not_in_the_object() -> None:
    data = ("비밀 기사 본문 " * 500).encode()
    blob = seal(data)
    assert b"\xeb\xb9\x84\xeb\xb0\x80" not in blob  # "비밀"
    assert opened(blob).read() == data


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: HEADER_SIZE + CHUNK + TAG_SIZE], id="cut at a chunk boundary"),
        pytest.param(lambda b: b[:-1], id="last byte cut"),
        pytest.param(
            lambda b: b[: HEADER_SIZE + 100] + bytes([b[HEADER_SIZE + 100] ^ 1]) + b[HEADER_SIZE + 101 :],
            id="bit flip",
        ),
        pytest.param(
            lambda b: (
                b[:HEADER_SIZE]
                + b[HEADER_SIZE + CHUNK + TAG_SIZE : HEADER_SIZE + 2 * (CHUNK + TAG_SIZE)]
                + b[HEADER_SIZE : HEADER_SIZE + CHUNK + TAG_SIZE]
                + b[HEADER_SIZE + 2 * (CHUNK + TAG_SIZE) :]
            ),
            id="chunks swapped",
        ),
        pytest.param(lambda b: b[:9] + bytes([b[9] ^ 1]) + b[10:], id="chunk size in header"),
    ],
)
def test_tampering_is_caught(damage: object) -> None:
    blob = seal(os.urandom(3 * CHUNK + 10))
    with pytest.raises(SealError):
        opened(damage(blob)).read()  # type: ignore[operator]


def test_a_header_moved_to_another_object_does_not_open_it() -> None:
    first, second = seal(b"a" * 100), seal(b"b" * 100)
    with pytest.raises(SealError):
        opened(first[:HEADER_SIZE] + second[HEADER_SIZE:]).read()


def test_another_master_key_does_not_open_it() -> None:
    other = Keyring({RING.current: os.urandom(32)}, RING.current)
    with pytest.raises(SealError, match="does not open with master key"):
        opened(seal(b"x" * 10), other)


def test_rewrap_changes_only_the_header() -> None:
    data = os.urandom(2 * CHUNK + 1)
    blob = seal(data)
    rotated = RING.with_new_key()
    header = rewrap_header(blob[:HEADER_SIZE], rotated, rotated, "obj")
    assert header is not None and len(header) == HEADER_SIZE
    moved = header + blob[HEADER_SIZE:]
    assert opened(moved, rotated.only_current()).read() == data
    with pytest.raises(SealError):
        opened(moved, RING)  # the old key alone no longer opens it
    assert rewrap_header(header, rotated, rotated, "obj") is None  # already current
