"""Hypothesis: any sequence of postings keeps the ledger balanced and replays change nothing."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tokenclub.accounts.customers import balance_summary, create_customer
from tokenclub.db.engine import Database
from tokenclub.db.schema import Base, LedgerEntry, LedgerTransaction
from tokenclub.errors import InsufficientBalanceError
from tokenclub.ledger.operations import grant_free_tokens, spend_free_tokens
from tokenclub.ledger.posting import audit, ensure_system_accounts


@dataclass(frozen=True)
class Op:
    kind: str
    customer: int
    amount: int
    key: int


ops = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(["grant", "spend"]),
        customer=st.integers(0, 2),
        amount=st.integers(1, 1_000),
        key=st.integers(0, 25),
    ),
    max_size=30,
)


def _reset(db: Database) -> list[int]:
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        ensure_system_accounts(session)
        return [create_customer(session, f"c{i}").id for i in range(3)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
def test_any_sequence_keeps_balances_equal_to_a_model(db: Database, sequence: list[Op]) -> None:
    customers = _reset(db)
    granted = [0, 0, 0]
    used = [0, 0, 0]
    first_use: dict[str, Op] = {}
    for op in sequence:
        key = f"{op.kind}-{op.customer}-{op.amount}-{op.key}"
        if key in first_use:
            # An exact replay: nothing may change.
            with db.transaction() as session:
                fn = grant_free_tokens if op.kind == "grant" else spend_free_tokens
                assert not fn(session, customers[op.customer], op.amount, key).created
            continue
        cid = customers[op.customer]
        try:
            with db.transaction() as session:
                if op.kind == "grant":
                    grant_free_tokens(session, cid, op.amount, key)
                else:
                    spend_free_tokens(session, cid, op.amount, key)
        except InsufficientBalanceError:
            assert op.kind == "spend" and granted[op.customer] - used[op.customer] < op.amount
            continue
        first_use[key] = op
        if op.kind == "grant":
            granted[op.customer] += op.amount
        else:
            used[op.customer] += op.amount
    with db.transaction() as session:
        assert audit(session) == []
        for i, cid in enumerate(customers):
            summary = balance_summary(session, cid)
            assert summary["free_tokens_granted"] == granted[i]
            assert summary["free_tokens_used"] == used[i]
            assert summary["free_tokens_left"] == granted[i] - used[i] >= 0
        tx_count = session.scalar(select(func.count()).select_from(LedgerTransaction))
        entry_sum = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)))
    assert tx_count == len(first_use)
    assert entry_sum == 0
