"""Group commit on PostgreSQL: batches of one customer's lane exclude each other across gateway
processes while other lanes go on, the global lane excludes every lane, a batch that PostgreSQL
aborted runs again whole, and only a batch of non-durable units skips the flush."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import cast

import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from tokenclub.db.engine import Database
from tokenclub.db.schema import LedgerTransaction
from tokenclub.db.types import utcnow
from tokenclub.gateway.dbwork import GATEWAY_LOCK, LANES, DatabaseWork

pytestmark = pytest.mark.postgres
TRANSACTIONS = cast(Table, LedgerTransaction.__table__)
OWN_LOCKS = text(
    "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
    " WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() ORDER BY 1"
)


def _setting(session: Session) -> tuple[str, int]:
    commit = session.execute(text("SHOW synchronous_commit")).scalar_one()
    return commit, len(session.execute(OWN_LOCKS).all())


def _locks(session: Session) -> list[int]:
    return [lock - GATEWAY_LOCK for lock in session.scalars(OWN_LOCKS)]


def _batch(
    work: DatabaseWork, units: list[tuple[Callable[[Session], object], bool]], lane: int | None = None
) -> list[object]:
    async def run() -> list[object]:
        return await asyncio.gather(*(work.run(unit, durable, lane) for unit, durable in units))

    return asyncio.run(run())


def test_every_batch_holds_its_lane_lock_and_only_a_non_durable_one_skips_the_flush(
    pg_db: Database,
) -> None:
    work = DatabaseWork(pg_db)
    assert _batch(work, [(_setting, False), (_setting, False)], 7) == [("off", 1), ("off", 1)]
    assert _batch(work, [(_setting, False), (_setting, True)], 7) == [("on", 1), ("on", 1)]
    assert _batch(work, [(_setting, True)], 7) == [("on", 1)]
    assert _batch(work, [(_setting, False)], 7) == [("off", 1)]


def test_a_customer_always_takes_its_own_lane_and_the_global_lane_takes_every_lane(
    pg_db: Database,
) -> None:
    work = DatabaseWork(pg_db)
    for customer in (0, 1, 5, LANES * 3 + 2):
        assert _batch(work, [(_locks, True)], customer) == [[customer % LANES]]
    assert _batch(work, [(_locks, True)]) == [list(range(LANES))]


def test_another_lane_commits_while_one_lane_waits_for_another_process(pg_db: Database) -> None:
    other = Database(pg_db.url)  # another gateway process: its own engine and connections
    work = DatabaseWork(pg_db)
    results: dict[int, list[object]] = {}
    try:
        with other.engine.connect() as holder:
            holder.execute(text(f"SELECT pg_advisory_xact_lock({GATEWAY_LOCK})"))  # lane 0's

            def lane(customer: int) -> None:
                results[customer] = _batch(work, [(_locks, True)], customer)

            blocked = threading.Thread(target=lane, args=(LANES,))
            blocked.start()
            lane(1)  # returns while lane 0 waits
            assert results == {1: [[1]]}
            holder.rollback()
            blocked.join(timeout=10)
        assert results == {1: [[1]], LANES: [[0]]}
    finally:
        other.dispose()


def test_a_batch_aborted_by_a_deadlock_runs_again_whole_and_writes_once(pg_db: Database) -> None:
    work = DatabaseWork(pg_db)
    calls = {"first": 0, "victim": 0}

    def count(key_id: int) -> Callable[[Session], int]:
        def unit(session: Session) -> int:
            calls["first"] += key_id == 1
            session.execute(
                insert(TRANSACTIONS).values(
                    idempotency_key=f"unit-{key_id}", kind="test", memo="", digest="", created_at=utcnow()
                )
            )
            return key_id

        return unit

    def victim(session: Session) -> str:
        calls["victim"] += 1
        if calls["victim"] == 1:
            session.execute(text("DO $$ BEGIN RAISE EXCEPTION 'chosen' USING ERRCODE = '40P01'; END $$"))
        return "ran"

    assert _batch(work, [(count(1), True), (victim, True), (count(3), True)]) == [1, "ran", 3]
    assert calls == {"first": 2, "victim": 2}
    with pg_db.transaction() as session:
        keys = session.scalars(select(TRANSACTIONS.c.idempotency_key).where(TRANSACTIONS.c.kind == "test"))
        assert sorted(keys) == ["unit-1", "unit-3"]


def test_a_batch_waits_while_another_process_holds_its_lane_lock(pg_db: Database) -> None:
    other = Database(pg_db.url)  # another gateway process: its own engine and connections
    work = DatabaseWork(pg_db)
    results: list[object] = []
    try:
        with other.engine.connect() as holder:
            holder.execute(text(f"SELECT pg_advisory_xact_lock({GATEWAY_LOCK})"))
            waiter = threading.Thread(target=lambda: results.extend(_batch(work, [(_setting, True)], 0)))
            waiter.start()
            deadline = time.monotonic() + 10
            waiting = 0
            while not waiting and time.monotonic() < deadline:
                waiting = holder.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar_one()
            assert waiting == 1 and results == []
            holder.rollback()
            waiter.join(timeout=10)
        assert results == [("on", 1)]
    finally:
        other.dispose()


def test_a_cancelled_writer_hands_its_batch_over_only_once_the_thread_has_committed_it(
    pg_db: Database,
) -> None:
    """The lane's writer is cancelled while its thread is inside a unit: the caller's result
    is not handed over then (the COMMIT has not happened yet), but once the thread has
    committed; the writer's cancellation goes on after that."""
    work = DatabaseWork(pg_db)
    inside, release = threading.Event(), threading.Event()

    def slow(session: Session) -> str:
        session.execute(
            insert(TRANSACTIONS).values(
                idempotency_key="cancelled-writer", kind="test", memo="", digest="", created_at=utcnow()
            )
        )
        inside.set()
        assert release.wait(10)
        return "written"

    async def run() -> tuple[str, bool, bool]:
        unit = asyncio.ensure_future(work.run(slow, True, 3))
        assert await asyncio.to_thread(inside.wait, 10)
        writer = work._lanes[3]._writer
        assert writer is not None
        writer.cancel()
        for _ in range(5):  # let the cancellation reach the writer
            await asyncio.sleep(0)
        early = unit.done()
        release.set()
        result = await asyncio.wait_for(unit, 10)
        with pytest.raises(asyncio.CancelledError):
            await writer
        return result, early, writer.cancelled()

    assert asyncio.run(run()) == ("written", False, True)
    with pg_db.transaction() as session:
        keys = session.scalars(select(TRANSACTIONS.c.idempotency_key).where(TRANSACTIONS.c.kind == "test"))
        assert list(keys) == ["cancelled-writer"]
