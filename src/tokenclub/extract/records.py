"""JSON Lines and CSV/TSV dumps: one document per record, streamed.

Dumps are the largest uploads (a news archive is gigabytes of JSONL), so they are read line
by line from a stream and never loaded whole; one bad line costs one record, not the file.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.text import MAX_BAD_BYTE_SHARE, decode_text, to_nfc

TEXT_FIELD_NAMES = (
    "text",
    "content",
    "contents",
    "body",
    "본문",
    "내용",
    "article",
    "review",
    "document",
    "passage",
    "sentence",
    "comments",
    "comment",
    "description",
    "abstract",
)
"""Field names taken as the text, in order of preference, compared case-insensitively."""

TITLE_FIELD_NAMES = ("title", "제목", "headline", "subject")

ENCODING_SAMPLE_BYTES = 256 * 1024
"""How much of a CSV file decides its encoding (UTF-8, or CP949 from Korean Excel)."""

Item = ExtractedDocument | ExtractionFailure

_JSON = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """Which fields of a record hold its text, title and metadata.

    `None` means detect: the text field is the first of TEXT_FIELD_NAMES the first record
    has, else that record's longest string field; the title field is the first of
    TITLE_FIELD_NAMES; metadata is every other scalar field. The choice is made once per
    file, so all records of a dump are read alike. Several text fields are joined with a
    blank line. `max_record_bytes` bounds one line, so a file with no newlines cannot
    exhaust memory. `max_bad_byte_share` is how damaged a text file may be and still be
    read (see `text.decode_repairing`).
    """

    text_fields: tuple[str, ...] | None = None
    meta_fields: tuple[str, ...] | None = None
    title_field: str | None = None
    max_record_bytes: int = 64 * 1024 * 1024
    max_bad_byte_share: float = MAX_BAD_BYTE_SHARE


class Schema:
    """The field choice for one file, fixed by the first record that has a string field."""

    def __init__(self, options: RecordOptions) -> None:
        self._options = options
        self._text: tuple[str, ...] | None = options.text_fields
        self._title: str | None = options.title_field

    def _decide(self, record: dict[str, Any]) -> None:
        by_folded = {key.casefold(): key for key in record}
        name = next((by_folded[n] for n in TEXT_FIELD_NAMES if n in by_folded), None)
        if name is None:
            strings = [(len(v), k) for k, v in record.items() if isinstance(v, str)]
            if not strings:
                return
            name = max(strings)[1]
        self._text = (name,)
        if self._title is None:
            self._title = next((by_folded[n] for n in TITLE_FIELD_NAMES if n in by_folded), None)

    def document(
        self, record: dict[str, Any], source: str, fmt: str, byte_size: int, sha256: str
    ) -> ExtractedDocument | ExtractionFailure:
        if self._text is None:
            self._decide(record)
        if self._text is None:
            return ExtractionFailure(source, "record has no string field to take as text")
        parts: list[str] = []
        for name in self._text:
            value = record.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                return ExtractionFailure(source, f"field {name!r} is not a string")
            parts.append(value)
        if not parts:
            return ExtractionFailure(source, f"record has no text field ({', '.join(self._text)})")
        title = record.get(self._title) if self._title is not None else None
        return ExtractedDocument(
            source=source,
            format=fmt,
            text=to_nfc("\n\n".join(parts)),
            title=to_nfc(title) if isinstance(title, str) and title else None,
            byte_size=byte_size,
            sha256=sha256,
            metadata=self._metadata(record),
        )

    def _metadata(self, record: dict[str, Any]) -> dict[str, str]:
        if self._options.meta_fields is not None:
            fields: Iterable[tuple[str, Any]] = ((key, record.get(key)) for key in self._options.meta_fields)
        else:
            taken = {*(self._text or ()), self._title}
            fields = ((key, value) for key, value in record.items() if key not in taken)
        meta: dict[str, str] = {}
        for key, value in fields:
            if isinstance(value, str):
                meta[key] = to_nfc(value)
            elif isinstance(value, bool):
                meta[key] = "true" if value else "false"
            elif isinstance(value, int | float):
                meta[key] = str(value)
        return meta


def _lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The stream's lines; None stands for a line longer than `limit`, which is skipped unread."""
    while line := stream.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line


def iter_jsonl(
    stream: IO[bytes], source: str, byte_size: int, sha256: str, options: RecordOptions
) -> Iterator[Item]:
    """One document per JSON object line, as `source#L<line>`; blank lines are skipped.

    JSON Lines is UTF-8 by definition (a BOM on the first line is tolerated); a line that
    is not a JSON object, or not UTF-8, fails alone.
    """
    schema = Schema(options)
    for number, line in enumerate(_lines(stream, options.max_record_bytes), start=1):
        where = f"{source}#L{number}"
        if line is None:
            yield ExtractionFailure(where, f"line {number} longer than {options.max_record_bytes} bytes")
            continue
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            record = _JSON.decode(line.decode("utf-8"))
        except UnicodeDecodeError:
            yield ExtractionFailure(where, f"line {number}: not UTF-8")
            continue
        except ValueError as err:
            yield ExtractionFailure(where, f"line {number}: invalid JSON ({err})")
            continue
        if not isinstance(record, dict):
            yield ExtractionFailure(where, f"line {number}: a JSON {type(record).__name__}, not an object")
            continue
        yield schema.document(record, where, "jsonl", byte_size, sha256)


def iter_csv(
    stream: IO[bytes],
    source: str,
    byte_size: int,
    sha256: str,
    options: RecordOptions,
    *,
    tsv: bool = False,
) -> Iterator[Item]:
    """One document per row after the header row, as `source#L<line where the row starts>`.

    The encoding (UTF-8 or CP949, as Korean Excel saves) is decided on the first 256 KiB.
    TSV is read unquoted, as TSV writers do not quote. A row with the wrong number of
    fields fails alone; bytes the encoding cannot decode, or a line over
    `max_record_bytes`, end the file with an ExtractionError after the rows before them.
    """
    # The csv module's only field-size limit is process-wide; it is raised, never lowered,
    # so that a long article in one cell is read rather than refused.
    csv.field_size_limit(max(csv.field_size_limit(), options.max_record_bytes))
    rows = csv.reader(
        decoded_lines(stream, source, options.max_record_bytes),
        delimiter="\t" if tsv else ",",
        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
        strict=False,
    )
    fmt = "tsv" if tsv else "csv"
    schema = Schema(options)
    header: list[str] | None = None
    while True:
        start = rows.line_num + 1
        where = f"{source}#L{start}"
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as err:
            yield ExtractionFailure(where, f"line {start}: {err}")
            continue
        if not row:
            continue
        if header is None:
            header = [to_nfc(name.strip()) for name in row]
            continue
        if len(row) != len(header):
            reason = f"line {start}: {len(row)} fields where the header has {len(header)}"
            yield ExtractionFailure(where, reason)
            continue
        yield schema.document(dict(zip(header, row, strict=True)), where, fmt, byte_size, sha256)


def decoded_lines(stream: IO[bytes], source: str, limit: int) -> Iterator[str]:
    """Lines as text, in the encoding the start of the file shows."""
    lines = _lines(stream, limit)
    sample: list[bytes | None] = []
    sampled = 0
    for line in lines:
        sample.append(line)
        sampled += limit if line is None else len(line)
        if sampled >= ENCODING_SAMPLE_BYTES:
            break
    _, codec = decode_text(b"".join(line for line in sample if line is not None), source)
    if codec.startswith(("utf-16", "utf-32")):
        raise ExtractionError(source, f"{codec} CSV is not supported; save it as UTF-8")
    if codec == "utf-8":
        codec = "utf-8-sig"  # Excel's "CSV UTF-8" starts with a BOM
    for number, line in enumerate(itertools.chain(sample, lines), start=1):
        if line is None:
            raise ExtractionError(source, f"line {number} longer than {limit} bytes")
        try:
            yield line.decode(codec)
        except UnicodeDecodeError as err:
            raise ExtractionError(source, f"line {number}: not valid {codec} at byte {err.start}") from None
