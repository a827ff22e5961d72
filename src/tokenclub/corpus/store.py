"""The corpus store: accepted documents as zstd Parquet, one part file per committed batch.

A part is written to a temporary name and renamed into place before its batch commits in the
database; a crash between the two leaves a part that the resumed run rewrites byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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
    """Parquet parts under `root/upload=<id>/part-<seq>.parquet`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def part_path(self, upload_id: str, seq: int) -> Path:
        return self.root / f"upload={upload_id}" / f"part-{seq:06d}.parquet"

    def write_part(self, upload_id: str, seq: int, table: pa.Table) -> Path:
        path = self.part_path(upload_id, seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table.select(CORPUS_SCHEMA.names).cast(CORPUS_SCHEMA), tmp, compression="zstd")
        os.replace(tmp, path)
        return path
