"""Tell a file's format from its bytes first and its name second.

Partners rename files, export without extensions and zip whatever they have, so the
extension is only a tie-breaker: a DOCX called `.txt` is still read as DOCX, and an XLSX
(a zip too) must not be unpacked as if it were an archive of text files.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from enum import StrEnum
from pathlib import PurePosixPath
from typing import IO

import olefile

HEAD_BYTES = 64 * 1024
"""How much of a file the content checks look at."""

ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    KeyError,
    ValueError,
    RuntimeError,  # an encrypted member
    NotImplementedError,  # a compression method zipfile lacks
)
"""What zipfile raises on damaged or unusual archives; each is the file's fault, not ours."""


class Format(StrEnum):
    """What a file is; also the `format` recorded on every document read from it."""

    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    DOCX = "docx"
    EPUB = "epub"
    HWPX = "hwpx"
    HWP = "hwp"
    OLE2 = "ole2"
    PDF = "pdf"
    HTML = "html"
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    SQL = "sql"
    MARKDOWN = "markdown"
    TEXT = "text"
    UNSUPPORTED = "unsupported"


COMPRESSED = frozenset({Format.GZIP, Format.BZIP2, Format.XZ})
"""Single-file compression wrappers: the reader looks through them."""

RECORDS = frozenset({Format.JSONL, Format.CSV, Format.TSV, Format.SQL})
"""Dumps read record by record, streamed rather than loaded whole."""

_MAGIC: tuple[tuple[bytes, Format], ...] = (
    (b"PK\x03\x04", Format.ZIP),
    (b"PK\x05\x06", Format.ZIP),  # an empty zip: only the end-of-directory record
    (b"\x1f\x8b", Format.GZIP),
    (b"BZh", Format.BZIP2),
    (b"\xfd7zXZ\x00", Format.XZ),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Format.OLE2),
)

_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x28\xb5\x2f\xfd", "Zstandard-compressed file"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"HWP Document File", "HWP 3.x document (pre-2002 format); save it as HWP 5 or HWPX"),
)

_SUFFIXES: dict[str, Format] = {
    ".zip": Format.ZIP,
    ".tar": Format.TAR,
    ".tgz": Format.GZIP,
    ".gz": Format.GZIP,
    ".bz2": Format.BZIP2,
    ".xz": Format.XZ,
    ".docx": Format.DOCX,
    ".epub": Format.EPUB,
    ".hwpx": Format.HWPX,
    ".hwp": Format.HWP,
    ".pdf": Format.PDF,
    ".html": Format.HTML,
    ".htm": Format.HTML,
    ".xhtml": Format.HTML,
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
    ".csv": Format.CSV,
    ".tsv": Format.TSV,
    ".sql": Format.SQL,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
}

_COMPRESSION_SUFFIXES = {Format.GZIP: (".gz", ".tgz"), Format.BZIP2: (".bz2",), Format.XZ: (".xz",)}


def suffix_format(name: str) -> Format | None:
    """The format a file name claims, if its extension is one we know."""
    return _SUFFIXES.get(PurePosixPath(name).suffix.lower())


def inner_name(name: str, compression: Format) -> str:
    """The name of what a compressed file holds: `a.jsonl.gz` holds `a.jsonl`, `a.tgz` a tar."""
    lower = name.lower()
    if lower.endswith(".tgz"):
        return name[:-4] + ".tar"
    for suffix in _COMPRESSION_SUFFIXES[compression]:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def sniff_head(head: bytes, name: str) -> tuple[Format, str]:
    """Format (and, for UNSUPPORTED, what the file is) from the first bytes and the name.

    Containers come back unrefined (ZIP, OLE2): `sniff` opens them to tell DOCX from EPUB
    from a plain archive, which needs the whole file rather than its head.
    """
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt, ""
    if b"%PDF-" in head[:1024]:
        return Format.PDF, ""
    if head[257:262] == b"ustar":
        return Format.TAR, ""
    for magic, what in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return Format.UNSUPPORTED, what
    return _sniff_text(head, name)


def _sniff_text(head: bytes, name: str) -> tuple[Format, str]:
    """Text formats: HTML and JSON Lines are recognisable by content, CSV and Markdown are not."""
    claimed = suffix_format(name)
    if claimed in (Format.ZIP, Format.TAR, Format.DOCX, Format.EPUB, Format.HWPX, Format.HWP, Format.PDF):
        # The name promises a binary format the bytes do not have: a text file renamed or a
        # truncated download. Text it may still be; the text reader will tell.
        claimed = None
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")) or (start.startswith(b"<") and b"<body" in start):
        return Format.HTML, ""
    if start.startswith(b"<?xml"):
        if b"<html" in start:
            return Format.HTML, ""
        return Format.UNSUPPORTED, "XML document (other than XHTML)"
    if start.startswith(b"{") and _first_line_is_object(start):
        return Format.JSONL, ""
    if PurePosixPath(name).suffix.lower() == ".json":
        return Format.UNSUPPORTED, "JSON document that is not JSON Lines (one object per line)"
    if _looks_like_sql(start):
        return Format.SQL, ""
    if claimed in (Format.HTML, Format.JSONL, Format.CSV, Format.TSV, Format.SQL, Format.MARKDOWN):
        return claimed, ""
    return Format.TEXT, ""


_SQL_SKIP = (b"--", b"/*", b"set ", b"select pg_catalog.", b"\\connect", b"use ")
_SQL_START = (
    *(b"create " + what for what in (b"table", b"database", b"schema", b"extension", b"sequence", b"type")),
    b"insert into",
    b"copy ",
    b"drop table",
    b"alter table",
    b"lock tables",
    b"comment on",
    b"begin;",
    b"start transaction",
)


def _looks_like_sql(start: bytes) -> bool:
    """A dump's head: comments and SET lines, then a table statement (`start` is lower-cased)."""
    for line in start.splitlines()[:200]:
        line = line.strip()
        if not line or line.startswith(_SQL_SKIP):
            continue
        return line.startswith(_SQL_START)
    return False


def _first_line_is_object(start: bytes) -> bool:
    line, newline, _ = start.partition(b"\n")
    if not newline and len(start) >= HEAD_BYTES - 3:
        # The first line does not end within the head: a very long record. An opening brace
        # is then the best evidence there is.
        return True
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def sniff(file: IO[bytes], name: str) -> tuple[Format, str]:
    """Format of a seekable file; zip and OLE2 containers are opened to see what they hold.

    Leaves the file positioned at its start.
    """
    file.seek(0)
    head = file.read(HEAD_BYTES)
    file.seek(0)
    fmt, what = sniff_head(head, name)
    try:
        if fmt is Format.ZIP:
            return _sniff_zip(file)
        if fmt is Format.OLE2:
            return _sniff_ole(file)
    finally:
        file.seek(0)
    return fmt, what


def _sniff_zip(file: IO[bytes]) -> tuple[Format, str]:
    try:
        with zipfile.ZipFile(file) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype")[:100].strip() if "mimetype" in names else b""
    except ZIP_ERRORS:
        # Unreadable as a zip: the archive reader will report how.
        return Format.ZIP, ""
    if mimetype == b"application/epub+zip":
        return Format.EPUB, ""
    if mimetype.startswith(b"application/hwp") or any(
        n.startswith("Contents/section") and n.endswith(".xml") for n in names
    ):
        return Format.HWPX, ""
    if "word/document.xml" in names:
        return Format.DOCX, ""
    if mimetype.startswith(b"application/vnd.oasis.opendocument"):
        return Format.UNSUPPORTED, f"OpenDocument file ({mimetype.decode('ascii', 'replace')})"
    if "[Content_Types].xml" in names:
        return Format.UNSUPPORTED, "Office Open XML file other than DOCX (xlsx, pptx)"
    return Format.ZIP, ""


def _sniff_ole(file: IO[bytes]) -> tuple[Format, str]:
    try:
        ole = olefile.OleFileIO(file)
    except (OSError, ValueError, IndexError, KeyError, TypeError, AttributeError, struct.error):
        return Format.UNSUPPORTED, "damaged OLE2 compound file"
    with ole:
        if ole.exists("FileHeader"):
            return Format.HWP, ""
        if ole.exists("WordDocument"):
            return Format.UNSUPPORTED, "Word 97-2003 document (.doc); save it as DOCX"
    return Format.UNSUPPORTED, "OLE2 compound file that is not HWP"
