"""An upload's stored files read into documents, in the upload's order, on the processes that
map the steps when there are enough files to share out.

Batch boundaries and document numbers follow the order of the whole stream, and that order is
what makes a resumed ingest exact. So the files are read ahead on the executor's own workers
(the local executor's processes, or the actors of a local Ray instance) and their documents
handed on in the upload's file order: the stream one reader would give. Reading a PDF or HWP
costs more than curating its text (15–70 ms a sample file), so a folder of documents no longer
waits on the driver's one core; the workers are the ones the steps run on, so nothing is
started for it.

A worker reads a file whole and sends its documents back as one list, so what is in memory is
bounded: only files up to `AHEAD_BYTES` go to the workers, at most two per worker and
`AHEAD_BUDGET` bytes of them ahead of the one being handed on, and a worker stops and gives a
file back once its text passes `AHEAD_TEXT` characters (an archive or a compressed dump may
expand 200-fold). A larger file (a database dump, a big JSONL), or one given back, is read here
as a stream while the workers read the files after it. A raw store that cannot be sent to
another process (a KMS hook holding a live client) is read here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.rawstore import RawStore
from tokenclub.extract.reader import iter_extract_stream
from tokenclub.extract.records import RecordOptions
from tokenclub.pipeline.executor import Readers
from tokenclub.pipeline.pickling import sendable

Item = ExtractedDocument | ExtractionFailure

AHEAD_BYTES = 16 * 1024 * 1024
"""The largest file a worker reads whole; its documents are in memory twice, there and here."""
AHEAD_BUDGET = 256 * 1024 * 1024
"""Bytes of files read ahead at once (one file more when nothing is ahead)."""
AHEAD_TEXT = 16 * 1024 * 1024
"""Characters of text past which a worker gives a file back to be read as a stream here."""
POOL_MIN_FILES = 4
"""Fewer files than this are read here: handing them over would cost more than it saves."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file of an upload as the raw store keeps it."""

    name: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.size}


def extract_file(raw: RawStore, stored: StoredFile, options: RecordOptions) -> Iterator[Item]:
    """The documents and failures of one stored file, as it is read."""
    with raw.reader(stored.sha256) as (stream, size):
        yield from iter_extract_stream(stream, size, stored.sha256, stored.name, options=options)


def _extract_whole(
    raw: RawStore, stored: StoredFile, options: RecordOptions, limit: int
) -> list[Item] | None:
    """The file's items, or None once their text passes `limit` characters."""
    items: list[Item] = []
    text = 0
    for item in extract_file(raw, stored, options):
        if isinstance(item, ExtractedDocument):
            text += len(item.text)
            if text > limit:
                return None
        items.append(item)
    return items


def pooled(
    raw: RawStore, files: Sequence[StoredFile], options: RecordOptions, readers: Readers | None
) -> bool:
    """Whether the files are read on `readers`."""
    ahead = sum(1 for f in files if f.size <= AHEAD_BYTES)
    return readers is not None and ahead >= POOL_MIN_FILES and sendable((raw, options))


def extract_upload(
    raw: RawStore,
    files: Sequence[StoredFile],
    refused: Sequence[ExtractionFailure],
    options: RecordOptions,
    readers: Readers | None = None,
) -> Iterator[Item]:
    """The upload's refused entries, then every file's documents and failures in file order."""
    yield from refused
    if readers is None or not pooled(raw, files, options, readers):
        for stored in files:
            yield from extract_file(raw, stored, options)
        return
    small = deque(f for f in files if f.size <= AHEAD_BYTES)
    ahead: deque[tuple[StoredFile, Future[list[Item] | None]]] = deque()

    def fill() -> None:
        while small and len(ahead) < 2 * readers.count:
            if ahead and sum(f.size for f, _ in ahead) + small[0].size > AHEAD_BUDGET:
                return
            stored = small.popleft()
            ahead.append((stored, readers.submit(_extract_whole, raw, stored, options, AHEAD_TEXT)))

    try:
        fill()
        for stored in files:
            if stored.size > AHEAD_BYTES:
                yield from extract_file(raw, stored, options)
                continue
            items = ahead.popleft()[1].result()
            fill()
            yield from extract_file(raw, stored, options) if items is None else items
    finally:
        for _, future in ahead:
            future.cancel()
