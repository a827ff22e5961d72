"""The contract every format reader fulfils: files in, documents or per-file failures out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    """One text document read out of an uploaded file.

    A single file may yield many documents (a JSONL dump, an archive); `source` is the path
    inside the upload, with archive members written as `archive.zip!inner/file.txt`.
    """

    source: str
    format: str
    text: str
    title: str | None
    byte_size: int
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExtractionFailure:
    """A file (or archive member) that could not be read, with a one-line reason."""

    source: str
    reason: str
