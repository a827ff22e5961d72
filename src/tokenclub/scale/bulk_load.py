"""Bulk load of a historical corpus: the receipts, credits and indexes of ingesting it upload by
upload, with the duplicates decided for the whole corpus at once by the bulk dedup job.

Three passes over the contributions, in contribution order:

1. **stage**: every upload is stored raw, extracted and batched exactly as `ingest` does it
   (same upload ids, same document ids) and the steps are mapped once; the mapped batches are
   kept as Parquet in a staging folder, and the signatures of live documents, numbered in
   contribution order, are gathered;
2. **decide**: `bulk_dedup` (Ray Data shuffles) over those signatures; its rule is the
   incremental index's, so it rejects the documents that upload-by-upload ingest would;
3. **commit**: `ingest` runs for each upload with the staged batches as its executor and the
   bulk decisions as its dedup decider, several uploads at once on PostgreSQL (they read no
   index and write disjoint documents, so they take no dedup lock). Everything after dedup is
   the incremental path itself: corpus parts through the corpus store, the dedup index rows
   of accepted documents, the leak-guard index, the receipt, and one ledger credit per upload
   under its idempotency key, so a re-run (or a crash and a re-run) credits nothing twice.

The index must be empty of accepted documents when a load starts: the bulk decisions compare
the historical corpus with itself, not with what was accepted before. Uploads after the load
are incremental.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tokenclub.atrest.objects import Sealing
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.curate.step import REJECT, set_column
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.errors import StateError
from tokenclub.extract.rawstore import RawStore
from tokenclub.extract.records import RecordOptions
from tokenclub.ingest.extraction import StoredFile, extract_upload
from tokenclub.ingest.service import Decider, IngestJob, collect_files, ingest, upload_id_for
from tokenclub.pipeline.batching import batches
from tokenclub.pipeline.executor import Executor, LocalExecutor, run_steps
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.storage import store_child

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Contribution:
    """One upload of the historical corpus: who contributed which files."""

    partner_id: int
    paths: tuple[Path, ...]


class _Staged:
    """The executor of the commit pass: hands back the batches the stage pass mapped.

    A batch is found by its first document id (unique across uploads); a batch without
    documents (only files that failed to extract) is mapped again, which costs nothing.
    """

    def __init__(self, folder: Path, spec: PipelineSpec) -> None:
        self.folder = folder
        self.spec = spec

    def _path(self, table: pa.Table) -> Path:
        first = str(table.column("doc_id")[0])
        return self.folder / f"{hashlib.sha256(first.encode()).hexdigest()[:32]}.parquet"

    def put(self, mapped: pa.Table) -> None:
        if mapped.num_rows:
            pq.write_table(mapped, self._path(mapped))

    def map(self, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]:
        for tag, table in items:
            if not table.num_rows:
                yield tag, run_steps(self.spec(), table)
                continue
            path = self._path(table)
            if not path.exists():
                raise StateError(f"bulk load: batch starting at {table.column('doc_id')[0]} was not staged")
            yield tag, pq.read_table(path)


def _stage(
    raw: RawStore,
    contributions: Sequence[Contribution],
    mapper: Executor,
    batch_size: int,
    staged: _Staged,
    options: RecordOptions,
) -> pa.Table:
    """Map every upload's batches once; the live documents' signatures in contribution order."""
    signed: list[pa.Table] = []
    order = 0
    for contribution in contributions:
        collected = collect_files(contribution.paths)
        files = sorted(
            (
                StoredFile(name, raw.put_file(path, regular_only=inside), path.stat().st_size)
                for name, path, inside in collected.files
            ),
            key=lambda f: (f.name, f.sha256),
        )
        upload_id = upload_id_for(contribution.partner_id, files)
        documents = extract_upload(raw, files, collected.refused, options)
        stream = ((None, raw_batch.table) for raw_batch in batches(upload_id, documents, batch_size))
        for _, mapped in mapper.map(stream):
            staged.put(mapped)
            live = mapped.filter(pc.is_null(mapped.column(REJECT))).select(
                ["doc_id", "dedup_key", "minhash", "minhash_bands"]
            )
            signed.append(
                live.add_column(1, "order", pa.array(range(order, order + live.num_rows), pa.int64()))
            )
            order += live.num_rows
    if not signed:
        return pa.table({"doc_id": pa.array([], pa.string())})
    return pa.concat_tables(signed)


def _duplicates(signed: pa.Table, parts: int) -> frozenset[str]:
    """The document ids the bulk dedup job rejects (needs a connected Ray runtime)."""
    if not signed.num_rows:
        return frozenset()
    import ray.data

    from tokenclub.scale.bulk_dedup import bulk_dedup, collect

    decisions = collect(bulk_dedup(ray.data.from_arrow(signed), parts).decisions)
    rejected = decisions.filter(pc.is_valid(decisions.column(REJECT)))
    return frozenset(rejected.column("doc_id").to_pylist())


def _preset(duplicates: frozenset[str]) -> Decider:
    """A decider that rejects the bulk job's duplicates and asks the index nothing."""

    def decide(session: Session, table: pa.Table) -> pa.Table:
        reasons = table.column(REJECT).to_pylist()
        ids = table.column("doc_id").to_pylist()
        marked = [
            DUPLICATE_REASON if r is None and d in duplicates else r
            for r, d in zip(reasons, ids, strict=True)
        ]
        return set_column(table, REJECT, marked, pa.string())

    return decide


def require_empty_index(db: Database) -> None:
    """A load compares the historical corpus with itself: nothing may have been accepted before."""
    with db.transaction() as session:
        if session.scalar(select(exists().where(CorpusDocument.doc_id.is_not(None)))):
            raise StateError(
                "bulk load needs an empty corpus index: later uploads go through `tokenclub ingest`"
            )


def bulk_load(
    db: Database,
    home: Path,
    contributions: Sequence[Contribution],
    spec: PipelineSpec,
    credit_ratio: Fraction,
    *,
    batch_size: int = 256,
    workers: int | None = None,
    parts: int = 8,
    store_url: str | None = None,
    commit_threads: int = 4,
    mapper: Executor | None = None,
    sealing: Sealing | None = None,
    options: RecordOptions | None = None,
) -> list[dict[str, Any]]:
    """Load the contributions as if ingested one after another; their receipts, in order.

    Needs a connected Ray runtime (`scale.runtime.connect`) for the dedup job. On PostgreSQL
    `commit_threads` uploads commit at once. `mapper` maps the steps in the stage pass (local
    processes by default; a `RayExecutor` spreads them over the cluster). No other ingest may
    run during a load.
    """
    require_empty_index(db)
    options = options or RecordOptions()
    raw = RawStore(store_child(home, store_url, "raw"), sealing)
    with tempfile.TemporaryDirectory(prefix="tokenclub-bulk-") as folder:
        staged = _Staged(Path(folder), spec)
        duplicates = _duplicates(
            _stage(raw, contributions, mapper or LocalExecutor(spec, workers), batch_size, staged, options),
            parts,
        )
        decide = _preset(duplicates)

        def commit(contribution: Contribution) -> dict[str, Any]:
            job = IngestJob(
                contribution.partner_id,
                contribution.paths,
                spec,
                credit_ratio,
                batch_size,
                workers,
                store_url,
                options,
                sealing,
            )
            return ingest(db, home, job, executor=staged, decide=decide)

        if db.engine.dialect.name != "postgresql" or commit_threads < 2:
            return [commit(c) for c in contributions]
        # Uploads commit independently once decided (disjoint documents, no index reads), so
        # several drivers' worth of commits run at once; SQLite has one writer and stays serial.
        with ThreadPoolExecutor(commit_threads) as pool:
            return list(pool.map(commit, contributions))
