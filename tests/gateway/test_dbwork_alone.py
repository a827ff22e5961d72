"""A request served alone on SQLite: its units run on the event loop's thread when the write lock
is free at once, and on the writer thread, once, when another process holds it; a failing unit
fails alone; under load, and on PostgreSQL, units go to their lane's thread as before."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, MutableMapping
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from tokenclub.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database
from tokenclub.db.schema import LedgerTransaction
from tokenclub.db.types import utcnow
from tokenclub.gateway.dbwork import DatabaseWork
from tokenclub.gateway.metrics import Metrics
from tokenclub.gateway.observe import RequestObserver

TRANSACTIONS = cast(Table, LedgerTransaction.__table__)
LANE = 3


def _writer(key: str, threads: list[str]) -> Callable[[Session], int]:
    """A unit that writes one row and notes the thread it ran on."""

    def unit(session: Session) -> int:
        threads.append(threading.current_thread().name)
        session.execute(
            insert(TRANSACTIONS).values(
                idempotency_key=key, kind="test", memo="", digest="", created_at=utcnow()
            )
        )
        return len(threads)

    return unit


def _rows(db: Database, key: str) -> int:
    with db.transaction() as session:
        return (
            session.scalar(
                select(func.count()).select_from(TRANSACTIONS).where(TRANSACTIONS.c.idempotency_key == key)
            )
            or 0
        )


def _run(work: DatabaseWork, unit: Callable[[Session], Any]) -> Any:
    async def go() -> Any:
        return await work.run(unit, True, LANE)

    return asyncio.run(go())


def _queued(work: DatabaseWork) -> threading.Event:
    """Set once a unit of `LANE` is handed to the lane's thread (its lone attempt gave up)."""
    handed = threading.Event()
    lane = work._lanes[LANE % len(work._lanes)]
    add = lane.add

    def add_and_tell(unit: Any) -> None:
        add(unit)
        handed.set()

    lane.add = add_and_tell  # type: ignore[method-assign]
    return handed


def test_a_lone_unit_runs_on_the_calling_thread_on_sqlite_and_on_its_lane_thread_on_postgresql(
    db: Database,
) -> None:
    threads: list[str] = []
    assert _run(DatabaseWork(db, alone=lambda: True), _writer("alone", threads)) == 1
    postgres = db.engine.dialect.name == "postgresql"
    assert len(threads) == 1
    assert threads[0].startswith("db-lane") if postgres else threads[0] == threading.current_thread().name
    assert _rows(db, "alone") == 1


def test_under_load_the_unit_runs_on_the_lane_thread(db: Database) -> None:
    threads: list[str] = []
    assert _run(DatabaseWork(db, alone=lambda: False), _writer("loaded", threads)) == 1
    assert len(threads) == 1 and threads[0].startswith("db-lane")
    assert _rows(db, "loaded") == 1


def test_a_failing_lone_unit_fails_alone_and_writes_nothing(_sqlite_db: Database) -> None:
    threads: list[str] = []
    write = _writer("failed", threads)

    def failing(session: Session) -> int:
        write(session)
        raise ValueError("refused after its write")

    with pytest.raises(ValueError, match="refused after its write"):
        _run(DatabaseWork(_sqlite_db, alone=lambda: True), failing)
    assert threads == [threading.current_thread().name]
    assert _rows(_sqlite_db, "failed") == 0


def _run_while_held(
    work: DatabaseWork,
    unit: Callable[[Session], int],
    hold: Callable[[], object],
    release: Callable[[], object],
) -> list[int]:
    """Run a lone unit while another connection holds the write lock, released only once the
    unit was handed to the writer thread: its results."""
    handed = _queued(work)
    results: list[int] = []
    hold()
    runner = threading.Thread(target=lambda: results.append(_run(work, unit)))
    runner.start()
    try:
        assert handed.wait(10)
    finally:
        release()
    runner.join(timeout=30)
    return results


def test_a_lone_unit_goes_to_the_lane_thread_while_another_process_writes_to_sqlite(
    _sqlite_db: Database,
) -> None:
    path = _sqlite_db.engine.url.database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection
    threads: list[str] = []
    try:
        results = _run_while_held(
            DatabaseWork(_sqlite_db, alone=lambda: True),
            _writer("held-sqlite", threads),
            lambda: other.execute("BEGIN IMMEDIATE"),
            lambda: other.execute("ROLLBACK"),
        )
    finally:
        other.close()
    assert results == [1]
    assert len(threads) == 1 and threads[0].startswith("db-lane")
    assert _rows(_sqlite_db, "held-sqlite") == 1
    with _sqlite_db.engine.connect() as conn:  # the pooled connection waits for the lock again
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == SQLITE_BUSY_TIMEOUT_MS


def test_the_observer_counts_requests_in_flight() -> None:
    """The count the lone path reads: one while a request is served, none after it, also when
    the app fails or the request is cancelled."""
    metrics = Metrics()
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(metrics.in_flight)
        if scope["path"] == "/fails":
            raise RuntimeError("broken")
        if scope["path"] == "/hangs":
            await asyncio.Event().wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    observer = RequestObserver(app, lambda: metrics)

    async def call(path: str) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: MutableMapping[str, Any]) -> None:
            return None

        await observer({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)

    async def go() -> None:
        await call("/ok")
        await call("/fails")
        hanging = asyncio.create_task(call("/hangs"))
        await asyncio.sleep(0)
        assert metrics.in_flight == 1 and metrics.alone()
        both = asyncio.create_task(call("/ok"))
        await both
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging

    asyncio.run(go())
    assert seen == [1, 1, 1, 2]
    assert metrics.in_flight == 0
