"""The hot path's ledger writes: postings on locked balances, in one statement on PostgreSQL,
group commit of queued units, and the key owners the gateway remembers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import openai
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from tests.gateway.conftest import MODEL, PRICES, Customer, config
from tokenclub.accounts.customers import balance_summary
from tokenclub.accounts.keys import revoke_key
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import GuardEvent
from tokenclub.db.ledger_schema import HoldResolution
from tokenclub.db.schema import CreditHold, LedgerAccount, LedgerEntry, LedgerTransaction, RateCounter
from tokenclub.errors import InsufficientBalanceError, InvalidInputError, NotFoundError
from tokenclub.gateway import ratelimit, service
from tokenclub.gateway.billing import Hold, QuotaExceededError, Usage, place_hold
from tokenclub.gateway.dbwork import DatabaseWork
from tokenclub.gateway.errors import ApiError
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits
from tokenclub.gateway.service import Admitted, Gateway
from tokenclub.guard.state.events import record_event
from tokenclub.ledger import holds, posting
from tokenclub.ledger.chart import FREE_ALLOWANCE, FREE_TOKENS_USED, customer_account
from tokenclub.ledger.posting import Leg, audit, lock_accounts, post
from tokenclub.ledger.pricing import PriceList

TTL = timedelta(minutes=15)


def _counts(session: Session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0,
        session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
        session.scalar(select(func.count()).select_from(CreditHold)) or 0,
    )


def test_post_on_locked_accounts_refuses_an_overdraft_before_writing_anything(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=100)
    allowance, used = customer_account(c.id, FREE_ALLOWANCE), customer_account(c.id, FREE_TOKENS_USED)
    with db.transaction() as session:
        before = _counts(session)
        conn = session.connection()
        accounts = lock_accounts(conn, [allowance, used])
        with pytest.raises(InsufficientBalanceError, match=f"{allowance}: balance too low for 101 token"):
            post(conn, "spend-101", "spend", [Leg(allowance, 101), Leg(used, -101)], locked=accounts)
        with pytest.raises(InvalidInputError, match="does not balance"):
            post(conn, "unbalanced", "spend", [Leg(allowance, 10), Leg(used, -9)], locked=accounts)
        assert _counts(session) == before
        assert balance_summary(session, c.id)["free_tokens_left"] == 100
        posting = post(conn, "spend-100", "spend", [Leg(allowance, 100), Leg(used, -100)], locked=accounts)
        assert posting.created and posting.transaction_id > 0
        assert balance_summary(session, c.id)["free_tokens_left"] == 0
        assert _counts(session) == (before[0] + 1, before[1] + 2, before[2])
        assert audit(session) == []


def test_post_on_locked_accounts_needs_every_account_locked_and_replays_a_used_key(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=100)
    allowance, used = customer_account(c.id, FREE_ALLOWANCE), customer_account(c.id, FREE_TOKENS_USED)
    missing = "customer:999999:free_allowance does not exist"
    with pytest.raises(NotFoundError, match=missing), db.transaction() as session:
        lock_accounts(session.connection(), [customer_account(999_999, FREE_ALLOWANCE)])
    with db.transaction() as session:
        conn = session.connection()
        accounts = lock_accounts(conn, [allowance])
        with pytest.raises(NotFoundError, match=f"{used} is not locked"):
            post(conn, "k", "spend", [Leg(allowance, 1), Leg(used, -1)], locked=accounts)
    with db.transaction() as session:
        conn = session.connection()
        accounts = lock_accounts(conn, [allowance, used])
        first = post(conn, "once", "spend", [Leg(allowance, 1), Leg(used, -1)], locked=accounts)
    # A second posting under a used key writes nothing and returns the first.
    with db.transaction() as session:
        conn = session.connection()
        accounts = lock_accounts(conn, [allowance, used])
        again = post(conn, "once", "spend", [Leg(allowance, 1), Leg(used, -1)], locked=accounts)
    assert (again.created, again.transaction_id) == (False, first.transaction_id)
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 99
        assert audit(session) == []


def test_a_hold_beyond_allowance_and_credit_line_is_refused_on_the_locked_balances(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=100, credit_krw=2)
    # 150 tokens: 100 free, 50 paid at 8,000 KRW per million → 1 won, plus 1 won of carry.
    with pytest.raises(QuotaExceededError), db.transaction() as session:
        place_hold(session, c.id, c.key_id, 1_000, PRICES, TTL)  # 900 paid: 8 won + 1 > 2
    with db.transaction() as session:
        assert _counts(session)[2] == 0
        hold = place_hold(session, c.id, c.key_id, 150, PRICES, TTL)
        assert (hold.free_tokens, hold.krw) == (100, 2)
        summary = balance_summary(session, c.id)
        assert (summary["free_tokens_left"], summary["spending_left_krw"]) == (0, 0)
        assert _counts(session)[2] == 1


def test_queued_holds_never_overdraw_and_group_commit_batches_them(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    """The queue is drained in batches on both databases, a refusal undoing only its own savepoint."""
    c = make_customer(free=1_000)
    commits = 0

    def count(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine, "commit", count)
    work = DatabaseWork(db)

    def hold(tokens: int) -> Callable[[Session], Hold]:
        return lambda session: place_hold(session, c.id, c.key_id, tokens, PRICES, TTL)

    async def race() -> list[Hold | BaseException]:
        # 12 holds of 100 tokens against 1,000: ten fit, two are refused.
        units = [work.run(hold(100)) for _ in range(12)]
        return await asyncio.gather(*units, return_exceptions=True)

    try:
        results = asyncio.run(race())
    finally:
        event.remove(db.engine, "commit", count)
    held = [r for r in results if isinstance(r, Hold)]
    refused = [r for r in results if isinstance(r, QuotaExceededError)]
    assert (len(held), len(refused)) == (10, 2)
    assert commits == 1  # all twelve were queued before the writer ran: one batch
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 0
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 10
        assert audit(session) == []


def test_a_failed_unit_undoes_its_own_core_and_orm_writes_only(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    """A unit that wrote a hold (Core) and guard events (ORM, one flushed, one still pending)
    and then failed leaves none of them behind, while the units around it in the same batch commit theirs."""
    c = make_customer(free=1_000)
    work = DatabaseWork(db)

    def unit(name: str, fail: bool) -> Callable[[Session], str]:
        def run(session: Session) -> str:
            place_hold(session, c.id, c.key_id, 100, PRICES, TTL)
            record_event(session, request_id=name, stage="prompt", verdict="leak", action="logged")
            session.add(
                GuardEvent(request_id=f"{name}-pending", stage="output", verdict="leak", action="logged")
            )
            if fail:
                raise ValueError(name)
            return name

        return run

    async def batch() -> list[str | BaseException]:
        units = [work.run(unit(f"r{i}", fail=i == 1)) for i in range(3)]
        return await asyncio.gather(*units, return_exceptions=True)

    results = asyncio.run(batch())
    assert results[0] == "r0" and results[2] == "r2"
    assert isinstance(results[1], ValueError)
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 800
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 2
        assert sorted(session.scalars(select(GuardEvent.request_id))) == [
            "r0",
            "r0-pending",
            "r2",
            "r2-pending",
        ]
        assert audit(session) == []


def test_a_batch_runs_each_unit_once_and_again_with_savepoints_only_when_one_fails(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    """Units are seldom refused, so a batch first runs without a savepoint per unit; a failure
    rolls it back and the batch runs again with them, each unit answered from that run."""
    c = make_customer(free=1_000)
    work = DatabaseWork(db)
    runs: list[str] = []

    def unit(name: str, fail: bool = False) -> Callable[[Session], str]:
        def run(session: Session) -> str:
            runs.append(name)
            place_hold(session, c.id, c.key_id, 100, PRICES, TTL)
            if fail:
                raise ValueError(name)
            return name

        return run

    async def batch(units: list[Callable[[Session], str]]) -> list[str | BaseException]:
        return await asyncio.gather(*(work.run(u) for u in units), return_exceptions=True)

    assert asyncio.run(batch([unit("a"), unit("b")])) == ["a", "b"]
    assert runs == ["a", "b"]
    runs.clear()
    results = asyncio.run(batch([unit("c"), unit("d", fail=True), unit("e")]))
    assert results[0::2] == ["c", "e"] and isinstance(results[1], ValueError)
    if db.engine.dialect.name == "postgresql":  # every unit had sent its hold before d failed
        assert runs == ["c", "d", "e", "c", "d", "e"]
    else:
        assert runs == ["c", "d", "c", "d", "e"]  # rolled back at d, then every unit in its savepoint
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 600  # a, b, c, e
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 4
        assert audit(session) == []


def test_a_batch_locks_its_customers_accounts_once(
    db: Database, make_customer: Callable[..., Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = make_customer(free=1_000)
    work = DatabaseWork(db)
    locks: list[int] = []
    statement = posting._lock_statement

    def counted(count: int) -> Any:
        locks.append(count)
        return statement(count)

    monkeypatch.setattr(posting, "_lock_statement", counted)

    def hold(session: Session) -> Hold:
        return place_hold(session, c.id, c.key_id, 10, PRICES, TTL)

    async def batch() -> list[Hold]:
        return await asyncio.gather(*(work.run(hold) for _ in range(5)))

    assert len(asyncio.run(batch())) == 5
    assert locks == [4]  # the first hold locks the customer's four accounts; the others keep them
    locks.clear()
    with db.transaction() as session:
        place_hold(session, c.id, c.key_id, 10, PRICES, TTL)
        place_hold(session, c.id, c.key_id, 10, PRICES, TTL)
    assert locks == [4, 4]  # outside a batch every posting locks its accounts
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 930
        assert audit(session) == []


DEAR = PriceList(300_000, 900_000)
"""Dear enough that a few tokens cost whole won, so the credit line's legs move too."""
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("place"), st.integers(0, 300)),
        st.tuples(st.just("charge"), st.integers(0, 9), st.integers(0, 300), st.integers(0, 300)),
        st.tuples(st.just("void"), st.integers(0, 9)),
        st.tuples(st.just("place, then fail"), st.integers(0, 300)),
    ),
    min_size=1,
    max_size=10,
)


def _op(
    ops: list[tuple[Any, ...]], at: int, customer: Customer, placed: dict[int, Hold], known: bool = False
) -> Callable[[Session], str]:
    """Operation `at` as a unit of work. A charge or void names the n-th place of `ops`;
    `placed` maps a place's position to its hold (a batch that runs again writes it again).
    `known`: a charge is given the hold as placed (not read first on PostgreSQL)."""
    op = ops[at]
    places = [i for i, other in enumerate(ops) if other[0] == "place"]

    def run(session: Session) -> str:
        if op[0] == "place":
            hold = holds.place(session, customer.id, customer.key_id, op[1], DEAR, TTL)
            placed[at] = hold
            return f"placed {hold.free_tokens} {hold.krw}"
        if op[0] == "place, then fail":  # its posting is undone: so must its accounts' balances be
            holds.place(session, customer.id, customer.key_id, op[1], DEAR, TTL)
            raise ValueError("after the posting")
        if op[1] >= len(places) or places[op[1]] not in placed or places[op[1]] > at:
            return "no such hold"
        hold = placed[places[op[1]]]
        if op[0] == "charge":
            usage = holds.Usage(op[2], op[3])
            posted = holds.charge(session, hold.id, usage, DEAR, placed=hold if known else None)
            return f"charged {posted.usage.total} {posted.krw}"
        holds.void(session, hold.id)
        return "voided"

    return run


def _waves(ops: list[tuple[Any, ...]]) -> list[list[int]]:
    """The operations' positions in batches, as a gateway queues them: a charge or void is
    queued only once the place it names has answered, so it starts a batch after that place's."""
    places = [i for i, op in enumerate(ops) if op[0] == "place"]
    waves: list[list[int]] = [[]]
    for at, op in enumerate(ops):
        named = places[op[1]] if op[0] in ("charge", "void") and op[1] < len(places) else None
        if named is not None and named in waves[-1]:
            waves.append([])
        waves[-1].append(at)
    return waves


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, free=st.integers(0, 500), line=st.integers(0, 40))
def test_a_batch_locks_a_customers_accounts_once_and_answers_as_one_transaction_each_would(
    db: Database, make_customer: Callable[..., Customer], ops: list[tuple[Any, ...]], free: int, line: int
) -> None:
    """The units of a batch keep the accounts they locked (`kept_locks`): each unit sees the
    balances the batch's earlier postings left, refuses and charges exactly as it would in a
    transaction of its own, and the books balance. The batch's charges are given their holds as
    placed (charged without reading them first on PostgreSQL), the transactions' are not: a
    charge after a void, or twice, is refused the same either way."""
    alone, batched = make_customer(free=free, credit_krw=line), make_customer(free=free, credit_krw=line)
    expected: list[str] = []
    placed: dict[int, Hold] = {}
    for at in range(len(ops)):
        try:
            with db.transaction() as session:
                expected.append(_op(ops, at, alone, placed)(session))
        except Exception as exc:
            expected.append(type(exc).__name__)
    work = DatabaseWork(db)
    placed = {}

    async def batches() -> list[str | BaseException]:
        answers: list[str | BaseException] = []
        for wave in _waves(ops):
            units = [_op(ops, at, batched, placed, known=True) for at in wave]
            answers += await asyncio.gather(*(work.run(unit) for unit in units), return_exceptions=True)
        return answers

    got = [r if isinstance(r, str) else type(r).__name__ for r in asyncio.run(batches())]
    assert got == expected
    with db.transaction() as session:
        summaries = [balance_summary(session, c.id) for c in (alone, batched)]
        assert audit(session) == [] and holds.audit_holds(session) == []
    assert {k: v for k, v in summaries[0].items() if k != "customer_id"} == {
        k: v for k, v in summaries[1].items() if k != "customer_id"
    }


def test_no_unit_is_answered_when_its_commit_fails(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=1_000)
    work = DatabaseWork(db)

    def fail(_conn: Any) -> None:
        raise RuntimeError("disk full")

    async def attempt() -> list[Hold | BaseException]:
        units = [
            work.run(lambda session: place_hold(session, c.id, c.key_id, 10, PRICES, TTL)) for _ in range(5)
        ]
        return await asyncio.gather(*units, return_exceptions=True)

    event.listen(db.engine, "commit", fail)
    try:
        results = asyncio.run(attempt())
    finally:
        event.remove(db.engine, "commit", fail)
    assert [type(r) for r in results] == [RuntimeError] * 5
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 1_000
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 0
        assert audit(session) == []


def _ledger_of(session: Session, customer_id: int) -> tuple[object, ...]:
    """What a customer's requests left in the ledger: balances, entries by account kind, holds
    and their resolutions (ids and times aside)."""
    entries = session.execute(
        select(LedgerAccount.kind, LedgerEntry.amount, LedgerTransaction.kind)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerAccount.customer_id == customer_id)
        .order_by(LedgerTransaction.id, LedgerAccount.kind)
    ).all()
    resolutions = session.execute(
        select(
            CreditHold.tokens,
            CreditHold.free_tokens,
            CreditHold.krw,
            CreditHold.status,
            HoldResolution.outcome,
            HoldResolution.prompt_tokens,
            HoldResolution.completion_tokens,
            HoldResolution.krw,
            HoldResolution.capped,
            HoldResolution.transaction_id.is_(None),
        )
        .join(HoldResolution, HoldResolution.hold_id == CreditHold.id, isouter=True)
        .where(CreditHold.customer_id == customer_id)
        .order_by(CreditHold.created_at)
    ).all()
    return (
        balance_summary(session, customer_id),
        [tuple(e) for e in entries],
        [tuple(r) for r in resolutions],
    )


def test_one_statement_holds_and_resolutions_write_what_the_statement_by_statement_path_writes(
    db: Database, make_customer: Callable[..., Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a hold's posting and row, and a resolution's posting, closing and record,
    go in one statement each; the rows are exactly those of the path SQLite takes (on SQLite
    both customers take that path)."""

    def requests(c: Customer) -> None:
        with db.transaction() as session:
            charged = place_hold(session, c.id, c.key_id, 150, PRICES, TTL)  # 100 free, 50 on credit
            voided = place_hold(session, c.id, c.key_id, 20, PRICES, TTL)  # on credit only
            capped = place_hold(session, c.id, c.key_id, 10, PRICES, TTL)
            free_only = place_hold(session, c.id, c.key_id, 0, PRICES, TTL)  # no posting at all
        with db.transaction() as session:
            holds.charge(session, charged.id, Usage(90, 40), PRICES, memo="r1", placed=charged)
            holds.void(session, voided.id)
            holds.charge(
                session, capped.id, Usage(8, 50), PRICES, placed=capped
            )  # above the hold: capped at 10
            holds.charge(session, free_only.id, Usage(0, 0), PRICES, placed=free_only)

    one, apart = make_customer(free=100, credit_krw=50), make_customer(free=100, credit_krw=50)
    requests(one)
    monkeypatch.setattr(holds, "_one_statement", lambda conn: False)
    requests(apart)
    with db.transaction() as session:
        assert _ledger_of(session, one.id) == _ledger_of(session, apart.id)
        assert audit(session) == [] and holds.audit_holds(session) == []


def test_a_charge_of_a_hold_as_placed_reads_nothing_first_and_answers_as_the_usual_path(
    db: Database, make_customer: Callable[..., Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the hold as placed, a PostgreSQL charge does not read the hold first: its one
    statement checks that the hold is still pending as placed. A hold that is not (voided, or
    other than the caller says) is answered by the usual path, which reads it."""
    c = make_customer(free=1_000)
    with db.transaction() as session:
        kept, voided, other = (place_hold(session, c.id, c.key_id, n, PRICES, TTL) for n in (100, 50, 80))
        holds.void(session, voided.id)
    reads: list[str] = []
    lock_pending = holds._lock_pending

    def reading(conn: Any, hold_id: str) -> Any:
        reads.append(hold_id)
        return lock_pending(conn, hold_id)

    monkeypatch.setattr(holds, "_lock_pending", reading)
    with db.transaction() as session:
        assert holds.charge(session, kept.id, Usage(30, 20), PRICES, placed=kept).usage == Usage(30, 20)
    assert reads == ([] if db.engine.dialect.name == "postgresql" else [kept.id])
    reads.clear()
    with pytest.raises(holds.HoldResolvedError), db.transaction() as session:
        holds.charge(session, voided.id, Usage(1, 1), PRICES, placed=voided)
    with pytest.raises(holds.HoldResolvedError), db.transaction() as session:  # once only
        holds.charge(session, kept.id, Usage(1, 1), PRICES, placed=kept)
    with db.transaction() as session:  # told a larger hold: charged at most what was placed
        posted = holds.charge(session, other.id, Usage(90, 90), PRICES, placed=replace(other, tokens=500))
    assert (posted.hold, posted.usage.total, posted.capped) == (other, 80, True)
    assert reads == [voided.id, kept.id, other.id]
    with db.transaction() as session:
        assert balance_summary(session, c.id)["free_tokens_left"] == 1_000 - 50 - 80
        assert audit(session) == [] and holds.audit_holds(session) == []


def test_a_remembered_key_is_refused_as_soon_as_it_is_revoked(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    """The gateway remembers which customer a key belongs to (its lane), never whether it is
    active: a key used a moment ago is refused once revoked, and counts nothing."""
    c = make_customer(free=10_000)
    client = openai.OpenAI(base_url=gateway, api_key=c.key, max_retries=0, timeout=20)
    message = [{"role": "user", "content": "안녕"}]
    assert client.chat.completions.create(model=MODEL, messages=message).choices  # type: ignore[arg-type]
    with db.transaction() as session:
        revoke_key(session, c.key_id)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=message)  # type: ignore[arg-type]
    with db.transaction() as session:
        assert session.scalar(select(func.sum(RateCounter.requests))) == 1
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 1


def test_a_remembered_keys_admission_is_one_statement_and_answers_as_the_usual_path(
    db: Database, make_customer: Callable[..., Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, a key whose owner the worker remembers is checked and counted in its
    hold's statement. Every answer is the usual path's: the same key, hold and counts; a
    revoked key 401, a fourth request in the window 429 and a hold beyond the allowance
    refused, each with nothing written."""
    # One moment in the middle of a rate window: the counts and the reset never cross its end.
    clock = SimpleNamespace(time=lambda: 1_800_000_030.0, perf_counter=time.perf_counter)
    monkeypatch.setattr(service, "time", clock)
    monkeypatch.setattr(ratelimit, "time", clock)
    limits = DatabaseRateLimiter(Limits(3, 10**9))
    remembering = Gateway(replace(config(db, "http://127.0.0.1:9", limits), routes={}))
    usual = Gateway(replace(config(db, "http://127.0.0.1:9", limits), routes={}))
    c = make_customer(free=1_000)
    assert asyncio.run(remembering.lane_of(c.key)) == (c.id if remembering.work.postgres else 0)
    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def counted(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)

    def admit(gateway: Gateway, tokens: int = 100) -> Admitted:
        statements.clear()
        with db.transaction() as session:
            return gateway.admit(session, c.key, tokens)

    one = admit(remembering)
    if remembering.work.postgres:  # the accounts' lock, then the hold's statement
        assert len(statements) == 2 and "api_keys" in statements[1]
    other = admit(usual)
    assert len(statements) == (3 if usual.work.postgres else 0)  # SQLite's driver is not psycopg
    assert one.key == other.key
    assert (one.hold.tokens, one.hold.free_tokens, one.hold.krw) == (100, 100, 0)
    assert (other.hold.tokens, other.hold.free_tokens, other.hold.krw) == (100, 100, 0)
    assert one.standing is not None and other.standing is not None
    assert (one.standing.requests, other.standing.requests) == (1, 2)
    with pytest.raises(QuotaExceededError):
        admit(remembering, 900)
    assert admit(remembering).standing == replace(one.standing, requests=3)
    with pytest.raises(ApiError) as limited:
        admit(remembering)
    assert limited.value.status == 429
    with db.transaction() as session:
        revoke_key(session, c.key_id)
    with pytest.raises(ApiError) as revoked:
        admit(remembering)
    assert revoked.value.status == 401
    with db.transaction() as session:
        assert session.scalar(select(RateCounter.requests).where(RateCounter.key_id == c.key_id)) == 3
        assert balance_summary(session, c.id)["free_tokens_left"] == 700
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 3
        assert audit(session) == []
