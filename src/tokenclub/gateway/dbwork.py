"""Running the gateway's units of database work off the event loop, with group commit.

Each worker process queues its units here in arrival order and one thread runs whatever has
queued up as one transaction: every unit in its own savepoint (a refused request undoes only
its own writes), one COMMIT for all of them, and only then is each unit's result handed back.
Nothing durable is answered before it is durable, so a crash loses no acknowledged spend, while
BEGIN/COMMIT (on PostgreSQL its WAL flush, ~3.5 ms on this disk), the session and the thread hop
are paid once per batch instead of once per request. It also ends the hot-row convoy of a busy
customer: its account rows are locked once per batch, not once per request, so a commit flush
is waited for once by the whole batch.

SQLite admits one writer at a time; between worker processes its busy timeout arbitrates. On
PostgreSQL a batch first takes one transaction-scoped advisory lock shared by every gateway
process, so batches of different processes never hold each other's rows in crossed order (units
lock ledger rows in their own orders, and two concurrent batches could otherwise deadlock). A
batch that still meets a deadlock or a serialization failure (against a writer outside the
gateway, e.g. a CLI posting) is rolled back and run again whole; units are plain functions of
the session, so running one again is safe.

A unit run with `durable=False` (an admission: a hold that only reserves) lets a batch made of
such units alone commit without waiting for the flush (`synchronous_commit` off for that
transaction). A crash of the gateway loses nothing by it; a crash of the database server itself
may lose the last fraction of a second of such holds, which leaves the ledger consistent: the
request's settlement, a durable commit that flushes everything logged before it, then finds no
hold and charges nothing. SQLite commits alike in every case (`synchronous=NORMAL`, see
`db/engine.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from anyio import to_thread
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tokenclub.db.engine import Database

T = TypeVar("T")
TRANSACTION_ATTEMPTS = 3
RETRYABLE = frozenset({"40P01", "40001"})
MAX_BATCH = 64
"""Units per transaction; on PostgreSQL each writing unit's savepoint is a subtransaction, and up
to 64 of them stay in the backend's cache (beyond that other sessions' snapshots get slower)."""
GATEWAY_LOCK = 0x746B636C7562
"""The advisory lock id that gateway batches take on PostgreSQL ("tkclub")."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE


@dataclass(slots=True)
class _Unit(Generic[T]):
    work: Callable[[Session], T]
    done: asyncio.Future[T]
    durable: bool
    outcome: tuple[bool, Any] = (False, None)


class DatabaseWork:
    """One per worker process; `run` returns a unit's result once its transaction committed."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self.postgres = db.engine.dialect.name == "postgresql"
        self._queue: deque[_Unit[Any]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Session], T], durable: bool = True) -> T:
        """Queue `work` for the next batch; its result, or its exception, after the commit.

        `durable=False` only for work whose loss in a database crash charges nobody and answers
        nothing (see the module's docstring)."""
        unit: _Unit[T] = _Unit(work, asyncio.get_running_loop().create_future(), durable)
        self._queue.append(unit)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await unit.done

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
        """Run the units in one transaction, again whole if PostgreSQL aborted it; each outcome
        is final only if the COMMIT succeeds (else this raises and every unit fails)."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self._attempt(batch)
                return
            except Exception as exc:
                if _retryable(exc) and attempt < TRANSACTION_ATTEMPTS - 1:
                    continue
                if len(batch) > 1:
                    raise
                batch[0].outcome = (False, exc)
                return

    def _attempt(self, batch: list[_Unit[Any]]) -> None:
        with self.db.transaction() as session:
            driver = session.connection().connection.driver_connection
            assert driver is not None
            if self.postgres:
                relaxed = (
                    "" if any(unit.durable for unit in batch) else "SET LOCAL synchronous_commit TO off; "
                )
                driver.execute(f"{relaxed}SELECT pg_advisory_xact_lock({GATEWAY_LOCK})")
            if len(batch) == 1:  # alone: its failure rolls the transaction back, no savepoint needed
                batch[0].outcome = (True, batch[0].work(session))
                return
            # Savepoints go straight to the driver: SQLAlchemy's nested transaction costs ~90 µs
            # a unit, these ~1 µs (one round trip on PostgreSQL, RELEASE and SAVEPOINT together).
            # The session knows nothing of them, so each unit's ORM writes are flushed inside its
            # savepoint, and a refused unit's objects leave the session (rolled back in the
            # database, they must not be flushed by a later unit). A flush that fails
            # deactivates the whole session: every unit fails, nothing is answered.
            driver.execute("SAVEPOINT unit")
            for index, unit in enumerate(batch):
                if index and self.postgres:
                    driver.execute("RELEASE unit; SAVEPOINT unit")
                elif index:
                    driver.execute("RELEASE unit")
                    driver.execute("SAVEPOINT unit")
                try:
                    result = unit.work(session)
                    if session.new or session.dirty or session.deleted:
                        session.flush()
                except Exception as exc:
                    if _retryable(exc):  # the whole batch runs again
                        raise
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
