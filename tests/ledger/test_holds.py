"""Holds as pending transfers, as a state machine on both backends: every hold is resolved at
most once (post ≤ pending, void, or expire once due), balances always equal the sums of their
entries, no guarded account is overdrawn, and no charge exceeds its hold."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from itertools import count

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from tokenclub.accounts.customers import balance_summary, create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.ledger_schema import HoldResolution
from tokenclub.errors import StateError
from tokenclub.ledger import holds
from tokenclub.ledger.chart import CREDIT_LINE_HELD_KRW, FREE_ALLOWANCE_HELD, customer_account
from tokenclub.ledger.holds import HoldExceededError, HoldResolvedError, QuotaExceededError, Usage
from tokenclub.ledger.operations import grant_credit_line, grant_free_tokens
from tokenclub.ledger.posting import audit, balance
from tokenclub.ledger.pricing import PriceList, krw_due, plan_hold, split_usage

PRICES = PriceList(300_000, 900_000)
"""Dear enough that a few tokens cost whole won, so the KRW legs are exercised."""
TTL = timedelta(minutes=15)
EXPIRED = timedelta(seconds=-1)
_names = count()


@dataclass
class ModelHold:
    id: str
    tokens: int
    free: int
    krw: int
    due: bool
    resolved: bool = False


class HoldLifecycle(RuleBasedStateMachine):
    """The ledger against a model of what each account should hold."""

    db: Database
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.allowance = self.allowance_held = self.line = self.line_held = 0
        self.used = self.paid = self.receivable = self.billed = 0
        self.customer = 0
        self.key_id = 0

    @initialize(free=st.integers(0, 400), line=st.integers(0, 300))
    def open_account(self, free: int, line: int) -> None:
        with self.db.transaction() as session:
            self.customer = create_customer(session, f"hold-{next(_names)}").id
            if free:
                grant_free_tokens(session, self.customer, free, f"g-{self.customer}")
            if line:
                grant_credit_line(session, self.customer, line, f"l-{self.customer}")
            self.key_id = create_key(session, self.customer)[1].id
        self.allowance, self.line = free, line

    @rule(target=held, tokens=st.integers(0, 300), due=st.booleans())
    def place(self, tokens: int, due: bool) -> ModelHold | None:
        plan = plan_hold(tokens, self.allowance, PRICES)
        refused = plan.krw > self.line
        try:
            with self.db.transaction() as session:
                hold = holds.place(
                    session, self.customer, self.key_id, tokens, PRICES, EXPIRED if due else TTL
                )
        except QuotaExceededError:
            assert refused
            return None
        assert not refused and (hold.free_tokens, hold.krw, hold.tokens) == (
            plan.free_tokens,
            plan.krw,
            tokens,
        )
        self.allowance -= plan.free_tokens
        self.allowance_held += plan.free_tokens
        self.line -= plan.krw
        self.line_held += plan.krw
        return ModelHold(hold.id, tokens, plan.free_tokens, plan.krw, due)

    def _posted(self, hold: ModelHold, usage: Usage) -> None:
        split = split_usage(usage.prompt_tokens, usage.completion_tokens, hold.free)
        cost = PRICES.cost_micro_krw(split.paid_prompt, split.paid_completion)
        krw = krw_due(self.billed, cost)
        assert krw <= hold.krw  # the invariant the ledger enforces
        self.billed += cost
        self.allowance += hold.free - split.free
        self.allowance_held -= hold.free
        self.used += split.free
        self.paid += split.paid
        self.line_held -= hold.krw
        self.line += hold.krw - krw
        self.receivable += krw
        hold.resolved = True

    def _void(self, hold: ModelHold) -> None:
        self.allowance += hold.free
        self.allowance_held -= hold.free
        self.line += hold.krw
        self.line_held -= hold.krw
        hold.resolved = True

    @rule(hold=held, prompt=st.integers(0, 400), completion=st.integers(0, 400))
    def post(self, hold: ModelHold | None, prompt: int, completion: int) -> None:
        if hold is None:
            return
        usage = Usage(prompt, completion)
        try:
            with self.db.transaction() as session:
                posted = holds.post_pending(session, hold.id, usage, PRICES)
        except HoldResolvedError:
            assert hold.resolved
            return
        except HoldExceededError:
            assert not hold.resolved and usage.total > hold.tokens
            return
        assert not hold.resolved and usage.total <= hold.tokens and posted.usage == usage
        self._posted(hold, usage)

    @rule(hold=held, prompt=st.integers(0, 10**9), completion=st.integers(0, 10**9))
    def charge(self, hold: ModelHold | None, prompt: int, completion: int) -> None:
        """Whatever an upstream reports, the charge is min(reported, hold)."""
        if hold is None:
            return
        reported = Usage(prompt, completion)
        try:
            with self.db.transaction() as session:
                posted = holds.charge(session, hold.id, reported, PRICES)
        except HoldResolvedError:
            assert hold.resolved
            return
        assert not hold.resolved
        assert posted.usage.total == min(reported.total, hold.tokens)
        assert posted.capped == (reported.total > hold.tokens)
        self._posted(hold, posted.usage)

    @rule(hold=held, expire=st.booleans())
    def void(self, hold: ModelHold | None, expire: bool) -> None:
        if hold is None:
            return
        try:
            with self.db.transaction() as session:
                holds.void(session, hold.id, expire=expire)
        except HoldResolvedError:
            assert hold.resolved
            return
        except StateError as exc:
            assert expire and not hold.due and not hold.resolved, exc
            return
        assert not hold.resolved and (hold.due or not expire)
        self._void(hold)

    @invariant()
    def books_agree(self) -> None:
        if not self.customer:
            return
        with self.db.transaction() as session:
            assert audit(session) == []
            assert holds.audit_holds(session) == []
            summary = balance_summary(session, self.customer)
            held_free = balance(session, customer_account(self.customer, FREE_ALLOWANCE_HELD))
            held_krw = balance(session, customer_account(self.customer, CREDIT_LINE_HELD_KRW))
        assert (held_free, held_krw) == (self.allowance_held, self.line_held)
        assert summary["free_tokens_left"] == self.allowance >= 0
        assert summary["spending_left_krw"] == self.line >= 0
        assert (summary["free_tokens_used"], summary["paid_tokens"]) == (self.used, self.paid)
        assert summary["receivable_krw"] == self.receivable
        assert summary["free_tokens_granted"] == self.allowance + self.allowance_held + self.used


def test_the_hold_lifecycle(db: Database) -> None:
    HoldLifecycle.db = db
    run_state_machine_as_test(
        HoldLifecycle,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_a_second_resolution_and_a_post_above_pending_are_refused(db: Database) -> None:
    with db.transaction() as session:
        customer = create_customer(session, "once").id
        grant_free_tokens(session, customer, 100, "g")
        key_id = create_key(session, customer)[1].id
        hold = holds.place(session, customer, key_id, 40, PRICES, TTL)
    with pytest.raises(HoldExceededError, match="41 tokens exceeds its 40"), db.transaction() as session:
        holds.post_pending(session, hold.id, Usage(1, 40), PRICES)
    with pytest.raises(StateError, match="not expired yet"), db.transaction() as session:
        holds.void(session, hold.id, expire=True)
    with db.transaction() as session:
        holds.post_pending(session, hold.id, Usage(10, 30), PRICES)
    for resolve in (
        lambda s: holds.post_pending(s, hold.id, Usage(1, 1), PRICES),
        lambda s: holds.charge(s, hold.id, Usage(1, 1), PRICES),
        lambda s: holds.void(s, hold.id),
    ):
        with pytest.raises(HoldResolvedError, match="already posted"), db.transaction() as session:
            resolve(session)
    with db.transaction() as session:
        (resolution,) = session.scalars(select(HoldResolution)).all()
        summary = balance_summary(session, customer)
    assert (resolution.outcome, resolution.prompt_tokens, resolution.completion_tokens) == ("posted", 10, 30)
    assert (summary["free_tokens_used"], summary["free_tokens_left"]) == (40, 60)


def test_racing_resolutions_of_one_hold_settle_it_exactly_once(pg_db: Database) -> None:
    """The gateway's settle, its void on failure and the sweep's expiry race on PostgreSQL: one wins."""
    with pg_db.transaction() as session:
        customer = create_customer(session, "race").id
        grant_free_tokens(session, customer, 10_000, "g")
        key_id = create_key(session, customer)[1].id
        placed = [holds.place(session, customer, key_id, 100, PRICES, EXPIRED).id for _ in range(15)]
    resolvers = (
        lambda s, h: holds.charge(s, h, Usage(30, 10**9), PRICES),
        lambda s, h: holds.void(s, h),
        lambda s, h: holds.void(s, h, expire=True),
    )
    barrier = threading.Barrier(len(placed) * len(resolvers))
    wins: list[str] = []
    unexpected: list[BaseException] = []

    def resolve(hold_id: str, index: int) -> None:
        barrier.wait()
        try:
            with pg_db.transaction() as session:
                resolvers[index](session, hold_id)
            wins.append(hold_id)
        except HoldResolvedError:
            pass
        except BaseException as exc:
            unexpected.append(exc)

    threads = [
        threading.Thread(target=resolve, args=(hold_id, i))
        for hold_id in placed
        for i in range(len(resolvers))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert unexpected == []
    assert sorted(wins) == sorted(placed)
    with pg_db.transaction() as session:
        assert audit(session) == [] and holds.audit_holds(session) == []
        outcomes = list(session.scalars(select(HoldResolution.outcome)))
        summary = balance_summary(session, customer)
    posted = outcomes.count("posted")
    assert len(outcomes) == 15
    assert summary["free_tokens_used"] == 100 * posted
    assert summary["free_tokens_left"] == 10_000 - 100 * posted
