"""The one entry point for reading uploads: any file, archive or folder in, documents out.

Nothing a partner uploads can make it raise. Every problem with a file (or an archive
member, or a record of a dump) becomes an ExtractionFailure naming it and why, and reading
goes on with the next one, so one bad file never costs a partner the rest of an upload.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from tokenclub.errors import ExtractionError
from tokenclub.extract.archive import (
    ArchiveLimits,
    Blob,
    Budget,
    ExpansionLimitError,
    Member,
    blob_from_bytes,
    check_zip_package,
    decompress,
    iter_tar,
    iter_zip,
    peek_decompressed,
)
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.folder import open_regular, walk_folder
from tokenclub.extract.records import RecordOptions, iter_csv, iter_jsonl
from tokenclub.extract.sniff import COMPRESSED, HEAD_BYTES, RECORDS, Format, inner_name, sniff, sniff_head
from tokenclub.extract.sqldump import iter_sql

Item = ExtractedDocument | ExtractionFailure
WholeFileReader = Callable[[bytes, str, str], list[ExtractedDocument]]

logger = logging.getLogger(__name__)

_CONTAINERS = frozenset({Format.ZIP, Format.TAR, *COMPRESSED})
_ZIP_PACKAGES = frozenset({Format.DOCX, Format.EPUB, Format.HWPX})


@dataclass(frozen=True, slots=True)
class _Context:
    options: RecordOptions
    budget: Budget

    @property
    def limits(self) -> ArchiveLimits:
        return self.budget.limits


def iter_extract(
    path: Path,
    *,
    source: str | None = None,
    options: RecordOptions | None = None,
    limits: ArchiveLimits | None = None,
) -> Iterator[Item]:
    """Documents and failures from a file, an archive or a folder (walked in name order).

    In a folder only regular files with one name are read: links and special files are
    refused one by one (see `extract.folder`); a path given itself is read as given.

    `source` names the file in documents and failures (default: the path as given), e.g.
    the original upload name of a file kept under its hash in the raw store.
    """
    name = str(path) if source is None else source
    if path.is_dir():
        for entry in walk_folder(path, name):
            if isinstance(entry, ExtractionFailure):
                yield entry
                continue
            try:
                file = open_regular(entry.path, entry.name)
            except ExtractionError as err:
                yield ExtractionFailure(err.source, err.reason)
                continue
            yield from _extract_open(file, entry.name, options, limits)
        return
    try:
        file = path.open("rb")
    except OSError as err:
        yield ExtractionFailure(name, f"cannot open: {err.strerror or err}")
        return
    yield from _extract_open(file, name, options, limits)


def _extract_open(
    file: io.BufferedReader, name: str, options: RecordOptions | None, limits: ArchiveLimits | None
) -> Iterator[Item]:
    with file:
        try:
            blob = Blob(
                file, os.fstat(file.fileno()).st_size, hashlib.file_digest(file, "sha256").hexdigest()
            )
        except OSError as err:
            yield ExtractionFailure(name, f"cannot read: {err.strerror or err}")
            return
        yield from _extract_upload(blob, name, options, limits)


def iter_extract_stream(
    stream: IO[bytes],
    size: int,
    sha256: str,
    source: str,
    *,
    options: RecordOptions | None = None,
    limits: ArchiveLimits | None = None,
) -> Iterator[Item]:
    """Documents and failures from a stored file already hashed: a seekable stream of `size`
    bytes with content hash `sha256` (the raw store's decrypting reader)."""
    yield from _extract_upload(Blob(stream, size, sha256), source, options, limits)


def iter_extract_bytes(
    data: bytes, source: str, *, options: RecordOptions | None = None, limits: ArchiveLimits | None = None
) -> Iterator[Item]:
    """Documents and failures from a file's content held in memory; `source` is its name."""
    yield from _extract_upload(blob_from_bytes(data), source, options, limits)


def _extract_upload(
    blob: Blob, source: str, options: RecordOptions | None, limits: ArchiveLimits | None
) -> Iterator[Item]:
    context = _Context(options or RecordOptions(), Budget(limits or ArchiveLimits(), source))
    try:
        yield from _extract(blob, source, source, context, depth=0)
    except ExpansionLimitError as err:
        yield ExtractionFailure(err.source, err.reason)


def _extract(
    blob: Blob,
    name: str,
    source: str,
    context: _Context,
    *,
    depth: int,
    identity: tuple[int, str] | None = None,
) -> Iterator[Item]:
    """Read one file: `name` decides the format when the bytes cannot, `source` is reported.

    `identity` is the (size, SHA-256) the documents carry when `blob` is the content of a
    compressed file: a compression layer is transparent, documents describe the upload.
    """
    if blob.size == 0:
        yield ExtractionFailure(source, "empty file")
        return
    try:
        fmt, what = sniff(blob.file, name)
        if fmt is Format.UNSUPPORTED:
            yield ExtractionFailure(source, f"unsupported format: {what}")
        elif fmt in _CONTAINERS and depth >= context.limits.max_depth:
            yield ExtractionFailure(source, f"archives nested more than {context.limits.max_depth} deep")
        elif fmt is Format.ZIP:
            yield from _members(iter_zip(blob, source, context.budget), context, depth)
        elif fmt is Format.TAR:
            yield from _members(iter_tar(blob.file, source, context.budget), context, depth)
        elif fmt in COMPRESSED:
            yield from _extract_compressed(blob, fmt, name, source, context, depth)
        elif fmt in RECORDS:
            size, sha256 = identity or (blob.size, blob.sha256)
            yield from _records(blob.file, fmt, source, size, sha256, context.options)
        else:
            if fmt in _ZIP_PACKAGES:
                check_zip_package(blob, source, context.limits)
            data = blob.read_all(context.limits.max_member_size, source)
            documents = _whole_file_reader(fmt, context.options)(data, source, blob.sha256)
            yield from _with_text(documents, identity)
    except ExpansionLimitError:
        raise
    except ExtractionError as err:
        yield ExtractionFailure(err.source, err.reason)
    except Exception as err:
        # A reader's own bug must cost one file, not the upload; the log keeps the trace.
        logger.exception("reading %s failed", source)
        yield ExtractionFailure(source, f"internal error while reading ({type(err).__name__}: {err})")


def _members(items: Iterable[Member | ExtractionFailure], context: _Context, depth: int) -> Iterator[Item]:
    for item in items:
        if isinstance(item, ExtractionFailure):
            yield item
        else:
            yield from _extract(item.blob, item.name, item.source, context, depth=depth + 1)


def _extract_compressed(
    blob: Blob, compression: Format, name: str, source: str, context: _Context, depth: int
) -> Iterator[Item]:
    """A gzip, bzip2 or xz file: a tar or a dump inside is streamed, anything else read whole."""
    inner = inner_name(name, compression)
    fmt, what = sniff_head(peek_decompressed(blob, compression, HEAD_BYTES, source), inner)
    stream = decompress(blob, compression, source, context.budget)
    if fmt is Format.TAR:
        yield from _members(iter_tar(stream, source, context.budget), context, depth)
    elif fmt in RECORDS:
        yield from _records(stream, fmt, source, blob.size, blob.sha256, context.options)
    elif fmt is Format.UNSUPPORTED:
        yield ExtractionFailure(source, f"unsupported format: {what}")
    else:
        limit = context.limits.max_member_size
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise ExtractionError(source, f"more than {limit} bytes when decompressed, the most read whole")
        content = blob_from_bytes(data)
        yield from _extract(
            content, inner, source, context, depth=depth + 1, identity=(blob.size, blob.sha256)
        )


def _records(
    stream: IO[bytes], fmt: Format, source: str, size: int, sha256: str, options: RecordOptions
) -> Iterator[Item]:
    if fmt is Format.JSONL:
        records = iter_jsonl(stream, source, size, sha256, options)
    elif fmt is Format.SQL:
        records = iter_sql(stream, source, size, sha256, options)
    else:
        records = iter_csv(stream, source, size, sha256, options, tsv=fmt is Format.TSV)
    for item in records:
        if isinstance(item, ExtractedDocument) and not item.text.strip():
            yield ExtractionFailure(item.source, "no text")
        else:
            yield item


def _with_text(
    documents: Iterable[ExtractedDocument], identity: tuple[int, str] | None = None
) -> Iterator[Item]:
    """Documents with text, described as `identity` if given; a blank one is a failure."""
    for document in documents:
        if not document.text.strip():
            yield ExtractionFailure(document.source, "no text")
        elif identity is not None:
            yield replace(document, byte_size=identity[0], sha256=identity[1])
        else:
            yield document


def _whole_file_reader(fmt: Format, options: RecordOptions) -> WholeFileReader:
    """The reader for a format read whole; imported on demand, as some pull in large libraries."""
    if fmt is Format.PDF:
        from tokenclub.extract.pdf import read_pdf

        return read_pdf
    if fmt is Format.DOCX:
        from tokenclub.extract.docx import read_docx

        return read_docx
    if fmt is Format.EPUB:
        from tokenclub.extract.epub import read_epub

        return read_epub
    if fmt is Format.HWP:
        from tokenclub.extract.hwp import read_hwp

        return read_hwp
    if fmt is Format.HWPX:
        from tokenclub.extract.hwpx import read_hwpx

        return read_hwpx
    if fmt is Format.HTML:
        from tokenclub.extract.html import read_html

        return read_html
    from tokenclub.extract.text import read_text

    markdown = fmt is Format.MARKDOWN
    share = options.max_bad_byte_share
    return lambda data, source, sha256: read_text(
        data, source, sha256, markdown=markdown, max_bad_share=share
    )
