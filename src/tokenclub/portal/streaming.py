"""Reading a part's bytes off the wire into a sink, without holding the body in memory.

Multipart bodies (what the OpenAI SDK sends: a file field named `data`) are parsed
incrementally with python-multipart; any other content type is taken as the raw part.
Small text fields (an optional `sha256`) are collected, at most a few kilobytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.multipart import MultipartParser, parse_options_header

from tokenclub.errors import InvalidInputError

FIELD_LIMIT = 4096
FILE_FIELD = "data"


class Sink(Protocol):
    def write(self, chunk: bytes) -> None: ...


@dataclass
class _Part:
    """The multipart part being parsed: its headers so far, its name, a small field's bytes."""

    header: bytes = b""
    value: bytes = b""
    disposition: bytes = b""
    name: str = ""
    buf: bytearray = field(default_factory=bytearray)


def _field_name(disposition: bytes) -> str:
    _, params = parse_options_header(disposition)
    return params.get(b"name", b"").decode("utf-8", "replace")


async def receive(content_type: str, body: AsyncIterator[bytes], sink: Sink) -> dict[str, str]:
    """Stream the part's bytes into `sink`; returns the form's small fields."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        async for chunk in body:
            sink.write(chunk)
        return {}
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInputError("multipart body without a boundary")
    fields: dict[str, str] = {}
    part = _Part()
    seen_file = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.value += data[start:end]

    def on_header_end() -> None:
        if part.header.lower() == b"content-disposition":
            part.disposition = part.value
        part.header, part.value = b"", b""

    def on_headers_finished() -> None:
        nonlocal seen_file
        part.name = _field_name(part.disposition)
        part.buf = bytearray()
        seen_file = seen_file or part.name == FILE_FIELD

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.name == FILE_FIELD:
            sink.write(data[start:end])
            return
        part.buf += data[start:end]
        if len(part.buf) > FIELD_LIMIT:
            raise InvalidInputError(f"form field {part.name!r} is longer than {FIELD_LIMIT} bytes")

    def on_part_end() -> None:
        if part.name and part.name != FILE_FIELD:
            fields[part.name] = part.buf.decode("utf-8", "replace")
        part.disposition = b""

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    async for chunk in body:
        parser.write(chunk)
    parser.finalize()
    if not seen_file:
        raise InvalidInputError(f"multipart body has no {FILE_FIELD!r} file field")
    return fields
