"""A PostgreSQL batch's one-statement postings sent together (`db/speculation.py`): one round
trip for the batch, the server seeing every statement in the units' order, and any guess that
does not hold undoing the batch, which then answers exactly as one unit at a time would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.gateway.conftest import PRICES, Customer, add_customer, config
from tokenclub.accounts.customers import balance_summary
from tokenclub.accounts.keys import revoke_key
from tokenclub.db import speculation
from tokenclub.db.engine import Database
from tokenclub.db.prebuilt import driver_row
from tokenclub.db.schema import CreditHold, RateCounter
from tokenclub.gateway.dbwork import DatabaseWork
from tokenclub.gateway.errors import ApiError
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits
from tokenclub.gateway.service import Admitted, Gateway
from tokenclub.ledger import holds
from tokenclub.ledger.posting import audit

pytestmark = pytest.mark.postgres
TTL = timedelta(minutes=15)


@pytest.fixture
def customer(pg_db: Database) -> Customer:
    return add_customer(pg_db, "c", 10_000, 0)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many statements each round trip of queued ones carried."""
    carried: list[int] = []
    send = speculation.Speculation.send

    def counted(self: speculation.Speculation) -> None:
        if self.queue:  # an empty queue sends nothing
            carried.append(len(self.queue))
        send(self)

    monkeypatch.setattr(speculation.Speculation, "send", counted)
    yield carried


def _batch(work: DatabaseWork, units: list[Callable[[Session], Any]]) -> list[Any]:
    async def run() -> list[Any]:
        return await asyncio.gather(*(work.run(unit) for unit in units), return_exceptions=True)

    return asyncio.run(run())


def _hold(customer: Customer, tokens: int = 100) -> Callable[[Session], holds.Hold]:
    def place(session: Session) -> holds.Hold:
        return holds.place(session, customer.id, customer.key_id, tokens, PRICES, TTL)

    return place


def _holds(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CreditHold)) or 0


def _books(db: Database, customer: Customer) -> tuple[int, int, list[str]]:
    with db.transaction() as session:
        left = balance_summary(session, customer.id)["free_tokens_left"]
        return left, _holds(session), audit(session) + holds.audit_holds(session)


def test_a_batchs_postings_reach_the_server_in_one_round_trip(
    pg_db: Database, customer: Customer, sends: list[int]
) -> None:
    work = DatabaseWork(pg_db)
    placed = _batch(work, [_hold(customer, 100 + i) for i in range(8)])
    assert [hold.tokens for hold in placed] == [100 + i for i in range(8)]
    # the first hold locks the customer's accounts (nothing is queued yet); all eight postings
    # then go in one round trip
    assert sends == [8]
    assert work.mispredicted == 0
    assert _books(pg_db, customer) == (10_000 - sum(100 + i for i in range(8)), 8, [])


def test_a_statement_run_while_postings_are_queued_sees_them_written(
    pg_db: Database, customer: Customer, sends: list[int]
) -> None:
    work = DatabaseWork(pg_db)
    answers = _batch(work, [_hold(customer), _hold(customer), _holds, _hold(customer), _holds])
    assert answers[2] == 2 and answers[4] == 3  # as one unit at a time: the holds before it
    assert sends == [2, 1]
    assert work.mispredicted == 0


def test_a_charge_of_a_hold_an_earlier_unit_voided_is_refused_as_one_unit_at_a_time_would(
    pg_db: Database, customer: Customer
) -> None:
    """The void moved the kept balances before its posting was sent, so the charge is not even
    queued: it takes the usual path, whose read sends the void first and finds it resolved."""
    work = DatabaseWork(pg_db)
    (hold,) = _batch(work, [_hold(customer, 300)])

    def void(session: Session) -> str:
        holds.void(session, hold.id)
        return "voided"

    def charge(session: Session) -> int:
        return holds.charge(session, hold.id, holds.Usage(100, 50), PRICES, placed=hold).usage.total

    answers = _batch(work, [void, charge, _hold(customer, 200)])
    assert answers[0] == "voided"
    assert isinstance(answers[1], holds.HoldResolvedError)
    assert isinstance(answers[2], holds.Hold) and answers[2].tokens == 200
    assert work.mispredicted == 0
    assert _books(pg_db, customer) == (10_000 - 200, 2, [])


def test_a_queued_admission_whose_key_an_earlier_unit_revoked_undoes_the_batch(
    pg_db: Database, customer: Customer
) -> None:
    """The remembered key's checks are the gate of its hold's statement, which finds the key
    revoked once sent: nothing of the batch is kept, and one unit at a time the first request
    is admitted, the key revoked and the later requests refused (401) with nothing written."""
    gateway = Gateway(
        replace(config(pg_db, "http://127.0.0.1:9", DatabaseRateLimiter(Limits(10, 10**9))), routes={})
    )
    assert asyncio.run(gateway.lane_of(customer.key)) == customer.id

    def admit(session: Session) -> Admitted:
        return gateway.admit(session, customer.key, 100)

    def revoke(session: Session) -> None:
        revoke_key(session, customer.key_id)

    async def batch() -> list[Any]:
        units = (admit, revoke, admit, admit)
        return await asyncio.gather(
            *(gateway.work.run(u, lane=customer.id) for u in units), return_exceptions=True
        )

    answers = asyncio.run(batch())
    assert isinstance(answers[0], Admitted) and answers[1] is None
    assert [a.status for a in answers[2:] if isinstance(a, ApiError)] == [401, 401]
    assert gateway.work.mispredicted == 1
    assert _books(pg_db, customer) == (10_000 - 100, 1, [])
    with pg_db.transaction() as session:
        assert session.scalar(select(RateCounter.requests).where(RateCounter.key_id == customer.key_id)) == 1


def test_a_statement_after_a_unit_resumed_undoes_the_batch_even_if_the_unit_catches_it(
    pg_db: Database, customer: Customer
) -> None:
    """Its statement would reach the server after later units' postings; the batch runs again
    one unit at a time, and the unit's answer is that run's."""
    work = DatabaseWork(pg_db)

    def place_then_count(session: Session) -> int | str:
        _hold(customer)(session)
        try:
            return _holds(session)
        except speculation.Mispredicted:
            return "caught"

    answers = _batch(work, [_hold(customer), place_then_count, _hold(customer)])
    assert answers[1] == 2
    assert work.mispredicted == 1
    assert _books(pg_db, customer) == (10_000 - 300, 3, [])


def test_a_queued_statement_that_fails_on_the_server_is_answered_as_one_unit_at_a_time_would(
    pg_db: Database, customer: Customer, sends: list[int]
) -> None:
    """The error comes back for the whole round trip; the units parked beside it are abandoned
    and the batch runs again with a savepoint per unit, so only the failing unit fails."""
    work = DatabaseWork(pg_db)

    def divide(session: Session) -> Any:
        conn = session.connection()
        speculating = speculation.speculation_of(conn)
        if speculating is not None:
            return speculating.row("SELECT 1 / 0", {})
        return driver_row(conn, "SELECT 1 / 0", {})

    answers = _batch(work, [_hold(customer), _hold(customer), divide, _hold(customer)])
    assert [type(answer).__name__ for answer in answers] == ["Hold", "Hold", "DataError", "Hold"]
    assert sends == [4]  # the one round trip that failed; the rerun sends nothing ahead
    assert work.mispredicted == 0
    assert _books(pg_db, customer) == (10_000 - 300, 3, [])
