"""The accumulated-copy tally in the database, shared by every gateway worker.

Kept in `guard_tallies` rather than the rate-limit store: the window is hours, not a minute, the
rows name a partner (a foreign key the operator can join with keys and guard events), and the
database is there in every deployment while Redis is optional. A key has at most one row per
partner and bucket (12 per window); its expired buckets are deleted whenever it is credited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardTally
from tokenclub.guard.accumulate import Budget, bucket_of, first_live_bucket

_INSERTS: dict[str, Any] = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def add_credits(
    session: Session, key_id: int, credits: Mapping[int, int], now: float, budget: Budget
) -> None:
    """Add one reply's copied letters per partner to the key's current bucket (atomic upsert)."""
    if not credits:
        return
    table = cast(Table, GuardTally.__table__)
    bucket = bucket_of(now, budget)
    insert = _INSERTS[session.connection().dialect.name]
    stmt = insert(table).values(
        [
            {"key_id": key_id, "partner_id": p, "bucket": bucket, "letters": n}
            for p, n in sorted(credits.items())
        ]
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.key_id, table.c.partner_id, table.c.bucket],
            set_={"letters": table.c.letters + stmt.excluded.letters},
        )
    )
    session.execute(
        delete(GuardTally).where(
            GuardTally.key_id == key_id, GuardTally.bucket < first_live_bucket(now, budget)
        )
    )


def window_totals(session: Session, key_id: int, now: float, budget: Budget) -> dict[int, int]:
    """Letters the key copied per partner within the window ending at `now`."""
    rows = session.execute(
        select(GuardTally.partner_id, func.sum(GuardTally.letters))
        .where(GuardTally.key_id == key_id, GuardTally.bucket >= first_live_bucket(now, budget))
        .group_by(GuardTally.partner_id)
    )
    return {int(partner): int(letters) for partner, letters in rows}
