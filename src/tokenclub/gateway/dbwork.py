"""Running the gateway's units of database work off the event loop, with group commit on SQLite.

SQLite admits one writer at a time, so each worker process queues its units here in arrival
order and one thread runs whatever has queued up as one transaction: every unit in its own
savepoint (a refused request undoes only its own writes), one COMMIT for all of them, and
only then is each unit's result handed back. Nothing is answered before it is durable, so a
crash loses no acknowledged spend, while BEGIN/COMMIT, the session and the thread hop are paid
once per batch instead of once per request. Between worker processes SQLite's busy timeout
still arbitrates.

PostgreSQL gets no batching: units of different requests lock ledger rows in their own order,
and holding several of them in one transaction could deadlock against another process's batch.
There each unit is its own transaction on a thread of its own, as many at once as the
connection pool serves, and a deadlock victim or serialization failure is retried whole.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tokenclub.db.engine import POSTGRES_POOL_SIZE, Database

T = TypeVar("T")
TRANSACTION_ATTEMPTS = 3
RETRYABLE = frozenset({"40P01", "40001"})
MAX_BATCH = 64


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE


@dataclass(slots=True)
class _Unit(Generic[T]):
    work: Callable[[Session], T]
    done: asyncio.Future[T]
    outcome: tuple[bool, Any] = (False, None)


class DatabaseWork:
    """One per worker process; `run` returns a unit's result once its transaction committed."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self.grouped = db.engine.dialect.name == "sqlite"
        self._queue: deque[_Unit[Any]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._threads: CapacityLimiter | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        if not self.grouped:
            return await to_thread.run_sync(self._alone, work, limiter=self._pool_threads())
        unit: _Unit[T] = _Unit(work, asyncio.get_running_loop().create_future())
        self._queue.append(unit)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await unit.done

    def _pool_threads(self) -> CapacityLimiter:
        """As many threads as the engine's pool keeps connections, so none waits holding nothing
        and two workers stay well inside PostgreSQL's connection limit; created inside the
        event loop, where anyio needs it."""
        if self._threads is None:
            self._threads = CapacityLimiter(POSTGRES_POOL_SIZE)
        return self._threads

    def _alone(self, work: Callable[[Session], T]) -> T:
        """One unit, one transaction; retried whole when PostgreSQL aborted it."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with self.db.transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if not _retryable(exc) or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _write(self) -> None:
        """The single writer: drain the queue in batches until it is empty."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            failure: Exception | None = None
            try:
                await to_thread.run_sync(self._batch, batch)
            except Exception as exc:  # the COMMIT failed: no unit of the batch happened
                failure = exc
            finally:
                # Also when this task is cancelled: the thread has finished the batch by then,
                # so every outcome is final and is handed over before the cancellation goes on.
                _deliver(batch, failure)

    def _batch(self, batch: list[_Unit[Any]]) -> None:
        """Run the units in one transaction; each outcome is final only if the COMMIT succeeds."""
        if len(batch) == 1:
            unit = batch[0]
            try:
                unit.outcome = (True, self._alone(unit.work))
            except Exception as exc:
                unit.outcome = (False, exc)
            return
        with self.db.transaction() as session:
            # Savepoints go straight to the driver: SQLAlchemy's nested transaction costs ~90 µs
            # a unit, these ~1 µs. The session knows nothing of them, so each unit's ORM writes
            # are flushed inside its savepoint, and a refused unit's objects leave the session
            # (rolled back in the database, they must not be flushed by a later unit). A flush
            # that fails deactivates the whole session: every unit fails, nothing is answered.
            driver = session.connection().connection.driver_connection
            assert driver is not None
            for unit in batch:
                driver.execute("SAVEPOINT unit")
                try:
                    result = unit.work(session)
                    if session.new or session.dirty or session.deleted:
                        session.flush()
                except Exception as exc:
                    driver.execute("ROLLBACK TO unit")
                    session.expunge_all()
                    unit.outcome = (False, exc)
                else:
                    unit.outcome = (True, result)
                driver.execute("RELEASE unit")


def _deliver(batch: list[_Unit[Any]], failure: Exception | None) -> None:
    for unit in batch:
        if unit.done.done():  # the caller gave up waiting (its request was cancelled)
            continue
        ok, value = unit.outcome
        if failure is not None:
            unit.done.set_exception(failure)
        elif ok:
            unit.done.set_result(value)
        else:
            unit.done.set_exception(value)
