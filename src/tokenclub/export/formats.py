"""The shard formats trainers load, written batch by batch from Arrow tables.

- ``parquet``: ``id``/``text`` columns, zstd; HuggingFace ``datasets`` loads it as is.
- ``megatron``: token ids of the pinned tokenizer with an end-of-document token after every
  document, as the ``.bin``/``.idx`` pair of Megatron-LM's MMapIndexedDataset (also read by NeMo).
- ``mds``: MosaicML Streaming shards (``shard.NNNNN.mds`` plus ``index.json``) with ``id``/``text``.

Every writer sees the same shard boundaries, so shard k holds the same documents in every
format and the provenance file's (shard, row) pairs hold for all of them. The Megatron and MDS
layouts are written here with NumPy and ``struct`` (their libraries need PyTorch); the tests read
them back with megatron-core and mosaicml-streaming.
"""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import suppress
from typing import ClassVar

import fsspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from tokenclub.errors import InvalidInputError
from tokenclub.export.encode import Encoded
from tokenclub.export.sink import HashingSink, ShardFile


class FormatWriter(ABC):
    """Writes one format's files under `root/<name>/`; shard after shard, then any index."""

    name: ClassVar[str]
    needs_tokens: ClassVar[bool] = False

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        self.fs = fs
        self.folder = f"{root}/{self.name}"
        self.fs.makedirs(self.folder, exist_ok=True)
        self.shard = -1
        self.documents = 0
        self.opened: list[HashingSink] = []

    def open_file(self, basename: str) -> HashingSink:
        """A new file of this format, remembered so that a failed export can remove it."""
        sink = HashingSink(self.fs, f"{self.folder}/{basename}")
        self.opened.append(sink)
        return sink

    def relative(self, basename: str) -> str:
        return f"{self.name}/{basename}"

    def start_shard(self, shard: int) -> None:
        self.shard = shard
        self.documents = 0
        self.open_shard()

    @abstractmethod
    def open_shard(self) -> None:
        """Open the files of shard `self.shard`."""

    @abstractmethod
    def write(self, batch: pa.Table, encoded: Encoded) -> None:
        """Append a batch (columns `doc_id`, `text`; `encoded` by `export.encode`) to the open shard."""

    @abstractmethod
    def finish_shard(self) -> list[ShardFile]:
        """Close the open shard; its files, checksummed."""

    def finish(self) -> list[ShardFile]:
        """Files written once after the last shard (an index); none by default."""
        return []

    def abort(self) -> None:
        """Close whatever is open after a failure (the caller deletes the files)."""
        for sink in self.opened:
            with suppress(OSError, ValueError):
                sink.close()

    def _file(self, sink: HashingSink, basename: str) -> ShardFile:
        return ShardFile(
            self.relative(basename), self.name, self.shard, sink.size, sink.sha256, self.documents
        )


PARQUET_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])


class ParquetFormat(FormatWriter):
    name = "parquet"

    def open_shard(self) -> None:
        self._basename = f"shard-{self.shard:05d}.parquet"
        self._sink = self.open_file(self._basename)
        self._writer = pq.ParquetWriter(self._sink, PARQUET_SCHEMA, compression="zstd")

    def write(self, batch: pa.Table, encoded: Encoded) -> None:
        table = pa.table({"id": batch.column("doc_id"), "text": batch.column("text")}, schema=PARQUET_SCHEMA)
        self._writer.write_table(table)
        self.documents += batch.num_rows

    def finish_shard(self) -> list[ShardFile]:
        self._writer.close()
        self._sink.close()
        return [self._file(self._sink, self._basename)]

    def abort(self) -> None:
        if self.opened:
            with suppress(OSError, ValueError):
                self._writer.close()
        super().abort()


MEGATRON_INDEX_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}


def megatron_dtype(vocab_size: int) -> np.dtype[np.integer]:
    """Megatron's choice: uint16 while every id fits below 65,500, else int32."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


class MegatronFormat(FormatWriter):
    """One document per sequence; the index lists sequence lengths, byte pointers and the
    document boundaries ``0..n`` (version 1 of the MMapIndexedDataset index)."""

    name = "megatron"
    needs_tokens = True

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, dtype: np.dtype[np.integer]) -> None:
        super().__init__(fs, root)
        self.dtype = dtype
        self.tokens = 0

    def open_shard(self) -> None:
        self._stem = f"shard-{self.shard:05d}"
        self._bin = self.open_file(f"{self._stem}.bin")
        self._lengths: list[npt.NDArray[np.int32]] = []

    def write(self, batch: pa.Table, encoded: Encoded) -> None:
        flat, lengths = encoded.tokens, encoded.lengths
        assert flat is not None and lengths is not None and len(lengths) == batch.num_rows
        if not len(lengths):
            return
        self._bin.write(flat.astype(self.dtype, copy=False).tobytes())
        self._lengths.append(lengths)
        self.documents += batch.num_rows
        self.tokens += int(flat.size)

    def finish_shard(self) -> list[ShardFile]:
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        documents = np.arange(len(lengths) + 1, dtype=np.int64)
        with self.open_file(f"{self._stem}.idx") as idx:
            idx.write(MEGATRON_INDEX_HEADER)
            idx.write(struct.pack("<Q", 1))
            idx.write(struct.pack("<B", MEGATRON_DTYPE_CODES[self.dtype]))
            idx.write(struct.pack("<Q", len(lengths)))
            idx.write(struct.pack("<Q", len(documents)))
            idx.write(lengths.astype("<i4").tobytes())
            idx.write(pointers.astype("<i8").tobytes())
            idx.write(documents.astype("<i8").tobytes())
        return [self._file(self._bin, f"{self._stem}.bin"), self._file(idx, f"{self._stem}.idx")]


MDS_COLUMNS = ("id", "text")
"""Sorted, as MDSWriter sorts them; both are `str` (variable size, so each sample starts with
its columns' byte sizes as uint32)."""
MDS_MAX_SHARD_BYTES = 2**32 - 1


class MdsFormat(FormatWriter):
    """A shard is uint32 sample count, uint32 offsets (n + 1, from the file start), samples."""

    name = "mds"

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, size_limit: int) -> None:
        super().__init__(fs, root)
        self.size_limit = size_limit
        self._index: list[dict[str, object]] = []

    def open_shard(self) -> None:
        self._samples: list[bytes] = []
        self._sizes: list[npt.NDArray[np.int64]] = []

    def write(self, batch: pa.Table, encoded: Encoded) -> None:
        assert encoded.samples is not None and encoded.sizes is not None
        self._samples.append(encoded.samples)
        self._sizes.append(encoded.sizes)
        self.documents += batch.num_rows

    def finish_shard(self) -> list[ShardFile]:
        sizes = np.concatenate(self._sizes) if self._sizes else np.zeros(0, np.int64)
        count = len(sizes)
        header = 4 + 4 * (count + 1)
        offsets = np.concatenate([[0], np.cumsum(sizes)]) + header
        if offsets[-1] > MDS_MAX_SHARD_BYTES:
            raise InvalidInputError("an MDS shard cannot exceed 4 GiB (uint32 offsets); lower the shard size")
        basename = f"shard.{self.shard:05d}.mds"
        with self.open_file(basename) as sink:
            sink.write(struct.pack("<I", count))
            sink.write(offsets.astype("<u4").tobytes())
            for sample in self._samples:
                sink.write(sample)
        self._samples, self._sizes = [], []
        self._index.append(
            {
                "column_encodings": ["str", "str"],
                "column_names": list(MDS_COLUMNS),
                "column_sizes": [None, None],
                "compression": None,
                "format": "mds",
                "hashes": [],
                "raw_data": {"basename": basename, "bytes": sink.size, "hashes": {}},
                "samples": count,
                "size_limit": self.size_limit,
                "version": 2,
                "zip_data": None,
            }
        )
        return [self._file(sink, basename)]

    def finish(self) -> list[ShardFile]:
        data = json.dumps({"shards": self._index, "version": 2}, sort_keys=True).encode("utf-8")
        self.shard = -1
        with self.open_file("index.json") as sink:
            sink.write(data)
        return [ShardFile(self.relative("index.json"), self.name, None, sink.size, sink.sha256, 0)]


FORMATS = ("parquet", "megatron", "mds")


def parse_formats(raw: Sequence[str]) -> tuple[str, ...]:
    """Known format names, deduplicated in the canonical order; an unknown one is an error."""
    names = {part.strip() for item in raw for part in item.split(",") if part.strip()}
    unknown = sorted(names - set(FORMATS))
    if unknown:
        raise InvalidInputError(
            f"unknown export format {', '.join(unknown)} (choose from {', '.join(FORMATS)})"
        )
    if not names:
        raise InvalidInputError(f"no export format given (choose from {', '.join(FORMATS)})")
    return tuple(name for name in FORMATS if name in names)
