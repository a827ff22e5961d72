"""The corpus store: accepted documents as zstd Parquet, one part file per committed batch.

The store lives on any fsspec filesystem: a local folder by default, or a URL such as
``s3://bucket/corpus`` so that workers on other machines read the parts a driver wrote. On a
local disk a part is written to a temporary name and renamed into place before its batch commits
in the database; on an object store one upload of the finished file is already atomic. Either
way a crash before the commit leaves at worst a part that the resumed run rewrites byte for byte.

Given a `Sealing`, each part file is sealed whole (see `atrest.sealed`: envelope key, AES-GCM
chunks) rather than with Parquet modular encryption; docs/ingest.md gives the measurements and
the reasons. Reading is transparent: `read_part` decrypts, and plain parts written before
encryption was turned on still read. Files are 0600 and folders 0700.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from tokenclub.atrest.objects import Sealing, make_private_dirs, open_read, open_write
from tokenclub.storage import open_root

CORPUS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("partner_id", pa.int64()),
        ("upload_id", pa.string()),
        ("source", pa.string()),
        ("format", pa.string()),
        ("title", pa.string()),
        ("source_sha256", pa.string()),
        ("metadata", pa.string()),
        ("text", pa.string()),
        ("words", pa.int64()),
        ("tokens", pa.int64()),
        ("dedup_key", pa.string()),
        ("pii", pa.string()),
        ("tokenizer_fingerprint", pa.string()),
    ]
)


class CorpusStore:
    """Parquet parts under `root/upload=<id>/part-<seq>.parquet`; `root` is a path or an fsspec URL."""

    def __init__(self, root: Path | str, sealing: Sealing | None = None) -> None:
        self.fs, self.root = open_root(root)
        self.sealing = sealing

    def part_path(self, upload_id: str, seq: int) -> str:
        """The part's path inside `self.fs` (for a local store, an absolute file path)."""
        return f"{self.root}/upload={upload_id}/part-{seq:06d}.parquet"

    def write_part(self, upload_id: str, seq: int, table: pa.Table) -> str:
        path = self.part_path(upload_id, seq)
        make_private_dirs(self.fs, path.rsplit("/", 1)[0])
        data = table.select(CORPUS_SCHEMA.names).cast(CORPUS_SCHEMA)
        local = isinstance(self.fs, LocalFileSystem)
        target = f"{path}.tmp{os.getpid()}" if local else path
        with open_write(self.fs, target, self.sealing) as sink:
            pq.write_table(data, sink, compression="zstd")
        if local:
            os.replace(target, path)
        return path

    def read_part(self, upload_id: str, seq: int, columns: Sequence[str] | None = None) -> pa.Table:
        """One part's file (`ParquetFile`, not `read_table`: the dataset reader behind the latter
        imports pandas, 0.3–0.4 CPU s in every process that reads a part, such as the guard's
        indexing worker)."""
        with open_read(self.fs, self.part_path(upload_id, seq), self.sealing) as source:
            return pq.ParquetFile(source).read(columns=None if columns is None else list(columns))
