"""Closing periods on both backends: exact numbers, immutability, carry-over, the ledger."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.settlement.fixtures import (
    DEC_10,
    LATER,
    NOV_10,
    OCT_1,
    OCT_15,
    TERMS,
    approved_partner,
    credit,
    free_usage,
    october,
    paid_usage,
    paying_customer,
)
from tokenclub.accounts.customers import balance_summary, customer_of_partner
from tokenclub.db.engine import Database
from tokenclub.db.schema import Base, LedgerEntry, LedgerTransaction, Partner
from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.ledger.chart import PAYABLE_KRW, PROFIT_SHARE_EXPENSE_KRW, customer_account, system_account
from tokenclub.ledger.operations import PAYOUT_KIND
from tokenclub.ledger.posting import Leg, audit, balance, ensure_system_accounts, post
from tokenclub.settlement.allocation import PoolBasis, pool_krw
from tokenclub.settlement.export import sections
from tokenclub.settlement.periods import RecordKind, add_record, day_bounds, list_periods, open_period
from tokenclub.settlement.settle import close_period, payout_key
from tokenclub.settlement.statement import build_statement


def _ledger_rows(db: Database) -> tuple[int, int]:
    with db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0,
            session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
        )


def test_a_period_splits_its_pool_to_the_won_and_posts_payouts(db: Database) -> None:
    ids = october(db)
    with db.transaction() as session:
        result = close_period(session, "2026-10", TERMS, now=LATER)
    assert result.created
    assert (result.api_revenue_krw, result.manual_revenue_krw, result.cost_krw) == (700_000, 300_001, 100_003)
    # 0.3 × (1,000,001 − 100,003) = 269,999.4 → 269,999; three equal shares of 89,999.67:
    # quotas 89,999 each, the two won left go to the first names (equal remainder and weight).
    assert (result.profit_krw, result.pool_krw, result.total_tokens) == (899_998, 269_999, 3_000)
    by_partner = {line.partner_id: line for line in result.lines}
    assert [by_partner[ids[n]].allocated_krw for n in ("가람", "나래", "다솜")] == [90_000, 90_000, 89_999]
    assert sum(line.allocated_krw for line in result.lines) == result.pool_krw
    assert all(line.paid_krw == line.allocated_krw and line.carried_out_krw == 0 for line in result.lines)
    payouts = result.as_dict()["payouts"]
    assert isinstance(payouts, list)
    assert {"partner", "tokens", "share", "krw"} <= payouts[0].keys()
    with db.transaction() as session:
        for name in ("가람", "나래", "다솜"):
            customer = customer_of_partner(session, ids[name]).id
            assert balance_summary(session, customer)["payable_krw"] == by_partner[ids[name]].paid_krw
        assert balance(session, system_account(PROFIT_SHARE_EXPENSE_KRW)) == 269_999
        assert audit(session) == []


def test_closing_again_changes_nothing_and_a_closed_period_refuses_changes(db: Database) -> None:
    october(db)
    with db.transaction() as session:
        first = close_period(session, "2026-10", TERMS, now=LATER)
    rows = _ledger_rows(db)
    with db.transaction() as session:
        # Late usage stamped inside October and different terms: the frozen result stands.
        paid_usage(session, paying_customer(session, "late"), 1_000_000, OCT_15, "late")
        again = close_period(session, "2026-10", replace(TERMS, pool_rate=Decimal("1")), now=LATER)
    assert not again.created
    assert again == first and again.as_dict() == first.as_dict()
    assert _ledger_rows(db) == (rows[0] + 1, rows[1] + 2)
    with db.transaction() as session, pytest.raises(StateError, match="closed"):
        add_record(session, "2026-10", RecordKind.REVENUE, 1, "too late")
    with db.transaction() as session:
        assert [(p.name, p.closed) for p in list_periods(session)] == [("2026-10", True)]
        assert audit(session) == []


def test_payout_postings_are_the_ledgers_own(db: Database) -> None:
    ids = october(db)
    with db.transaction() as session:
        result = close_period(session, "2026-10", TERMS, now=LATER)
        line = next(line for line in result.lines if line.partner_id == ids["나래"])
        customer = customer_of_partner(session, ids["나래"]).id
        replay = post(
            session,
            payout_key("2026-10", ids["나래"]),
            PAYOUT_KIND,
            [
                Leg(system_account(PROFIT_SHARE_EXPENSE_KRW), line.paid_krw),
                Leg(customer_account(customer, PAYABLE_KRW), -line.paid_krw),
            ],
        )
    assert not replay.created


def test_small_amounts_carry_forward_until_they_reach_the_minimum(db: Database) -> None:
    with db.transaction() as session:
        big = approved_partner(session, "big")
        small = approved_partner(session, "small")
        credit(session, big, 999_000, OCT_15)
        credit(session, small, 1_000, OCT_15)
        customer = paying_customer(session)
        paid_usage(session, customer, 2_000_000, OCT_15, "oct")  # pool 600,000: small earns 600
        paid_usage(session, customer, 1_500_000, NOV_10, "nov")  # pool 450,000: small earns 450
        paid_usage(session, customer, 10, DEC_10, "dec")  # pool 3: small earns 0
    lines = {}
    with db.transaction() as session:
        for name in ("2026-10", "2026-11", "2026-12"):
            result = close_period(session, name, TERMS, now=LATER)
            lines[name] = {line.partner_id: line for line in result.lines}
    assert (lines["2026-10"][small].allocated_krw, lines["2026-10"][small].paid_krw) == (600, 0)
    assert lines["2026-10"][small].carried_out_krw == 600
    assert (lines["2026-11"][small].carried_in_krw, lines["2026-11"][small].allocated_krw) == (600, 450)
    assert (lines["2026-11"][small].paid_krw, lines["2026-11"][small].carried_out_krw) == (1_050, 0)
    assert lines["2026-12"][big].allocated_krw == 3 and lines["2026-12"][big].carried_out_krw == 3
    paid = sum(line.paid_krw for period in lines.values() for line in period.values())
    carried = sum(line.carried_out_krw for line in lines["2026-12"].values())
    assert paid + carried == 600_000 + 450_000 + 3
    with db.transaction() as session:
        assert (
            balance(session, customer_account(customer_of_partner(session, small).id, PAYABLE_KRW)) == 1_050
        )
        assert balance(session, system_account(PROFIT_SHARE_EXPENSE_KRW)) == paid
        assert audit(session) == []


def test_no_profit_or_no_tokens_means_an_empty_pool(db: Database) -> None:
    with db.transaction() as session:
        partner = approved_partner(session, "p")
        credit(session, partner, 10, OCT_15)
        add_record(session, "2026-09", RecordKind.REVENUE, 100, "before any contribution")
        add_record(session, "2026-10", RecordKind.REVENUE, 100, "r")
        add_record(session, "2026-10", RecordKind.COST, 500, "c")
    rows = _ledger_rows(db)
    with db.transaction() as session:
        september = close_period(session, "2026-09", TERMS, now=LATER)
        october = close_period(session, "2026-10", TERMS, now=LATER)
    assert (september.profit_krw, september.total_tokens, september.pool_krw, september.lines) == (
        100,
        0,
        0,
        (),
    )
    assert (october.profit_krw, october.pool_krw) == (-400, 0)
    assert [(line.tokens, line.allocated_krw, line.paid_krw) for line in october.lines] == [(10, 0, 0)]
    assert _ledger_rows(db) == rows


def test_free_usage_in_the_period_is_valued_at_list_price(db: Database) -> None:
    with db.transaction() as session:
        partner = approved_partner(session, "p")
        credit(session, partner, 10, OCT_15)
        free_usage(session, partner, 123_456, 7_890, OCT_15, "r1")
        free_usage(session, partner, 1_000_000, 0, OCT_1, "r2")
        free_usage(session, partner, 5, 5, NOV_10, "r3")
        line = close_period(session, "2026-10", TERMS, now=LATER).lines[0]
    assert (line.free_prompt_tokens, line.free_completion_tokens) == (1_123_456, 7_890)
    assert line.free_usage_krw == 2_310  # 2,246.912 + 63.12 = 2,310.032


def test_periods_do_not_overlap_and_close_in_order_after_they_end(db: Database) -> None:
    with db.transaction() as session:
        open_period(session, "2026-10", OCT_1, datetime(2026, 11, 1, tzinfo=UTC))
        with pytest.raises(InvalidInputError, match="overlap"):
            open_period(session, "mid-oct", *day_bounds(OCT_15.date(), NOV_10.date()))
        with pytest.raises(InvalidInputError, match="reserved"):
            open_period(session, "2026-09", OCT_1, OCT_15)
        with pytest.raises(InvalidInputError, match="name"):
            open_period(session, "a:b", NOV_10, DEC_10)
        with pytest.raises(NotFoundError):
            close_period(session, "no-such-range", TERMS, now=LATER)
        with pytest.raises(StateError, match="2026-10 is still open"):
            close_period(session, "2026-11", TERMS, now=LATER)
        with pytest.raises(StateError, match="cannot close before"):
            close_period(session, "2026-10", TERMS, now=OCT_15)
        close_period(session, "2026-10", TERMS, now=LATER)
        close_period(session, "2026-11", TERMS, now=LATER)
        with pytest.raises(StateError, match="before the end of a closed period"):
            open_period(session, "2026-09", *_month(2026, 9))


def _month(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, (start + timedelta(days=32)).replace(day=1)


def _reset(db: Database) -> None:
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        ensure_system_accounts(session)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.lists(st.integers(1, 50), min_size=2, max_size=6),
    revenue=st.integers(0, 100_000),
    seed=st.integers(0, 2**32),
)
def test_creation_order_of_partners_does_not_change_the_split(
    db: Database, tokens: list[int], revenue: int, seed: int
) -> None:
    names = [f"partner-{i}" for i in range(len(tokens))]
    results = []
    for order in (names, random.Random(seed).sample(names, len(names))):
        _reset(db)
        with db.transaction() as session:
            ids = {name: approved_partner(session, name) for name in order}
            for name, count in zip(names, tokens, strict=True):
                credit(session, ids[name], count, OCT_15)
            if revenue:
                add_record(session, "2026-10", RecordKind.REVENUE, revenue, "r")
            result = close_period(session, "2026-10", replace(TERMS, min_payout_krw=0), now=LATER)
            by_id = {line.partner_id: line.allocated_krw for line in result.lines}
            results.append({name: by_id[ids[name]] for name in names})
            assert sum(by_id.values()) == result.pool_krw == revenue * 3 // 10
            assert audit(session) == []
    assert results[0] == results[1]


def test_a_payout_key_already_in_the_ledger_refuses_the_close_whole(db: Database) -> None:
    ids = october(db)
    with db.transaction() as session:
        customer = customer_of_partner(session, ids["다솜"]).id
        post(
            session,
            payout_key("2026-10", ids["다솜"]),
            PAYOUT_KIND,
            [
                Leg(system_account(PROFIT_SHARE_EXPENSE_KRW), 5),
                Leg(customer_account(customer, PAYABLE_KRW), -5),
            ],
        )
    rows = _ledger_rows(db)
    with pytest.raises(StateError, match="already holds payouts"), db.transaction() as session:
        close_period(session, "2026-10", TERMS, now=LATER)
    assert _ledger_rows(db) == rows
    with db.transaction() as session:
        assert [(p.name, p.closed) for p in list_periods(session)] == [("2026-10", False)]


def test_a_partner_that_withdrew_counts_only_in_periods_ending_before(db: Database) -> None:
    ids = october(db)
    with db.transaction() as session:
        for name, when in (("다솜", OCT_15), ("가람", NOV_10)):  # before / after October's end
            partner = session.get(Partner, ids[name])
            assert partner is not None
            partner.status, partner.withdrawn_at = "withdrawn", when
        october_close = close_period(session, "2026-10", TERMS, now=LATER)
        november = close_period(session, "2026-11", TERMS, now=LATER)
    # October: the pool is the same, shared by 가람 (withdrew later) and 나래: 135,000 / 134,999
    assert (october_close.pool_krw, october_close.total_tokens) == (269_999, 2_000)
    by_partner = {line.partner_id: line.allocated_krw for line in october_close.lines}
    assert by_partner == {ids["가람"]: 135_000, ids["나래"]: 134_999}
    # November: 가람 withdrew within it, so only 나래 counts
    assert november.total_tokens == 1_000
    assert {line.partner_id for line in november.lines} == {ids["나래"]}


def test_a_revenue_basis_pool_ignores_costs_and_is_frozen_with_the_period(db: Database) -> None:
    ids = october(db)
    terms = replace(TERMS, pool_basis=PoolBasis.REVENUE)
    with db.transaction() as session:
        result = close_period(session, "2026-10", terms, now=LATER)
    # 0.3 × 1,000,001 (API 700,000 + recorded 300,001; the 100,003 of costs not deducted).
    assert (result.pool_basis, result.revenue_krw, result.pool_krw) == ("revenue", 1_000_001, 300_000)
    assert result.as_dict()["pool_basis"] == "revenue"
    assert sum(line.allocated_krw for line in result.lines) == 300_000
    with db.transaction() as session:
        again = close_period(session, "2026-10", TERMS, now=LATER)
        statement = build_statement(session, ids["가람"], "2026-10")
    assert (again.pool_basis, again.pool_krw) == ("revenue", 300_000)
    assert statement.as_dict()["pool_basis"] == "revenue"
    assert ("배분 기준 · Pool basis", "매출의 일정 비율 · share of revenue (costs not deducted)") in [
        row for _, rows in sections(statement) for row in rows
    ]


@given(
    revenue=st.integers(0, 10**12), cost=st.integers(0, 10**12), rate=st.fractions(0, 1, max_denominator=1000)
)
def test_the_pool_never_exceeds_the_rate_of_its_basis(revenue: int, cost: int, rate: Fraction) -> None:
    by_profit = pool_krw(revenue, cost, rate, PoolBasis.PROFIT)
    by_revenue = pool_krw(revenue, cost, rate, PoolBasis.REVENUE)
    assert 0 <= by_profit <= max(0, revenue - cost) * rate < by_profit + 1
    assert by_revenue <= revenue * rate < by_revenue + 1
    assert by_profit <= by_revenue
