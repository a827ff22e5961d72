"""Running the gateway's units of database work off the event loop, with group commit.

Each worker process queues its units here in arrival order and one thread runs whatever has
queued up as one transaction, one COMMIT for all of them, and only then is each unit's result
handed back. A refused request undoes only its own writes: a batch in which a unit fails runs
again with every unit in its own savepoint (`_Lane._batch`).
Nothing durable is answered before it is durable, so a crash loses no acknowledged spend, while
BEGIN/COMMIT (on PostgreSQL its WAL flush, ~3.5 ms on this disk), the session and the thread hop
are paid once per batch instead of once per request. It also ends the hot-row convoy of a busy
customer: its account rows are locked once per batch, not once per request, so a commit flush
is waited for once by the whole batch.

SQLite admits one writer at a time, so it has one queue and one writer; between worker
processes its busy timeout arbitrates. On PostgreSQL units are queued by lane: a unit that works
for one customer names it (`lane=customer_id`), and customer `c` always goes to lane
`c % LANES`, in every gateway process. Each lane has its own writer, connection and
transaction-scoped advisory lock, so batches of different lanes commit in parallel while a
customer's units, in all processes, are serialised on its lane's lock: batches never hold one
customer's rows in crossed order. The rows lanes share are the system accounts a paid settlement
posts to; the ledger locks all of them together whenever it needs one (`ledger/holds.py`), so
lanes queue on them without deadlocking. A unit without a customer (the sweep of stale holds,
which touches any customer) runs in the global lane, whose batches take every lane's lock. A
batch that still meets a deadlock or a serialization failure (against a writer outside the
gateway, e.g. a CLI posting) is rolled back and run again whole; units are plain functions of
the session, so running one again is safe. A batch's BEGIN, its `synchronous_commit` setting and
its lock go to the server as one message (the connection is in autocommit mode for the batch
and the writer begins the transaction itself): one round trip, not two. The units' one-statement
postings then go to the server together (`db/speculation.py`): a batch of n admissions is one
round trip for their statements, not n; a guess that does not hold runs the batch again one
unit at a time, as a refused unit does. Units queued together must therefore not depend on each
other's Python results (a request queues its settlement only once its admission has answered);
what one unit leaves in a shared cache is a hint to another, never an answer.

A unit run with `durable=False` (an admission: a hold that only reserves) lets a batch made of
such units alone commit without waiting for the flush (`synchronous_commit` off for that
transaction). A crash of the gateway loses nothing by it; a crash of the database server itself
may lose the last fraction of a second of such holds, which leaves the ledger consistent: the
request's settlement, a durable commit that flushes everything logged before it, then finds no
hold and charges nothing. SQLite commits alike in every case (`synchronous=NORMAL`, see
`db/engine.py`).

On SQLite a process serving one request alone gains nothing from a batch, and its units, which
hold the GIL nearly throughout (SQLite runs in-process), pay for the hand-over to the writer
thread and back (0.2–0.7 ms a request here). So while the gateway says it is alone (`alone`,
its count of requests in flight) and the writer is idle, a unit runs on the event loop's own
thread, as a batch of one, provided SQLite's write lock is free at once (BEGIN IMMEDIATE with no
busy wait); when another process holds it, nothing was done and the unit goes to the writer
thread, which waits as usual. Under load requests are never alone, so batching is unchanged.
PostgreSQL keeps its threads: there a unit mostly waits on the network without the GIL, and
running it on the loop measured no gain.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from psycopg.pq import TransactionStatus
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from tokenclub.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database
from tokenclub.db.speculation import Mispredicted, run_parked, speculating, watch
from tokenclub.ledger.posting import LockedAccount, kept_locks

T = TypeVar("T")
TRANSACTION_ATTEMPTS = 3
RETRYABLE = frozenset({"40P01", "40001"})
MAX_BATCH = 64
"""Units per transaction; on PostgreSQL each writing unit's savepoint is a subtransaction, and up
to 64 of them stay in the backend's cache (beyond that other sessions' snapshots get slower)."""
GATEWAY_LOCK = 0x746B636C7562
"""The advisory lock id of lane 0 on PostgreSQL ("tkclub"); lane i takes GATEWAY_LOCK + i."""
LANES = 4
"""Customer lanes on PostgreSQL: the same number in every gateway process (it decides which lock
a customer's batches take)."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE


def _busy(exc: BaseException) -> bool:
    """SQLite's write lock held by another connection (SQLITE_BUSY)."""
    orig = exc.orig if isinstance(exc, OperationalError) else None
    return isinstance(orig, sqlite3.Error) and getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


def _never() -> bool:
    return False


class _Refused(Exception):
    """A unit failed in a batch run without savepoints: the batch runs again with them."""


@dataclass(slots=True)
class _Unit(Generic[T]):
    work: Callable[[Session], T]
    done: asyncio.Future[T]
    durable: bool
    outcome: tuple[bool, Any] = (False, None)


class _Lane:
    """One queue and its single writer; on PostgreSQL each batch holds `locks`."""

    def __init__(self, db: Database, max_batch: int, locks: tuple[int, ...]) -> None:
        self.db = db
        self.max_batch = max_batch
        self.locks = locks
        self.postgres = db.engine.dialect.name == "postgresql"
        self._queue: deque[_Unit[Any]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="db-lane")
        self.mispredicted = 0
        """Batches run again one unit at a time because a speculation did not hold."""

    def add(self, unit: _Unit[Any]) -> None:
        self._queue.append(unit)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """The lane's writer: drain the queue in batches until it is empty, each on the lane's
        own thread (a thread of anyio's pool costs ~130 µs a hand-over here, the lane's ~90)."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            done = loop.run_in_executor(self._thread, self._batch, batch)
            try:
                await _finished(done)
            finally:
                # Also when this task is cancelled: `_finished` waited for the thread, so
                # every outcome is final and is handed over before the cancellation goes on.
                failure = done.exception()  # the COMMIT failed: no unit of the batch happened
                _deliver(batch, failure if isinstance(failure, Exception) else None)

    def idle(self) -> bool:
        return not self._queue and (self._writer is None or self._writer.done())

    def run_here(self, unit: _Unit[Any]) -> bool:
        """On SQLite, run `unit` alone on the calling thread if the write lock is free at once:
        True once its outcome is set, False (nothing done) on PostgreSQL or when another
        connection holds the lock."""
        if self.postgres:
            return False
        try:
            self._sqlite_at_once(unit)
        except Exception as exc:
            if _busy(exc):
                return False
            unit.outcome = (False, exc)
        return True

    def _batch(self, batch: list[_Unit[Any]]) -> None:
        """Run the units in one transaction, again whole if PostgreSQL aborted it; each outcome
        is final only if the COMMIT succeeds (else this raises and every unit fails).

        A batch first runs without savepoints (one round trip a unit less on PostgreSQL):
        units are seldom refused. When one fails, the transaction is rolled back and the batch
        runs again with a savepoint per unit (`_units`), so the refused unit undoes only its
        own writes; that second run is not counted as an attempt."""
        guarded = len(batch) == 1  # a lone unit needs no savepoint either way
        attempt = 0
        while True:
            try:
                if self.postgres:
                    self._attempt_postgres(batch, guarded)
                else:
                    with self.db.transaction() as session:
                        self._units(session, batch, guarded)
                return
            except _Refused:
                guarded = True
            except Exception as exc:
                attempt += 1
                if _retryable(exc) and attempt < TRANSACTION_ATTEMPTS:
                    continue
                if len(batch) > 1:
                    raise
                batch[0].outcome = (False, exc)
                return

    def _sqlite_at_once(self, unit: _Unit[Any]) -> None:
        """`unit` in a transaction whose BEGIN IMMEDIATE (`db/engine.py`) takes the write lock
        before the unit runs, or raises SQLITE_BUSY at once when another process holds it."""
        with self.db.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            with Session(bind=conn, expire_on_commit=False) as session:
                driver.execute("PRAGMA busy_timeout=0")
                try:
                    session.connection()  # BEGIN IMMEDIATE
                finally:
                    driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                unit.outcome = (True, unit.work(session))
                session.commit()

    def _attempt_postgres(self, batch: list[_Unit[Any]], guarded: bool) -> None:
        """BEGIN, the flush setting and the lane's lock in one message; the units; COMMIT."""
        relaxed = "" if any(unit.durable for unit in batch) else "SET LOCAL synchronous_commit TO off; "
        locks = ", ".join(f"pg_advisory_xact_lock({lock})" for lock in self.locks)
        with self.db.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.autocommit = True  # the transaction is begun here, with the lock
            try:
                driver.execute(f"BEGIN; {relaxed}SELECT {locks}")
                with Session(bind=conn, expire_on_commit=False) as session:
                    self._units(session, batch, guarded)
                    session.commit()  # psycopg sends COMMIT: the server is in a transaction
            finally:
                if driver.info.transaction_status != TransactionStatus.IDLE:
                    driver.rollback()
                driver.autocommit = False

    def _units(self, session: Session, batch: list[_Unit[Any]], guarded: bool) -> None:
        if len(batch) == 1:  # alone: its failure rolls the transaction back, no savepoint needed
            batch[0].outcome = (True, batch[0].work(session))
            return
        # The batch's units lock one customer's accounts once (`kept_locks`), not once each.
        with kept_locks(session.connection()) as kept:
            if guarded:
                self._guarded(session, batch, kept)
                return
            if self.postgres:
                self._speculated(session, batch)
                return
            for unit in batch:
                try:
                    result = _run(session, unit)
                except Exception as exc:
                    if _retryable(exc):  # the whole batch runs again
                        raise
                    raise _Refused from exc  # the caller rolls back; the batch runs again guarded
                unit.outcome = (True, result)

    def _speculated(self, session: Session, batch: list[_Unit[Any]]) -> None:
        """The units with their one-statement postings sent together (`db/speculation.py`); a
        guess that did not hold, like a refused unit, has the batch run again with savepoints,
        one unit at a time."""
        with speculating(session.connection()) as speculation:
            try:
                results = run_parked(speculation, [partial(_run, session, unit) for unit in batch])
            except Exception as exc:
                if _retryable(exc):  # the whole batch runs again
                    raise
                if isinstance(exc, Mispredicted):
                    self.mispredicted += 1
                raise _Refused from exc
        for unit, result in zip(batch, results, strict=True):
            unit.outcome = (True, result)

    def _guarded(self, session: Session, batch: list[_Unit[Any]], kept: dict[str, LockedAccount]) -> None:
        """Each unit in its own savepoint: a refused one undoes only its own writes, and the
        accounts kept locked go back to what they were before it."""
        driver = session.connection().connection.driver_connection
        assert driver is not None
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
            before = dict(kept)
            try:
                result = _run(session, unit)
            except Exception as exc:
                if _retryable(exc):  # the whole batch runs again
                    raise
                driver.execute("ROLLBACK TO unit")
                session.expunge_all()
                kept.clear()
                kept.update(before)
                unit.outcome = (False, exc)
            else:
                unit.outcome = (True, result)
        driver.execute("RELEASE unit")


class DatabaseWork:
    """One per worker process; `run` returns a unit's result once its transaction committed."""

    def __init__(
        self,
        db: Database,
        max_batch: int = MAX_BATCH,
        lanes: int = LANES,
        alone: Callable[[], bool] = _never,
    ) -> None:
        self.db = db
        self.alone = alone
        self.postgres = db.engine.dialect.name == "postgresql"
        if self.postgres:
            watch(db.engine)
            self._lanes = [_Lane(db, max_batch, (GATEWAY_LOCK + i,)) for i in range(lanes)]
            self._global = _Lane(db, max_batch, tuple(GATEWAY_LOCK + i for i in range(lanes)))
        else:
            self._global = _Lane(db, max_batch, ())
            self._lanes = [self._global]

    @property
    def mispredicted(self) -> int:
        """Batches run again one unit at a time because their speculation did not hold."""
        return sum(lane.mispredicted for lane in {*self._lanes, self._global})

    async def run(self, work: Callable[[Session], T], durable: bool = True, lane: int | None = None) -> T:
        """Queue `work` for the next batch of its lane (or run it here, see the module's
        docstring); its result, or its exception, after the commit. `lane`: the customer the
        unit works for (None: the global lane).

        `durable=False` only for work whose loss in a database crash charges nobody and answers
        nothing (see the module's docstring)."""
        unit: _Unit[T] = _Unit(work, asyncio.get_running_loop().create_future(), durable)
        queue = self._global if lane is None else self._lanes[lane % len(self._lanes)]
        if self.alone() and queue.idle() and queue.run_here(unit):
            _deliver([unit], None)
        else:
            queue.add(unit)
        return await unit.done


def _run(session: Session, unit: _Unit[T]) -> T:
    """The unit's work, its ORM writes flushed (inside its savepoint, when it has one)."""
    result = unit.work(session)
    if session.new or session.dirty or session.deleted:
        session.flush()
    return result


async def _finished(done: asyncio.Future[None]) -> None:
    """Wait until `done` (a thread's batch) has finished, also through a cancellation of the
    waiting task, which is raised once it has; `done`'s own exception stays in it."""
    cancelled: asyncio.CancelledError | None = None
    while not done.done():
        try:
            await asyncio.wait({done})
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


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
