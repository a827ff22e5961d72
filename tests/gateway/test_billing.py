"""Holds are settled or released exactly once; stale holds expire; nothing is overdrawn."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.gateway.conftest import PRICES, Customer
from tokenclub.accounts.customers import balance_summary
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import GuardCoverageHold
from tokenclub.db.schema import CreditHold
from tokenclub.db.types import utcnow
from tokenclub.gateway.billing import (
    QuotaExceededError,
    RequestInfo,
    Usage,
    place_hold,
    release_hold,
    settle_hold,
    stale_holds,
)
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits
from tokenclub.guard.state.coverage_store import release_rider
from tokenclub.guard.state.customer_state import admission_rider, from_rider, read_admission
from tokenclub.ledger.posting import audit

TTL = timedelta(minutes=15)


def _info(request_id: str, key_id: int) -> RequestInfo:
    return RequestInfo(request_id, key_id, "tiny", "chat", False)


def test_hold_moves_allowance_and_credit_line_and_settle_returns_the_rest(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=100, credit_krw=50)
    with db.transaction() as session:
        hold = place_hold(session, c.id, c.key_id, 1_000, PRICES, TTL)
        assert (hold.free_tokens, hold.krw) == (100, 9)  # 900 paid tokens × 8 KRW/1k → 8 won + 1 carry
        held = balance_summary(session, c.id)
        assert held["free_tokens_left"] == 0
    with db.transaction() as session:
        event = settle_hold(session, hold, Usage(80, 300), PRICES, _info("r1", c.key_id), 5)
        again = settle_hold(session, hold, Usage(80, 300), PRICES, _info("r1", c.key_id), 5)
        assert again.id == event.id
        summary = balance_summary(session, c.id)
        assert audit(session) == []
    assert (event.free_prompt_tokens, event.free_completion_tokens, event.paid_completion_tokens) == (
        80,
        20,
        280,
    )
    assert event.krw == 2  # 280 × 8,000 / 10^6 = 2.24 won → 2
    assert summary == {
        "free_tokens_granted": 100,
        "free_tokens_used": 100,
        "free_tokens_left": 0,
        "paid_tokens": 280,
        "receivable_krw": 2,
        "payable_krw": 0,
        "spending_left_krw": 50 - 2,
    }


def test_release_returns_everything_once(db: Database, make_customer: Callable[..., Customer]) -> None:
    c = make_customer(free=500)
    with db.transaction() as session:
        hold = place_hold(session, c.id, c.key_id, 300, PRICES, TTL)
    with db.transaction() as session:
        assert release_hold(session, hold.id) is True
        assert release_hold(session, hold.id) is False
        assert balance_summary(session, c.id)["free_tokens_left"] == 500
        assert audit(session) == []


def test_worst_case_beyond_allowance_and_credit_is_refused_without_writes(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=100)
    with pytest.raises(QuotaExceededError, match="insufficient quota"), db.transaction() as session:
        place_hold(session, c.id, c.key_id, 101, PRICES, TTL)
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 100
        assert session.query(CreditHold).count() == 0


def test_stale_holds_expire_after_a_restart(db: Database, make_customer: Callable[..., Customer]) -> None:
    c = make_customer(free=1_000)
    with db.transaction() as session:
        old = place_hold(session, c.id, c.key_id, 400, PRICES, timedelta(seconds=-1))
        fresh = place_hold(session, c.id, c.key_id, 100, PRICES, TTL)
    with db.transaction() as session:
        assert stale_holds(session, utcnow()) == [old.id]
        assert release_hold(session, old.id, expire=True)
        assert balance_summary(session, c.id)["free_tokens_left"] == 900
        assert session.get(CreditHold, fresh.id) is not None


def test_the_guard_holds_release_goes_with_the_charge_where_the_ledger_writes_one_statement(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    """On PostgreSQL the coverage hold's release rides in the charge's statement (one round trip
    less); on SQLite, or on a replay, it does not ride and the caller releases it itself."""
    c = make_customer(free=100, credit_krw=50)
    with db.transaction() as session:
        hold = place_hold(session, c.id, c.key_id, 1_000, PRICES, TTL)
        guard_hold = read_admission(session, c.id, 1_000, hold=True).hold
    assert guard_hold is not None
    postgres = db.engine.dialect.name == "postgresql"
    with db.transaction() as session:
        info = _info("r1", c.key_id)
        charged = settle_hold(session, hold, Usage(80, 300), PRICES, info, 5, release_rider(guard_hold))
        replayed = settle_hold(session, hold, Usage(80, 300), PRICES, info, 5, release_rider(guard_hold))
        left = session.scalar(select(func.count()).select_from(GuardCoverageHold))
        assert audit(session) == []
    assert (charged.rode, replayed.rode) == (postgres, False)
    assert replayed.id == charged.id and charged.krw == 2
    assert left == (0 if postgres else 1)


def test_the_settlements_rate_counter_goes_with_the_charge_where_the_ledger_writes_one_statement(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    """On PostgreSQL the key's charged tokens ride in the charge's statement (one round trip
    less); on SQLite, or on a replay, they do not ride and the caller counts them itself."""
    limiter = DatabaseRateLimiter(Limits(10**9, 10**15))
    c = make_customer(free=100, credit_krw=50)
    with db.transaction() as session:
        hold = place_hold(session, c.id, c.key_id, 1_000, PRICES, TTL)
    postgres = db.engine.dialect.name == "postgresql"
    now = time.time()
    with db.transaction() as session:
        info = _info("r-counted", c.key_id)
        counter = limiter.tokens_rider(c.key_id, 380, now)
        charged = settle_hold(session, hold, Usage(80, 300), PRICES, info, 5, counter)
        replayed = settle_hold(session, hold, Usage(80, 300), PRICES, info, 5, counter)
        counted = limiter.usage(session, c.key_id, now)
        assert audit(session) == []
    assert (charged.rode, replayed.rode) == (postgres, False)
    assert counted == (0, 380 if postgres else 0)
    assert limiter.tokens_rider(c.key_id, 0, now) is None


def test_the_guard_admissions_first_read_goes_with_the_hold_where_the_ledger_writes_one_statement(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    """On PostgreSQL the coverage hold and the admission's first read ride in the ledger hold's
    statement and read as `read_admission` would; on SQLite nothing rides (the guard reads alone)."""
    c = make_customer(free=100, credit_krw=50)
    postgres = db.engine.dialect.name == "postgresql"
    with db.transaction() as session:
        hold = place_hold(session, c.id, c.key_id, 1_000, PRICES, TTL, admission_rider(c.id, 1_000))
        rows = session.scalar(select(func.count()).select_from(GuardCoverageHold))
        later = read_admission(session, c.id, 1_001, hold=False)
    if not postgres:
        assert hold.rider_values is None and rows == 0
        return
    assert hold.rider_values is not None and rows == 1
    first = from_rider(hold.rider_values)
    assert first.hold is not None and first.last_s is None and not first.active(0)
    assert first.capped_version == later.capped_version == (0, 0)
