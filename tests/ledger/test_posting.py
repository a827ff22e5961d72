"""Postings balance, replay idempotently, and refuse overdrafts without writing anything."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from tokenclub.accounts.customers import balance_summary, create_customer
from tokenclub.db.engine import Database
from tokenclub.db.schema import LedgerEntry, LedgerTransaction
from tokenclub.errors import (
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidInputError,
    NotFoundError,
)
from tokenclub.ledger.chart import (
    API_REVENUE_KRW,
    FREE_ALLOWANCE,
    FREE_TOKENS_GRANTED,
    FREE_TOKENS_USED,
    RECEIVABLE_KRW,
    customer_account,
    system_account,
)
from tokenclub.ledger.operations import grant_free_tokens, spend_free_tokens
from tokenclub.ledger.posting import Leg, Transfer, audit, balance, post, post_many


def _customer(db: Database, name: str = "고객") -> int:
    with db.transaction() as session:
        return create_customer(session, name).id


def _counts(db: Database) -> tuple[int, int]:
    with db.transaction() as session:
        txs = session.scalar(select(func.count()).select_from(LedgerTransaction))
        entries = session.scalar(select(func.count()).select_from(LedgerEntry))
    assert txs is not None and entries is not None
    return txs, entries


def test_grant_then_spend_moves_exact_balances(db: Database) -> None:
    cid = _customer(db)
    with db.transaction() as session:
        grant_free_tokens(session, cid, 1_000, "grant-1")
        spend_free_tokens(session, cid, 300, "spend-1")
    with db.transaction() as session:
        summary = balance_summary(session, cid)
        assert audit(session) == []
    assert summary == {
        "free_tokens_granted": 1_000,
        "free_tokens_used": 300,
        "free_tokens_left": 700,
        "paid_tokens": 0,
        "receivable_krw": 0,
        "payable_krw": 0,
        "spending_left_krw": 0,
    }


def test_replay_with_same_key_is_a_noop_returning_the_first_posting(db: Database) -> None:
    cid = _customer(db)
    with db.transaction() as session:
        first = grant_free_tokens(session, cid, 500, "upload-7")
    with db.transaction() as session:
        again = grant_free_tokens(session, cid, 500, "upload-7")
        assert balance(session, customer_account(cid, FREE_ALLOWANCE)) == 500
    assert first.created and not again.created
    assert again.transaction_id == first.transaction_id
    assert sorted(again.legs, key=lambda leg: leg.account) == sorted(first.legs, key=lambda leg: leg.account)
    assert _counts(db) == (1, 2)


def test_reusing_a_key_for_a_different_posting_is_refused(db: Database) -> None:
    cid = _customer(db)
    with db.transaction() as session:
        grant_free_tokens(session, cid, 500, "k")
    with pytest.raises(IdempotencyConflictError, match="'k'"), db.transaction() as session:
        grant_free_tokens(session, cid, 501, "k")
    assert _counts(db) == (1, 2)


def test_overdraft_is_refused_and_writes_nothing(db: Database) -> None:
    cid = _customer(db)
    with db.transaction() as session:
        grant_free_tokens(session, cid, 100, "g")
    with pytest.raises(InsufficientBalanceError, match="free_allowance"), db.transaction() as session:
        spend_free_tokens(session, cid, 101, "s")
    with db.transaction() as session:
        assert balance(session, customer_account(cid, FREE_ALLOWANCE)) == 100
        assert audit(session) == []
    assert _counts(db) == (1, 2)


def test_refused_posting_leaves_the_callers_other_writes_alone(db: Database) -> None:
    cid = _customer(db)
    with db.transaction() as session:
        grant_free_tokens(session, cid, 10, "a")
        with pytest.raises(InsufficientBalanceError):
            spend_free_tokens(session, cid, 11, "b")
        spend_free_tokens(session, cid, 10, "c")
    with db.transaction() as session:
        assert balance_summary(session, cid)["free_tokens_left"] == 0
    assert _counts(db) == (2, 4)


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([Leg("x", 1)], "at least two legs"),
        ([Leg("a", 0), Leg("b", 0)], "non-zero integer"),
        ([Leg("a", 5), Leg("a", -5)], "appears twice"),
    ],
)
def test_malformed_transactions_are_refused(db: Database, legs: list[Leg], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message), db.transaction() as session:
        post(session, "bad", "test", legs)


def test_unbalanced_and_unknown_accounts_are_refused(db: Database) -> None:
    cid = _customer(db)
    receivable = customer_account(cid, RECEIVABLE_KRW)
    revenue = system_account(API_REVENUE_KRW)
    with pytest.raises(InvalidInputError, match="does not balance"), db.transaction() as session:
        post(session, "u", "sale", [Leg(receivable, 100), Leg(revenue, -99)])
    with pytest.raises(NotFoundError, match="customer:999:receivable_krw"), db.transaction() as session:
        post(session, "u", "sale", [Leg("customer:999:receivable_krw", 1), Leg(revenue, -1)])
    with pytest.raises(InvalidInputError, match="does not balance"), db.transaction() as session:
        post(session, "mixed", "x", [Leg(receivable, 5), Leg(customer_account(cid, FREE_ALLOWANCE), -5)])
    assert _counts(db) == (0, 0)


def test_krw_sale_is_receivable_against_revenue(db: Database) -> None:
    cid = _customer(db)
    with db.transaction() as session:
        post(
            session,
            "sale-1",
            "sale",
            [Leg(customer_account(cid, RECEIVABLE_KRW), 1_234), Leg(system_account(API_REVENUE_KRW), -1_234)],
        )
        assert balance_summary(session, cid)["receivable_krw"] == 1_234
        assert balance(session, system_account(API_REVENUE_KRW)) == 1_234
        assert audit(session) == []


def test_a_bulk_posting_is_guarded_like_single_postings_and_refused_whole(db: Database) -> None:
    cid = _customer(db)
    allowance, used = customer_account(cid, FREE_ALLOWANCE), customer_account(cid, FREE_TOKENS_USED)
    with db.transaction() as session:
        grant_free_tokens(session, cid, 100, "g")
    spends = [Transfer(f"s{i}", "spend", (Leg(allowance, 40), Leg(used, -40))) for i in range(3)]
    # Each spend alone fits; the third one of the batch would overdraw what the first two left.
    with pytest.raises(InsufficientBalanceError, match="free_allowance"), db.transaction() as session:
        post_many(session, spends)
    assert _counts(db) == (1, 2)
    with db.transaction() as session:
        ids = post_many(session, spends[:2])
        assert balance(session, allowance) == 20 and audit(session) == []
    assert len(set(ids)) == 2 and _counts(db) == (3, 6)
    with db.transaction() as session:
        with pytest.raises(IdempotencyConflictError, match="already used"):
            post_many(
                session, [Transfer(key, "spend", (Leg(allowance, 1), Leg(used, -1))) for key in ("new", "s0")]
            )
        # The refusal left the caller's transaction usable and wrote nothing.
        assert balance(session, allowance) == 20
    with pytest.raises(InvalidInputError, match="repeats"), db.transaction() as session:
        post_many(session, [spends[2], spends[2]])
    assert _counts(db) == (3, 6)
    with db.transaction() as session:
        replay = post(session, "s0", "spend", [Leg(allowance, 40), Leg(used, -40)])
    assert (replay.created, replay.transaction_id) == (False, ids[0])


def test_the_database_refuses_to_overdraw_a_guarded_account_whatever_writes_it(db: Database) -> None:
    """The net under the ledger's own checks (migration 0021): a write that bypasses them and
    would take a guarded account past zero fails, and the account keeps its balance; an
    unguarded account may go either way."""
    customer = _customer(db)
    allowance = customer_account(customer, FREE_ALLOWANCE)
    with db.transaction() as session:
        grant_free_tokens(session, customer, 100, "grant-100")
    overdraw = text("UPDATE ledger_accounts SET balance = balance + 101 WHERE code = :code")
    with pytest.raises(IntegrityError, match=r"overdrawn|guarded_balance"), db.transaction() as session:
        session.execute(overdraw, {"code": allowance})
    with db.transaction() as session:
        assert balance_summary(session, customer)["free_tokens_left"] == 100
        to_zero = text("UPDATE ledger_accounts SET balance = balance + 100 WHERE code = :code")
        session.execute(to_zero, {"code": allowance})  # down to zero is allowed
        unguarded = text("UPDATE ledger_accounts SET balance = balance - 500 WHERE code = :code")
        session.execute(unguarded, {"code": customer_account(customer, FREE_TOKENS_GRANTED)})
    with db.transaction() as session:
        assert balance(session, allowance) == 0
        assert balance(session, customer_account(customer, FREE_TOKENS_GRANTED)) == -400
