"""What an admission reads first: whether the guard holds any state for the customer.

Most requests come from customers that were sent no contributed text in any window, so an
admission reads one row (`guard_customer_state`: when the guard last kept grams, fragments or
credits for the customer) together with the capped documents' version and, under a coverage
budget, adds the request's coverage hold: one statement. Only a customer with state in a window
has its grams, holds, fragments and tallies read (`coverage_store`, `fragment_store`,
`tallies`). Every write of such state goes with `kept_state`, in the same transaction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ScalarSelect, Table, bindparam, case, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardCappedDocument, GuardCoverageHold, GuardCustomerState
from tokenclub.db.prebuilt import Prebuilt
from tokenclub.ledger.posting import Rider

_STATE = cast(Table, GuardCustomerState.__table__)
_HOLDS = cast(Table, GuardCoverageHold.__table__)
_CAPPED = cast(Table, GuardCappedDocument.__table__)


def _last(customer: str) -> ScalarSelect[int | None]:
    """The customer's last kept state, the customer bound as `customer`."""
    return select(_STATE.c.last_s).where(_STATE.c.customer_id == bindparam(customer)).scalar_subquery()


_LAST = _last("customer_id")
_CAPPED_ROWS = select(func.count()).select_from(_CAPPED).scalar_subquery()
_CAPPED_NEWEST = select(func.max(_CAPPED.c.id)).scalar_subquery()

_READ = Prebuilt(select(_LAST, _CAPPED_ROWS, _CAPPED_NEWEST))
_READ_AND_HOLD = Prebuilt(
    insert(_HOLDS)
    .values(customer_id=bindparam("customer_id"), created_s=bindparam("now"))
    .returning(_HOLDS.c.id, _LAST, _CAPPED_ROWS, _CAPPED_NEWEST)
)


@dataclass(frozen=True, slots=True)
class Admission:
    """One admission's first read: the customer's last kept state (None: never), the capped
    documents' version (row count, newest id), and the coverage hold added (None: not asked)."""

    last_s: int | None
    capped_version: tuple[int, int]
    hold: int | None = None

    def active(self, since: int) -> bool:
        """Whether state kept at or after `since` may exist."""
        return self.last_s is not None and self.last_s >= since


def read_admission(session: Session, customer_id: int, now: int, hold: bool) -> Admission:
    """The customer's `Admission`, adding its coverage hold in the same statement when `hold`."""
    conn = session.connection()
    if hold:
        return from_rider(tuple(_READ_AND_HOLD.run(conn, {"customer_id": customer_id, "now": now})[0]))
    last_s, rows, newest = _READ.run(conn, {"customer_id": customer_id})[0]
    return Admission(last_s, (int(rows), int(newest or 0)))


_HOLD_RIDER = """, guard_hold AS (
    INSERT INTO guard_coverage_holds (customer_id, created_s)
    SELECT %(g_customer)s, %(g_now)s FROM tx
    RETURNING id
)"""


@functools.cache
def _hold_rider_returning() -> str:
    """The hold's id, then `read_admission`'s three reads, in PostgreSQL's SQL (compiled on first
    use: only a PostgreSQL gateway needs it)."""
    from sqlalchemy.dialects.postgresql import psycopg

    dialect = psycopg.dialect()  # type: ignore[no-untyped-call]
    reads = (_last("g_customer"), _CAPPED_ROWS, _CAPPED_NEWEST)
    return ", (SELECT id FROM guard_hold)" + "".join(f", {read.compile(dialect=dialect)}" for read in reads)


def admission_rider(customer_id: int, now: int) -> Rider:
    """`read_admission` with its hold as writes that go with the ledger hold's posting in one
    statement (PostgreSQL): one round trip less per admission. `from_rider` reads its values."""
    return Rider(_HOLD_RIDER, {"g_customer": customer_id, "g_now": now}, _hold_rider_returning())


def from_rider(values: tuple[Any, ...]) -> Admission:
    """The `Admission` an `admission_rider` (or `read_admission`'s statement with a hold)
    returned: the hold's id, the customer's last kept state, the capped documents' version."""
    hold_id, last_s, rows, newest = values
    return Admission(last_s, (int(rows), int(newest or 0)), int(hold_id))


def kept_state(session: Session, customer_id: int, now: int) -> None:
    """Mark that the guard kept state for the customer at `now` (in the writer's transaction)."""
    dialect = session.get_bind().dialect.name
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(_STATE).values(
        customer_id=customer_id, last_s=now
    )
    newest = case((upsert.excluded.last_s > _STATE.c.last_s, upsert.excluded.last_s), else_=_STATE.c.last_s)
    session.execute(upsert.on_conflict_do_update(index_elements=("customer_id",), set_={"last_s": newest}))
