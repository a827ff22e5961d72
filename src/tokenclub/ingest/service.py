"""Ingest an upload: store raw files, run the pipeline batch by batch, commit, credit once.

Crash safety: raw files are stored before anything else; each batch commits its accepted
documents, dedup index entries and statistics in one transaction; the final receipt and the
ledger credit commit together under an idempotency key tied to the upload. Re-running the
same command after a kill skips committed batches and finishes with the same receipt.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.partners import require_approved
from tokenclub.atrest.objects import Sealing
from tokenclub.corpus.dedup_index import mark_duplicates, record_accepted
from tokenclub.corpus.store import CorpusStore
from tokenclub.curate.step import REJECT
from tokenclub.db.engine import Database
from tokenclub.db.schema import Partner, Upload, UploadBatch
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.extract.document import ExtractionFailure
from tokenclub.extract.folder import walk_folder
from tokenclub.extract.rawstore import RawStore
from tokenclub.extract.records import RecordOptions
from tokenclub.guard.config import guard_settings
from tokenclub.guard.indexing.background import BackgroundIndexer
from tokenclub.guard.indexing.build import sync as guard_sync
from tokenclub.guard.indexing.parts import GROUP_TOKENS, Part, part_name, rows
from tokenclub.ingest.decisions import record_decisions
from tokenclub.ingest.extraction import StoredFile, extract_upload
from tokenclub.ingest.receipt import BatchStats, receipt_dict, replay_of, stats_of, total
from tokenclub.ingest.turns import Spool, Turns, earlier_active, heartbeat, take_turn
from tokenclub.ledger.operations import grant_free_tokens
from tokenclub.pipeline.batching import batches
from tokenclub.pipeline.executor import Executor, LocalExecutor, ReadingExecutor
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.storage import store_child

DEDUP_LOCK_ID = 0x70C0C1AB  # one PostgreSQL advisory lock serialises dedup decisions across ingests


@dataclass(frozen=True, slots=True)
class IngestJob:
    """One ingest request with everything that decides its result.

    `sealed_sources`: the paths are files this home sealed with `sealing` (uploads staged by
    the data API); they are decrypted into the raw store, and one that does not open is refused.
    """

    partner_id: int
    paths: tuple[Path, ...]
    spec: PipelineSpec
    credit_ratio: Fraction
    batch_size: int = 256
    workers: int | None = None
    store_url: str | None = None
    options: RecordOptions = field(default_factory=RecordOptions)
    sealing: Sealing | None = None
    sealed_sources: bool = False


BatchCallback = Callable[[int, BatchStats], None]
Decider = Callable[[Session, pa.Table], pa.Table]
"""Marks a batch's duplicates inside its commit: the dedup index by default, or decisions made
for a whole corpus beforehand (`scale.bulk_load`)."""


@dataclass(frozen=True, slots=True)
class CollectedFiles:
    """What an upload's paths hold: the files to store (name, path, found in a folder), and
    those refused with a reason."""

    files: list[tuple[str, Path, bool]]
    refused: list[ExtractionFailure]


def collect_files(paths: Iterable[Path]) -> CollectedFiles:
    """Files to ingest with their names in the upload; folders are walked in sorted order.

    Inside a folder, links and special files are refused (see `extract.folder`): they are
    reported in the receipt and never stored.
    """
    found: list[tuple[str, Path, bool]] = []
    refused: list[ExtractionFailure] = []
    for path in paths:
        if path.is_dir():
            for entry in walk_folder(path, path.name):
                if isinstance(entry, ExtractionFailure):
                    refused.append(entry)
                else:
                    found.append((entry.name, entry.path, True))
        elif path.is_file():
            found.append((path.name, path, False))
        else:
            raise InvalidInputError(f"{path}: no such file or folder")
    if not found:
        detail = "; ".join(f"{f.source}: {f.reason}" for f in refused[:3])
        raise InvalidInputError(f"no files to ingest{f' ({detail})' if detail else ''}")
    return CollectedFiles(found, refused)


def upload_id_for(partner_id: int, files: Iterable[StoredFile]) -> str:
    """The same partner sending the same contents (in any order, under any names) is one upload."""
    shas = ",".join(sorted(f.sha256 for f in files))
    return hashlib.sha256(f"{partner_id}:{shas}".encode()).hexdigest()[:32]


def _lock_dedup(session: Session) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": DEDUP_LOCK_ID})


def _index_accepted(session: Session, upload: Upload, seq: int, accepted: pa.Table) -> None:
    """Record provenance and dedup keys of a batch's accepted documents."""
    record_accepted(session, upload.id, upload.partner_id, upload.tokenizer_fingerprint, seq, accepted)


def _commit_batch(
    db: Database,
    store: CorpusStore,
    upload: Upload,
    seq: int,
    table: pa.Table,
    failures: list[ExtractionFailure],
    decide: Decider = mark_duplicates,
) -> tuple[BatchStats, pa.Table] | None:
    """Dedup against the index and commit one batch: its statistics and its accepted documents
    as written to the corpus; None if another run committed it first."""
    try:
        with db.transaction() as session:
            if decide is mark_duplicates:  # decisions made beforehand read no index: nothing to order
                _lock_dedup(session)
            if session.get(UploadBatch, (upload.id, seq)) is not None:
                return None
            table = decide(session, table)
            stats = stats_of(table, failures)
            record_decisions(session, upload.id, seq, table)
            accepted = table.filter(pc.is_null(table.column(REJECT)))
            if accepted.num_rows:
                rows = accepted.num_rows
                accepted = (
                    accepted.append_column("partner_id", pa.array([upload.partner_id] * rows, pa.int64()))
                    .append_column("upload_id", pa.array([upload.id] * rows, pa.string()))
                    .append_column(
                        "tokenizer_fingerprint", pa.array([upload.tokenizer_fingerprint] * rows, pa.string())
                    )
                )
                store.write_part(upload.id, seq, accepted)
                _index_accepted(session, upload, seq, accepted)
            session.add(UploadBatch(upload_id=upload.id, seq=seq, stats=stats.to_json()))
            session.flush()
        return stats, accepted
    except IntegrityError:
        with db.transaction() as session:
            if session.get(UploadBatch, (upload.id, seq)) is not None:
                return None
        raise


def _open_upload(
    db: Database, job: IngestJob, files: list[StoredFile], tokenizer_fp: str
) -> tuple[Upload, set[int]]:
    upload_id = upload_id_for(job.partner_id, files)
    with db.transaction() as session:
        require_approved(session, job.partner_id)
        upload = session.get(Upload, upload_id)
        if upload is None:
            upload = Upload(
                id=upload_id,
                partner_id=job.partner_id,
                status="processing",
                files=json.dumps([f.as_dict() for f in files], ensure_ascii=False),
                batch_size=job.batch_size,
                tokenizer_fingerprint=tokenizer_fp,
            )
            session.add(upload)
            session.flush()
        elif upload.status == "processing" and upload.tokenizer_fingerprint != tokenizer_fp:
            raise StateError(
                f"upload {upload_id} was started with tokenizer {upload.tokenizer_fingerprint[:12]}; "
                "configure that tokenizer again to finish it"
            )
        done = set(session.scalars(select(UploadBatch.seq).where(UploadBatch.upload_id == upload_id)))
    return upload, done


def _finish(db: Database, job: IngestJob, upload: Upload, batch_count: int) -> dict[str, Any]:
    with db.transaction() as session:
        current = session.get(Upload, upload.id, with_for_update=True)
        assert current is not None
        if current.status == "done" and current.receipt:
            return replay_of(json.loads(current.receipt))
        rows = list(
            session.scalars(
                select(UploadBatch.stats).where(UploadBatch.upload_id == upload.id).order_by(UploadBatch.seq)
            )
        )
        if len(rows) != batch_count:
            raise StateError(f"upload {upload.id}: {len(rows)} of {batch_count} batches committed")
        stats = total(BatchStats.from_json(raw) for raw in rows)
        granted = int(stats.tokens * job.credit_ratio)
        if granted > 0:
            customer = customer_of_partner(session, job.partner_id)
            grant_free_tokens(
                session, customer.id, granted, f"upload:{upload.id}:credit", f"credit for upload {upload.id}"
            )
        session.execute(
            update(Partner)
            .where(Partner.id == job.partner_id)
            .values(accepted_words=Partner.accepted_words + stats.words)
        )
        receipt = receipt_dict(
            upload_id=upload.id,
            partner_id=job.partner_id,
            files=json.loads(current.files),
            stats=stats,
            credited_tokens=stats.tokens,
            free_tokens_granted=granted,
            credit_ratio=str(job.credit_ratio),
            tokenizer={"path": str(job.spec.tokenizer_path), "fingerprint": current.tokenizer_fingerprint},
        )
        current.status = "done"
        current.receipt = json.dumps(receipt, ensure_ascii=False)
        current.finished_at = utcnow()
    return receipt


def upload_errors(db: Database, upload_id: str) -> list[dict[str, str]]:
    """Every file error of an upload, in reading order: the full list a long receipt groups."""
    with db.transaction() as session:
        rows = session.scalars(
            select(UploadBatch.stats).where(UploadBatch.upload_id == upload_id).order_by(UploadBatch.seq)
        )
        return [error for raw in rows for error in BatchStats.from_json(raw).errors]


def _release_raw(db: Database, raw: RawStore, files: list[StoredFile]) -> None:
    """Delete raw files whose receipts are written, unless an unfinished upload still needs them."""
    with db.transaction() as session:
        open_files = session.scalars(select(Upload.files).where(Upload.status != "done"))
        needed = {entry["sha256"] for raw_files in open_files for entry in json.loads(raw_files)}
    for stored in files:
        if stored.sha256 not in needed:
            raw.delete(stored.sha256)


def _store(raw: RawStore, name: str, path: Path, inside: bool, sealed: bool) -> StoredFile:
    sha256 = raw.put_file(path, regular_only=inside, sealed=sealed)
    return StoredFile(name, sha256, raw.size(sha256) if sealed else path.stat().st_size)


def ingest(
    db: Database,
    home: Path,
    job: IngestJob,
    on_batch: BatchCallback | None = None,
    executor: Executor | None = None,
    decide: Decider = mark_duplicates,
    turns: Turns = Turns(),
    on_wait: Callable[[list[str]], None] | None = None,
) -> dict[str, Any]:
    """Run an upload to its receipt; safe to call again after any crash.

    `executor` maps the steps over the batches (default: a `LocalExecutor`); any executor gives
    the same receipt, because dedup decisions and commits stay here, in batch order. Uploads
    running at once commit in turn (`ingest/turns.py`), so they credit as in sequence;
    `on_wait` hears once which earlier uploads this run waits for.
    """
    if job.batch_size < 1:
        raise InvalidInputError("batch size must be at least 1")
    shape = guard_settings().index_shape()  # a bad setting fails here, before anything is written
    collected = collect_files(job.paths)
    with db.transaction() as session:
        require_approved(session, job.partner_id)
    raw = RawStore(store_child(home, job.store_url, "raw"), job.sealing)
    files = sorted(
        (_store(raw, name, path, inside, job.sealed_sources) for name, path, inside in collected.files),
        key=lambda f: (f.name, f.sha256),
    )
    upload, done = _open_upload(db, job, files, job.spec.tokenizer_fingerprint)
    if upload.status == "done":
        receipt = _finish(db, job, upload, 0)
        _release_raw(db, raw, files)
        return receipt
    store = CorpusStore(store_child(home, job.store_url, "corpus"), job.sealing)
    batch_size = upload.batch_size
    seen = 0

    mapper = executor or LocalExecutor(job.spec, job.workers)
    # The executor's workers read the files too, where they can (`ingest/extraction.py`).
    readers = mapper.readers() if isinstance(mapper, ReadingExecutor) else None
    documents = extract_upload(raw, files, collected.refused, job.options, readers)

    def todo() -> Iterator[tuple[tuple[int, list[ExtractionFailure]], pa.Table]]:
        nonlocal seen
        for raw_batch in batches(upload.id, documents, batch_size):
            seen = raw_batch.seq + 1
            if raw_batch.seq not in done:
                yield (raw_batch.seq, raw_batch.failures), raw_batch.table

    unindexed: list[Part] = []  # committed batches' accepted documents, for the guard index
    tokens = 0

    def commit(seq: int, table: pa.Table, failures: list[ExtractionFailure]) -> None:
        nonlocal unindexed, tokens
        committed = _commit_batch(db, store, upload, seq, table, failures, decide)
        if committed is None:
            return
        stats, accepted = committed
        if stats.accepted:
            unindexed.append((part_name(upload.id, seq), rows(accepted)))
            tokens += stats.tokens
            if tokens >= GROUP_TOKENS:
                indexer.submit(unindexed)
                unindexed, tokens = [], 0
        if on_batch is not None:
            on_batch(seq, stats)

    turn = take_turn(db, upload.id, _lock_dedup)
    spool = Spool(home / "spool" / upload.id, job.sealing)
    with BackgroundIndexer(home, shape) as indexer:
        with heartbeat(db, upload.id, turns):  # later turns wait while this run decides
            waiting = decide is mark_duplicates  # decisions made beforehand read no index: no turn to wait
            for (seq, failures), table in mapper.map(todo()):
                ahead = earlier_active(db, turn, turns) if waiting else []
                if ahead and not spool and on_wait is not None:
                    on_wait(ahead)
                waiting = bool(ahead)
                if waiting:
                    indexer.start()  # its start overlaps the wait, not the commits after it
                    spool.put(seq, table, failures)
                    continue
                for spooled in spool.drain():
                    commit(*spooled)
                commit(seq, table, failures)
            while spool and earlier_active(db, turn, turns):
                time.sleep(turns.poll_s)
            for spooled in spool.drain():
                commit(*spooled)
        indexer.finish(unindexed)
    guard_sync(db, home, store, upload.id)  # batches committed by a run that crashed before indexing them
    receipt = _finish(db, job, upload, seen)
    _release_raw(db, raw, files)
    return receipt
