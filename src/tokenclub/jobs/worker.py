"""An ingest worker: claims contributions from the queue and runs the resumable ingest on them.

The lease is renewed from a background thread while the ingest runs; if the renewal finds the
job taken over, the worker stops at the next batch. Known input errors (a partner that is no
longer approved, a file of no readable document) fail the job with their reason; anything else
puts it back in the queue for another attempt, up to `MAX_ATTEMPTS`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tokenclub.atrest.objects import Sealing
from tokenclub.atrest.sealed import MAGIC, SealError, is_sealed
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import DataUpload
from tokenclub.db.schema import UploadBatch
from tokenclub.errors import TokenclubError
from tokenclub.extract.records import RecordOptions
from tokenclub.ingest.extraction import StoredFile
from tokenclub.ingest.receipt import BatchStats, total
from tokenclub.ingest.service import IngestJob, ingest, upload_id_for
from tokenclub.jobs import queue
from tokenclub.jobs.queue import Claim
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.portal.uploads import assembled_path, staging_dir, sweep_expired

log = logging.getLogger(__name__)


class TakenOverError(Exception):
    """The lease ran out and another worker claimed the job."""


@dataclass(frozen=True)
class WorkerConfig:
    home: Path
    spec: PipelineSpec
    credit_ratio: Fraction
    batch_size: int
    workers: int | None
    store_url: str | None
    lease: timedelta = timedelta(minutes=5)
    sealing: Sealing | None = None
    options: RecordOptions = field(default_factory=RecordOptions)


Report = Callable[[str, dict[str, Any]], None]


def _resume_progress(db: Database, claim: Claim, name: str, upload_id: str) -> None:
    with db.transaction() as session:
        rows = list(session.scalars(select(UploadBatch.stats).where(UploadBatch.upload_id == upload_id)))
    stats = total(BatchStats.from_json(raw) for raw in rows)
    queue.reset_progress(db, claim, name, stats.documents, stats.accepted, len(rows))


def staged_is_sealed(path: Path, sha256: str, sealing: Sealing | None) -> bool:
    """Whether the joined upload is sealed; a plain one is taken only if it still is the upload.

    A file joined before encryption at rest was turned on is plaintext; with a key configured it
    must hash to the SHA-256 checked at completion, or it was put there by someone else.
    """
    if not path.is_file():
        return False  # ingest reports the missing file
    with path.open("rb") as staged:
        if is_sealed(staged.read(len(MAGIC))):
            return True
        staged.seek(0)
        if sealing is not None and hashlib.file_digest(staged, "sha256").hexdigest() != sha256:
            raise SealError(
                f"{path}: expected an encrypted file, found plaintext that is not the upload "
                "(replaced or tampered with)"
            )
    return False


def _as_partner_sees_it(message: str, staged: Path, filename: str, home: Path) -> str:
    """A job's error as the partner reads it: the staged file named by the name it was uploaded
    under, and no other path of the server's home."""
    return message.replace(str(staged), filename).replace(str(home), "<server>")


def run_claim(
    db: Database, config: WorkerConfig, claim: Claim, name: str, report: Report | None = None
) -> str:
    """Ingest one claimed contribution to its receipt; returns the job's final status."""
    with db.transaction() as session:
        upload = session.get(DataUpload, claim.data_upload_id)
        assert upload is not None and upload.sha256 is not None
        path = assembled_path(config.home, upload)
        stored = StoredFile(upload.filename, upload.sha256, upload.bytes)
    ingest_id = upload_id_for(claim.partner_id, [stored])
    _resume_progress(db, claim, name, ingest_id)
    stop = threading.Event()
    lost = threading.Event()

    def keep_lease() -> None:
        while not stop.wait(config.lease.total_seconds() / 3):
            if not queue.renew(db, claim, name, config.lease):
                lost.set()
                return

    def on_batch(seq: int, stats: BatchStats) -> None:
        if lost.is_set():
            raise TakenOverError(claim.contribution_id)
        queue.progress(db, claim, name, ingest_id, stats.documents, stats.accepted)
        if report is not None:
            report(
                "batch", {"contribution": claim.contribution_id, "batch": seq, "documents": stats.documents}
            )

    job = IngestJob(
        partner_id=claim.partner_id,
        paths=(path,),
        spec=config.spec,
        credit_ratio=config.credit_ratio,
        batch_size=config.batch_size,
        workers=config.workers,
        store_url=config.store_url,
        options=config.options,
        sealing=config.sealing,
    )
    renewer = threading.Thread(target=keep_lease, daemon=True)
    renewer.start()
    try:
        job = replace(job, sealed_sources=staged_is_sealed(path, stored.sha256, config.sealing))
        receipt = ingest(db, config.home, job, on_batch)
    except TakenOverError:
        return "taken_over"
    except TokenclubError as exc:
        error = _as_partner_sees_it(str(exc), path, upload.filename, config.home)
        return queue.finish(db, claim, name, upload_id=None, error=error)
    except Exception as exc:
        log.exception("contribution %s failed", claim.contribution_id)
        error = _as_partner_sees_it(f"{type(exc).__name__}: {exc}", path, upload.filename, config.home)
        return queue.finish(db, claim, name, upload_id=None, error=error, retry=True)
    finally:
        stop.set()
        renewer.join()
    error = ""
    if receipt["documents_seen"] == 0 and receipt["errors"]:
        first = receipt["errors"][0]
        error = _as_partner_sees_it(
            f"nothing could be read from the upload: {first['source']}: {first['reason']}",
            path,
            upload.filename,
            config.home,
        )
    status = queue.finish(db, claim, name, upload_id=receipt["upload_id"], error=error)
    shutil.rmtree(staging_dir(config.home, claim.data_upload_id), ignore_errors=True)
    return status


def work(
    db: Database,
    config: WorkerConfig,
    name: str,
    *,
    once: bool = False,
    poll_s: float = 2.0,
    stop: threading.Event | None = None,
    report: Report | None = None,
) -> int:
    """Drain the queue: claim and run jobs until stopped (or, with `once`, until it is empty).

    Returns how many jobs this worker finished.
    """
    stopping = stop or threading.Event()
    done = 0
    while not stopping.is_set():
        claim = queue.claim(db, name, config.lease)
        if claim is None:
            sweep_expired(db, config.home)  # idle: drop the parts of uploads nobody finished
            if once:
                break
            stopping.wait(poll_s)
            continue
        if report is not None:
            report("claimed", {"contribution": claim.contribution_id, "attempt": claim.attempt})
        status = run_claim(db, config, claim, name, report)
        if report is not None:
            report(status, {"contribution": claim.contribution_id})
        done += 1
    return done
