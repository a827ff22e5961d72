"""The accumulated-copy tally in the database, shared by every gateway worker.

Kept in `guard_tallies` rather than the rate-limit store: the window is hours, not a minute, the
rows name a partner (a foreign key the operator can join with keys and guard events), and the
database is there in every deployment while Redis is optional. Rows are per key (the operator
sees which key copied), the budget per customer (all its keys summed). A key has at most one
row per partner and bucket (12 per window); its expired buckets are deleted whenever it is
credited. The window is read on every guarded request, so its statements are prebuilt (`db/prebuilt.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardTally
from tokenclub.db.prebuilt import CounterUpsert, Prebuilt
from tokenclub.db.schema import ApiKey
from tokenclub.guard.detection.accumulate import Budget, bucket_of, first_live_bucket

_TABLE = cast(Table, GuardTally.__table__)


_UPSERT = CounterUpsert(_TABLE, ("key_id", "partner_id", "bucket"), ("letters",))
_EXPIRE = Prebuilt(
    delete(_TABLE).where(_TABLE.c.key_id == bindparam("key_id"), _TABLE.c.bucket < bindparam("first"))
)
_KEYS = cast(Table, ApiKey.__table__)
_TOTALS = Prebuilt(
    select(_TABLE.c.partner_id, func.sum(_TABLE.c.letters))
    .join(_KEYS, _KEYS.c.id == _TABLE.c.key_id)
    .where(_KEYS.c.customer_id == bindparam("customer_id"), _TABLE.c.bucket >= bindparam("first"))
    .group_by(_TABLE.c.partner_id)
)


def add_credits(
    session: Session, key_id: int, credits: Mapping[int, int], now: float, budget: Budget
) -> None:
    """Add one reply's copied letters per partner to the key's current bucket (atomic upsert)."""
    if not credits:
        return
    conn = session.connection()
    bucket = bucket_of(now, budget)
    rows = [
        {"key_id": key_id, "partner_id": p, "bucket": bucket, "letters": n}
        for p, n in sorted(credits.items())
    ]
    _UPSERT.run(conn, rows)
    _EXPIRE.run(conn, {"key_id": key_id, "first": first_live_bucket(now, budget)})


def window_totals(session: Session, customer_id: int, now: float, budget: Budget) -> dict[int, int]:
    """Letters all the customer's keys copied per partner within the window ending at `now`:
    one budget per customer, so that opening more keys does not widen it."""
    rows = _TOTALS.run(
        session.connection(), {"customer_id": customer_id, "first": first_live_bucket(now, budget)}
    )
    return {int(partner): int(letters) for partner, letters in rows}
