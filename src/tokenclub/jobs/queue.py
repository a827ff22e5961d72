"""The contributions table as a job queue: claim with a lease, renew it, finish once.

Claiming is a compare-and-set update (`status` and `lease_until` must still be what the
worker read), so it works alike on SQLite and PostgreSQL and two workers never both win a
job. A worker that dies stops renewing its lease; when the lease has run out any worker may
claim the job again and the resumable ingest carries on from its last committed batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import Contribution
from tokenclub.db.types import utcnow

MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    contribution_id: str
    partner_id: int
    data_upload_id: str
    attempt: int


def claim(db: Database, worker: str, lease: timedelta) -> Claim | None:
    """The oldest runnable job, now leased to `worker`; None when there is nothing to do."""
    now = utcnow()
    runnable = or_(
        Contribution.status == "queued",
        (Contribution.status == "running") & (Contribution.lease_until < now),
    )
    with db.transaction() as session:
        candidates = session.execute(
            select(Contribution.id, Contribution.status, Contribution.lease_until, Contribution.attempts)
            .where(runnable)
            .order_by(Contribution.created_at, Contribution.id)
            .limit(8)
        ).all()
    for job_id, status, lease_until, attempts in candidates:
        with db.transaction() as session:
            won = session.execute(
                update(Contribution)
                .where(
                    Contribution.id == job_id,
                    Contribution.status == status,
                    Contribution.attempts == attempts,
                )
                .where(
                    Contribution.lease_until.is_(None)
                    if lease_until is None
                    else Contribution.lease_until == lease_until
                )
                .values(
                    status="running",
                    worker=worker,
                    lease_until=now + lease,
                    attempts=Contribution.attempts + 1,
                    started_at=now,
                )
            )
            if getattr(won, "rowcount", 0) == 1:
                row = session.get(Contribution, job_id)
                assert row is not None
                return Claim(row.id, row.partner_id, row.data_upload_id, row.attempts)
    return None


def _mine(claim_: Claim, worker: str) -> list[object]:
    return [
        Contribution.id == claim_.contribution_id,
        Contribution.worker == worker,
        Contribution.status == "running",
        Contribution.attempts == claim_.attempt,
    ]


def renew(db: Database, claim_: Claim, worker: str, lease: timedelta) -> bool:
    """Extend the lease; False if the job was taken over (this worker was presumed dead)."""
    with db.transaction() as session:
        result = session.execute(
            update(Contribution).where(*_mine(claim_, worker)).values(lease_until=utcnow() + lease)  # type: ignore[arg-type]
        )
        return getattr(result, "rowcount", 0) == 1


def progress(db: Database, claim_: Claim, worker: str, upload_id: str, seen: int, accepted: int) -> None:
    """Add one committed batch's documents to the job's progress."""
    with db.transaction() as session:
        session.execute(
            update(Contribution)
            .where(*_mine(claim_, worker))  # type: ignore[arg-type]
            .values(
                upload_id=upload_id,
                documents_seen=Contribution.documents_seen + seen,
                documents_accepted=Contribution.documents_accepted + accepted,
                batches_done=Contribution.batches_done + 1,
            )
        )


def reset_progress(db: Database, claim_: Claim, worker: str, seen: int, accepted: int, batches: int) -> None:
    """Set the progress to what a resumed ingest already committed."""
    with db.transaction() as session:
        session.execute(
            update(Contribution)
            .where(*_mine(claim_, worker))  # type: ignore[arg-type]
            .values(documents_seen=seen, documents_accepted=accepted, batches_done=batches)
        )


def finish(
    db: Database, claim_: Claim, worker: str, *, upload_id: str | None, error: str = "", retry: bool = False
) -> str:
    """Close the job as done or failed, or put it back in the queue; returns the new status."""
    if not error:
        status = "done"
    elif retry and claim_.attempt < MAX_ATTEMPTS:
        status = "queued"
    else:
        status = "failed"
    with db.transaction() as session:
        session.execute(
            update(Contribution)
            .where(*_mine(claim_, worker))  # type: ignore[arg-type]
            .values(
                status=status,
                upload_id=upload_id,
                error=error[:2000],
                lease_until=None,
                finished_at=utcnow() if status != "queued" else None,
            )
        )
    return status
