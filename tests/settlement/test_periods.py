"""Voiding the operator's revenue and cost records: kept, marked, ignored by the pool, only while open."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.settlement.fixtures import LATER, OCT_15, TERMS, approved_partner, credit, october
from tokenclub.db.engine import Database
from tokenclub.db.schema import Base, LedgerEntry, LedgerTransaction
from tokenclub.db.settlement_schema import SettlementRecord, SettlementRecordVoid
from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.ledger.posting import ensure_system_accounts
from tokenclub.settlement.allocation import PoolBasis, pool_krw
from tokenclub.settlement.periods import (
    RecordKind,
    add_record,
    get_period,
    list_records,
    record_totals,
    void_record,
)
from tokenclub.settlement.settle import close_period
from tokenclub.settlement.statement import build_statement


def _count(db: Database, table: type[Base]) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _ledger_rows(db: Database) -> tuple[int, int]:
    return _count(db, LedgerTransaction), _count(db, LedgerEntry)


def _pool(db: Database, api_krw: int) -> int:
    with db.transaction() as session:
        totals = record_totals(session, get_period(session, "2026-10"))
    return pool_krw(
        api_krw + totals[RecordKind.REVENUE], totals[RecordKind.COST], Fraction(3, 10), PoolBasis.PROFIT
    )


def test_a_voided_record_stays_listed_and_the_pool_no_longer_counts_it(db: Database) -> None:
    ids = october(db)
    with db.transaction() as session:
        wrong_revenue = add_record(session, "2026-10", RecordKind.REVENUE, 500_000, "typed twice").id
        wrong_cost = add_record(session, "2026-10", RecordKind.COST, 900_000, "someone else's invoice").id
    # API 700,000 + revenue 800,001 − cost 1,000,003 = 499,998 → 0.3 × = 149,999.4 → 149,999.
    assert _pool(db, 700_000) == 149_999
    ledger = _ledger_rows(db)
    with db.transaction() as session:
        before, after = void_record(session, wrong_revenue, RecordKind.REVENUE, " typed twice ", "kim")
    assert (before.voided, after.voided) == (False, True)
    assert (after.voided_by, after.void_reason, after.krw, after.note) == (
        "kim",
        "typed twice",
        500_000,
        "typed twice",
    )
    # API 700,000 + revenue 300,001 − cost 1,000,003 = −1 → no profit, no pool.
    assert _pool(db, 700_000) == 0
    with db.transaction() as session:
        void_record(session, wrong_cost, RecordKind.COST, "not ours", "kim")
    assert _pool(db, 700_000) == 269_999
    assert _ledger_rows(db) == ledger  # records are not money: a void posts nothing
    assert _count(db, SettlementRecord) == 4  # nothing is deleted
    with db.transaction() as session:
        listed = [(r.krw, r.as_dict()["status"]) for r in list_records(session, "2026-10")]
        assert listed == [
            (300_001, "counted"),
            (100_003, "counted"),
            (500_000, "voided"),
            (900_000, "voided"),
        ]
        assert [r.krw for r in list_records(session, None, RecordKind.COST)] == [100_003, 900_000]
        result = close_period(session, "2026-10", TERMS, now=LATER)
    assert (result.manual_revenue_krw, result.cost_krw, result.pool_krw) == (300_001, 100_003, 269_999)
    with db.transaction() as session:
        statement = build_statement(session, ids["가람"], "2026-10")
    assert [(r.kind, r.krw) for r in statement.records] == [("revenue", 300_001), ("cost", 100_003)]


def test_a_closed_period_refuses_a_void_and_nothing_is_written(db: Database) -> None:
    october(db)
    with db.transaction() as session:
        record = add_record(session, "2026-10", RecordKind.REVENUE, 1_000, "late fix").id
        first = close_period(session, "2026-10", TERMS, now=LATER)
    with db.transaction() as session, pytest.raises(StateError, match="period 2026-10 is closed"):
        void_record(session, record, RecordKind.REVENUE, "wrong", "kim")
    assert _count(db, SettlementRecordVoid) == 0
    with db.transaction() as session:
        assert [r.voided for r in list_records(session, "2026-10")] == [False, False, False]
        assert close_period(session, "2026-10", TERMS, now=LATER) == first


def test_a_record_is_voided_once_and_only_as_its_own_kind(db: Database) -> None:
    october(db)
    with db.transaction() as session:
        record = add_record(session, "2026-10", RecordKind.COST, 7, "x").id
    with db.transaction() as session:
        void_record(session, record, RecordKind.COST, "first reason", "kim")
    with db.transaction() as session, pytest.raises(StateError, match=f"record {record} was already voided"):
        void_record(session, record, RecordKind.COST, "second reason", "lee")
    with db.transaction() as session:
        (view,) = [r for r in list_records(session) if r.id == record]
        assert (view.voided_by, view.void_reason) == ("kim", "first reason")
    assert _count(db, SettlementRecordVoid) == 1
    with db.transaction() as session:
        revenue = add_record(session, "2026-10", RecordKind.REVENUE, 9, "y").id
    with db.transaction() as session:
        with pytest.raises(InvalidInputError, match=f"record {revenue} is revenue, not cost"):
            void_record(session, revenue, RecordKind.COST, "why", "kim")
        with pytest.raises(InvalidInputError, match="reason"):
            void_record(session, revenue, RecordKind.REVENUE, "   ", "kim")
        with pytest.raises(NotFoundError, match="record 999999 does not exist"):
            void_record(session, 999_999, RecordKind.REVENUE, "why", "kim")
    assert _count(db, SettlementRecordVoid) == 1


@pytest.mark.postgres
def test_racing_voids_and_a_close_on_postgresql_agree(pg_db: Database) -> None:
    """Voids of one record race each other and the close: at most one void lands, and the close
    counts the record exactly when no void landed before it."""
    october(pg_db)
    with pg_db.transaction() as session:
        record = add_record(session, "2026-10", RecordKind.COST, 50_000, "raced").id
    barrier = threading.Barrier(5)
    refusals: list[str] = []
    unexpected: list[BaseException] = []

    def void(who: str) -> None:
        barrier.wait()
        try:
            with pg_db.transaction() as session:
                void_record(session, record, RecordKind.COST, "wrong", who)
        except StateError as exc:
            refusals.append(str(exc))
        except BaseException as exc:
            unexpected.append(exc)

    def close() -> None:
        barrier.wait()
        with pg_db.transaction() as session:
            close_period(session, "2026-10", TERMS, now=LATER)

    threads = [threading.Thread(target=void, args=(f"op{i}",)) for i in range(4)]
    threads.append(threading.Thread(target=close))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert unexpected == [] and len(refusals) in (3, 4)
    with pg_db.transaction() as session:
        result = close_period(session, "2026-10", TERMS, now=LATER)
        (view,) = [r for r in list_records(session) if r.id == record]
    assert _count(pg_db, SettlementRecordVoid) == 4 - len(refusals)
    assert result.cost_krw == (100_003 if view.voided else 150_003)


def _reset(db: Database) -> None:
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        ensure_system_accounts(session)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(
        st.tuples(st.sampled_from(list(RecordKind)), st.integers(1, 10**9), st.booleans()), max_size=8
    )
)
def test_the_closed_pool_counts_exactly_the_records_left_standing(
    db: Database, records: list[tuple[RecordKind, int, bool]]
) -> None:
    _reset(db)
    with db.transaction() as session:
        credit(session, approved_partner(session, "p"), 10, OCT_15)
        ids = [(add_record(session, "2026-10", kind, krw, "r").id, kind, void) for kind, krw, void in records]
    with db.transaction() as session:
        for record, kind, void in ids:
            if void:
                void_record(session, record, kind, "wrong", "kim")
        result = close_period(session, "2026-10", TERMS, now=LATER)
    standing = {kind: sum(krw for k, krw, void in records if k is kind and not void) for kind in RecordKind}
    assert (result.manual_revenue_krw, result.cost_krw) == (
        standing[RecordKind.REVENUE],
        standing[RecordKind.COST],
    )
    assert result.pool_krw == pool_krw(
        standing[RecordKind.REVENUE], standing[RecordKind.COST], Fraction(3, 10), PoolBasis.PROFIT
    )
