"""Statements run on the driver's cursor behave as SQLAlchemy's would: values, errors, defaults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError

from tests.gateway.conftest import PRICES, Customer
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import GuardEvent
from tokenclub.db.prebuilt import Prebuilt
from tokenclub.db.schema import CreditHold, RateCounter
from tokenclub.db.types import utcnow
from tokenclub.gateway.billing import place_hold, stale_holds

TTL = timedelta(minutes=15)
_HOLDS = cast(Table, CreditHold.__table__)


def test_datetimes_written_raw_read_back_and_compare_as_sqlalchemy_writes_them(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=1_000)
    before = utcnow()
    with db.transaction() as session:
        hold = place_hold(session, c.id, c.key_id, 100, PRICES, TTL)
    with db.transaction() as session:
        row = session.get(CreditHold, hold.id)
        assert row is not None and row.status == "pending"
        assert row.expires_at - row.created_at == TTL
        assert before <= row.created_at <= utcnow()
        # The sweep's query binds its own datetime through SQLAlchemy: the formats must agree.
        assert stale_holds(session, row.expires_at - timedelta(seconds=1)) == []
        assert stale_holds(session, row.expires_at + timedelta(seconds=1)) == [hold.id]


def test_a_driver_error_is_raised_as_sqlalchemys_and_executemany_writes_every_row(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=1_000)
    counters = Prebuilt(insert(cast(Table, RateCounter.__table__)))
    rows = [{"key_id": c.key_id, "window": w, "requests": w, "tokens": 2 * w} for w in (1, 2, 3)]
    with db.transaction() as session:
        assert counters.run(session.connection(), rows) == []
    with db.transaction() as session:
        got = session.execute(select(RateCounter.window, RateCounter.tokens).order_by(RateCounter.window))
        assert [tuple(r) for r in got] == [(1, 2), (2, 4), (3, 6)]
    with pytest.raises(IntegrityError) as caught, db.transaction() as session:
        counters.run(session.connection(), rows[0])
    assert isinstance(caught.value.orig, db.engine.dialect.loaded_dbapi.IntegrityError)


def test_a_statement_that_needs_a_python_side_default_is_refused(db: Database) -> None:
    """GuardEvent.created_at has a Python default that only SQLAlchemy's execution would fill."""
    statement = Prebuilt(insert(cast(Table, GuardEvent.__table__)))
    params = {"request_id": "r", "stage": "prompt", "verdict": "leak", "action": "logged"}
    with pytest.raises(ValueError, match="created_at"), db.transaction() as session:
        statement.run(session.connection(), params)
