"""One export: a snapshot's documents streamed into shards of each format, provenance, manifest.

Order of writing: shards (every format cut at the same document), the formats' indexes, the
provenance file, and last the manifest, atomically. The export's row is on record before the
first byte (`writing`) and turns `done` only after the manifest is in place; any failure removes
what was written, marks the row `failed` and raises one line naming the cause.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenclub.corpus.store import CorpusStore
from tokenclub.db.engine import Database
from tokenclub.db.export_schema import Export
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, StateError, TokenclubError
from tokenclub.export.access import Role, log_action
from tokenclub.export.documents import DEFAULT_SHUFFLE_WINDOW, iter_snapshot
from tokenclub.export.encode import (
    ENCODE_COLUMNS,
    EOD_TOKEN,
    Encoded,
    EncodeSpec,
    Encoding,
    LocalEncoding,
)
from tokenclub.export.formats import FormatWriter, MdsFormat, MegatronFormat, ParquetFormat, megatron_dtype
from tokenclub.export.sink import HashingSink, ShardFile, write_atomically
from tokenclub.export.snapshot import SnapshotView, get_snapshot, snapshot_parts
from tokenclub.storage import open_root
from tokenclub.tokenizer import TokenCounter

MANIFEST = "manifest.json"
PROVENANCE = "provenance.parquet"
PROVENANCE_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("partner_id", pa.int64()),
        ("upload_id", pa.string()),
        ("shard", pa.int32()),
        ("row", pa.int64()),
    ]
)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    snapshot_id: int
    formats: tuple[str, ...]
    shard_bytes: int
    seed: int | None = None
    location: str | None = None
    shuffle_window: int = DEFAULT_SHUFFLE_WINDOW


def _cut(batch: pa.Table, filled: int, limit: int) -> tuple[pa.Table, pa.Table | None, int]:
    """Split `batch` where the open shard (holding `filled` text bytes) reaches `limit`:
    (rows for this shard, the rest or None, the shard's bytes after them)."""
    sizes = pc.binary_length(batch.column("text")).to_numpy(zero_copy_only=False).astype(np.int64)
    totals = filled + np.cumsum(sizes)
    full = np.nonzero(totals >= limit)[0]
    if len(full) == 0 or full[0] == batch.num_rows - 1:
        return batch, None, int(totals[-1]) if len(totals) else filled
    stop = int(full[0]) + 1
    return batch.slice(0, stop), batch.slice(stop), int(totals[stop - 1])


@dataclass(frozen=True, slots=True)
class _Piece:
    """Rows of one batch bound for one shard, starting at `row` of it."""

    batch: pa.Table
    shard: int
    row: int


class _Exporter:
    """The streaming core, apart from the database: documents in, files out."""

    def __init__(
        self, fs: fsspec.AbstractFileSystem, root: str, request: ExportRequest, counter: TokenCounter | None
    ) -> None:
        self.fs, self.root, self.request, self.counter = fs, root, request, counter
        self.writers: list[FormatWriter] = []
        dtype = None
        for name in request.formats:
            if name == "parquet":
                self.writers.append(ParquetFormat(fs, root))
            elif name == "megatron":
                assert counter is not None
                dtype = megatron_dtype(counter.tokenizer.get_vocab_size())
                self.writers.append(MegatronFormat(fs, root, dtype))
            else:
                self.writers.append(MdsFormat(fs, root, request.shard_bytes))
        self.spec = EncodeSpec(
            counter if dtype is not None else None,
            None if dtype is None else dtype.name,
            "mds" in request.formats,
        )
        self.eod = None if counter is None else counter.tokenizer.token_to_id(EOD_TOKEN)
        self.files: list[ShardFile] = []
        self.partners: dict[int, list[int]] = {}
        self.text_bytes = 0

    def _write(
        self, batch: pa.Table, encoded: Encoded, shard: int, row: int, provenance: pq.ParquetWriter
    ) -> None:
        for writer in self.writers:
            writer.write(batch, encoded)
        provenance.write_table(
            pa.table(
                {
                    "doc_id": batch.column("doc_id"),
                    "partner_id": batch.column("partner_id"),
                    "upload_id": batch.column("upload_id"),
                    "shard": pa.array(np.full(batch.num_rows, shard, dtype=np.int32)),
                    "row": pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64)),
                },
                schema=PROVENANCE_SCHEMA,
            )
        )
        for pid, tokens_ in zip(
            batch.column("partner_id").to_pylist(), batch.column("tokens").to_pylist(), strict=True
        ):
            totals = self.partners.setdefault(int(pid), [0, 0])
            totals[0] += 1
            totals[1] += int(tokens_)

    def _finish_shard(self) -> None:
        for writer in self.writers:
            self.files.extend(writer.finish_shard())

    def _pieces(self, batches: Iterator[pa.Table]) -> Iterator[_Piece]:
        """The batches cut at shard boundaries (by text bytes alone, before any encoding)."""
        limit = self.request.shard_bytes
        shard, row, filled = -1, 0, limit
        for whole in batches:
            self.text_bytes += int(pc.sum(pc.binary_length(whole.column("text"))).as_py() or 0)
            rest: pa.Table | None = whole
            while rest is not None and rest.num_rows:
                if filled >= limit:
                    shard, row, filled = shard + 1, 0, 0
                batch, rest, filled = _cut(rest, filled, limit)
                yield _Piece(batch, shard, row)
                row += batch.num_rows

    def run(self, batches: Iterator[pa.Table], encoding: Encoding | None = None) -> ShardFile:
        """Write every batch, encoded by `encoding` (here by default; the result is the same
        bytes either way); returns the provenance file (the shards are in `self.files`)."""
        mapper = encoding or LocalEncoding()
        items = ((piece, piece.batch.select(ENCODE_COLUMNS)) for piece in self._pieces(batches))
        shard = -1
        with HashingSink(self.fs, f"{self.root}/{PROVENANCE}") as sink:
            provenance = pq.ParquetWriter(sink, PROVENANCE_SCHEMA, compression="zstd")
            try:
                for piece, encoded in mapper.map(self.spec, items):
                    if piece.shard != shard:
                        if shard >= 0:
                            self._finish_shard()
                        shard = piece.shard
                        for writer in self.writers:
                            writer.start_shard(shard)
                    self._write(piece.batch, encoded, shard, piece.row, provenance)
                if shard >= 0:
                    self._finish_shard()
                for writer in self.writers:
                    self.files.extend(writer.finish())
            except BaseException:
                with suppress(OSError, ValueError):
                    provenance.close()
                raise
            provenance.close()
        return ShardFile(
            PROVENANCE,
            "provenance",
            None,
            sink.size,
            sink.sha256,
            sum(totals[0] for totals in self.partners.values()),
        )


def _location(request: ExportRequest, exports_root: str, export_id: int) -> str:
    return request.location.rstrip("/") if request.location else f"{exports_root}/export-{export_id:06d}"


def _open_target(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The export's store, refusing one that already holds an export or whose fsspec driver
    (an extra such as s3fs) is not installed."""
    try:
        fs, root = open_root(location)
    except ImportError as exc:
        raise InvalidInputError(f"cannot write to {location}: {exc}") from exc
    try:
        if fs.exists(f"{root}/{MANIFEST}"):
            raise StateError(f"{location} already holds an export ({MANIFEST}); choose an empty location")
        fs.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot write to {location}: {exc.strerror or exc}") from exc
    return fs, root


def _manifest(
    export: Export, snapshot: SnapshotView, exporter: _Exporter, provenance: ShardFile
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "export_id": export.id,
        "snapshot_id": snapshot.id,
        "snapshot_created_at": snapshot.created_at.isoformat(),
        "created_at": export.created_at.isoformat(),
        "created_by": export.created_by,
        "formats": list(exporter.request.formats),
        "seed": exporter.request.seed,
        "shuffle_window": exporter.request.shuffle_window if exporter.request.seed is not None else None,
        "shard_bytes": exporter.request.shard_bytes,
        "tokenizer_fingerprint": snapshot.tokenizer_fingerprint,
        "curation": snapshot.curation,
        "documents": sum(t[0] for t in exporter.partners.values()),
        "tokens": sum(t[1] for t in exporter.partners.values()),
        "text_bytes": exporter.text_bytes,
        "partners": {
            str(pid): {"documents": docs, "tokens": tokens}
            for pid, (docs, tokens) in sorted(exporter.partners.items())
        },
        "files": [f.as_dict() for f in exporter.files],
        "provenance": provenance.as_dict(),
    }
    for writer in exporter.writers:
        if isinstance(writer, MegatronFormat):
            manifest["megatron"] = {
                "dtype": writer.dtype.name,
                "eod_token": EOD_TOKEN,
                "eod_id": exporter.eod,
                "tokens": writer.tokens,
            }
    return manifest


def _remove(fs: fsspec.AbstractFileSystem, root: str, writers: Sequence[FormatWriter]) -> None:
    """Close and delete every file a failed export opened (best effort: the store may be gone)."""
    for writer in writers:
        writer.abort()
    for path in [s.path for w in writers for s in w.opened] + [f"{root}/{PROVENANCE}"]:
        try:
            if fs.exists(path):
                fs.rm(path)
        except OSError:
            continue


def run_export(
    db: Database,
    store: CorpusStore,
    exports_root: str,
    tokenizer_path: Path,
    actor: str,
    role: Role,
    request: ExportRequest,
    encoding: Encoding | None = None,
) -> dict[str, Any]:
    """Write an export of a snapshot; returns its manifest. The caller has authorized `actor`.

    `encoding` does the per-document work (tokenizing, MDS samples): in this process by
    default, or on Ray workers (`export.ray_encode.RayEncoding`); the files are the same bytes.
    """
    with db.transaction() as session:
        snapshot = get_snapshot(session, request.snapshot_id)
        parts = snapshot_parts(session, request.snapshot_id)
        export = Export(
            snapshot_id=snapshot.id,
            created_by=actor.strip(),
            formats=json.dumps(list(request.formats)),
            location="",
            seed=request.seed,
            shard_bytes=request.shard_bytes,
            status="writing",
        )
        session.add(export)
        session.flush()
        export.location = _location(request, exports_root, export.id)
    try:
        counter = None
        if any(name == "megatron" for name in request.formats):
            counter = TokenCounter(tokenizer_path)
            if counter.fingerprint != snapshot.tokenizer_fingerprint:
                raise StateError(
                    f"tokenizer {tokenizer_path} is not the one snapshot {snapshot.id} pinned "
                    f"({snapshot.tokenizer_fingerprint[:12]}…): tokenize with that file"
                )
        fs, root = _open_target(export.location)
        exporter = _Exporter(fs, root, request, counter)
        try:
            provenance = exporter.run(
                iter_snapshot(store, parts, request.seed, request.shuffle_window), encoding
            )
            manifest = _manifest(export, snapshot, exporter, provenance)
            data = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
            write_atomically(fs, f"{root}/{MANIFEST}", data)
        except BaseException:
            _remove(fs, root, exporter.writers)
            raise
    except (OSError, TokenclubError) as exc:
        reason = (
            f"cannot write to {export.location}: {exc.strerror or exc}"
            if isinstance(exc, OSError)
            else str(exc)
        )
        _fail(db, export.id, actor, role, reason)
        raise (InvalidInputError(reason) if isinstance(exc, OSError) else exc) from exc
    with db.transaction() as session:
        row = session.get(Export, export.id)
        assert row is not None
        row.status = "done"
        row.location = export.location
        row.manifest_sha256 = hashlib.sha256(data).hexdigest()
        row.finished_at = utcnow()
        log_action(
            session,
            actor,
            role,
            "export",
            snapshot_id=snapshot.id,
            export_id=export.id,
            detail={
                "formats": list(request.formats),
                "location": export.location,
                "files": len(manifest["files"]),
                "documents": manifest["documents"],
            },
        )
    return manifest


def _fail(db: Database, export_id: int, actor: str, role: Role, reason: str) -> None:
    with db.transaction() as session:
        row = session.get(Export, export_id)
        assert row is not None
        row.status = "failed"
        row.error = reason
        row.finished_at = utcnow()
        log_action(
            session,
            actor,
            role,
            "export_failed",
            snapshot_id=row.snapshot_id,
            export_id=export_id,
            detail={"error": reason},
        )
