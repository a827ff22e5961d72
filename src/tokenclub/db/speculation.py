"""A batch's one-statement postings sent to PostgreSQL together: one round trip, not one each.

A gateway batch (`gateway/dbwork.py`) runs many units in one transaction, and on PostgreSQL a
unit is mostly one statement (`ledger.posting.post_in_one_statement`) whose answer it needs
before it can return. Run one after another, each waits for its own round trip; in a served
gateway each wait also costs the lane's thread a fresh turn at the GIL (about 0.7 ms a
statement at c=50, against 0.2 alone). Here each unit runs in a greenlet of the lane's thread.
At such a statement it *parks*: the statement is queued, not sent, and the next unit runs. Once
every unit has parked or finished, the queued statements go in one round trip (psycopg's
pipeline mode), and each parked unit resumes, in order, with its row.

Exactly as if run one after another, or not at all:

- **The server sees the units' statements in their order.** A statement a unit runs while
  others are queued (any other statement: through SQLAlchemy, the ORM's flush or the prebuilt
  ones) first sends the queue, then runs. A unit after it therefore never runs before an
  earlier unit's statement.
- **A parked unit's effect on what later units read in Python is made before it parks**: the
  posting moves the transaction's kept balances (`ledger.posting.kept_locks`) as if written.
- **Whatever was guessed wrong undoes the batch** (`Mispredicted`): a queued statement that
  wrote nothing (its gate found no row, a replayed key), or a statement run by a unit after it
  resumed (it would reach the server after later units' statements). The caller rolls the
  transaction back and runs the batch again one unit at a time. Units are plain functions of
  the session, as they must be for the batch's other reruns.

SQLAlchemy's results do not work in pipeline mode, so the pipeline is opened only to send the
queue, with the driver's own cursors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from greenlet import greenlet
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
_SPECULATION = "tokenclub.db.speculation"
"""Where the running speculation is kept: the pooled connection's `info`."""


class Mispredicted(Exception):
    """The batch was run on a guess that did not hold; nothing of it may be kept."""


@dataclass(slots=True)
class _Queued:
    sql: str
    params: Any
    row: tuple[Any, ...] | None = None


class Speculation:
    """One batch's run on one connection: the statements queued and the phase it is in."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: list[_Queued] = []
        self.resumed = False
        self.missed = False

    def row(self, sql: str, params: Any) -> tuple[Any, ...] | None:
        """The statement's first row: queued, and answered once the queue has been sent."""
        if self.resumed:
            self.miss()
        queued = _Queued(sql, params)
        self.queue.append(queued)
        scheduler = greenlet.getcurrent().parent
        if scheduler is None:  # not a unit's greenlet: send now
            self.send()
        else:
            scheduler.switch()
        return queued.row

    def miss(self) -> None:
        """A guess did not hold: the batch must be undone (also when the unit catches this)."""
        self.missed = True
        raise Mispredicted("a batch statement did not do what it was run for")

    def before_statement(self) -> None:
        """Called before any other statement on the connection: queued ones go first."""
        if self.resumed:
            self.miss()
        if self.queue:
            self.send()

    def send(self) -> None:
        """The queued statements, in one round trip; each row kept for its unit."""
        if not self.queue:
            return
        from tokenclub.db.prebuilt import returns_rows  # a module-level import would be circular

        queue, self.queue = self.queue, []
        driver = self.conn.connection.driver_connection
        assert driver is not None
        dialect = self.conn.dialect
        cursors = []
        try:
            with driver.pipeline():
                for queued in queue:
                    cursor = driver.cursor()
                    cursor.execute(queued.sql, queued.params)
                    cursors.append(cursor)
            for queued, cursor in zip(queue, cursors, strict=True):
                found = cursor.fetchone() if returns_rows(cursor) else None
                queued.row = None if found is None else tuple(found)
        except dialect.loaded_dbapi.Error as exc:
            sent = f"{len(queue)} statements in one pipeline"
            raise DBAPIError.instance(sent, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
        finally:
            for cursor in cursors:
                cursor.close()


def speculation_of(conn: Connection) -> Speculation | None:
    found: Speculation | None = conn.info.get(_SPECULATION)
    return found


def before_statement(conn: Connection) -> None:
    """The hook every statement run on the driver directly passes (`db/prebuilt.py`)."""
    found = speculation_of(conn)
    if found is not None:
        found.before_statement()


def watch(engine: Engine) -> None:
    """Make every SQLAlchemy statement on `engine` pass `before_statement` (once per engine)."""
    if not event.contains(engine, "before_cursor_execute", _before_cursor_execute):
        event.listen(engine, "before_cursor_execute", _before_cursor_execute)


def _before_cursor_execute(conn: Connection, *_: Any) -> None:
    before_statement(conn)


@contextmanager
def speculating(conn: Connection) -> Iterator[Speculation]:
    """Within it, units run through `run_parked` on `conn` may park at their statements."""
    speculation = Speculation(conn)
    conn.info[_SPECULATION] = speculation
    try:
        yield speculation
    finally:
        conn.info.pop(_SPECULATION, None)


def run_parked(speculation: Speculation, works: Sequence[Callable[[], T]]) -> list[T]:
    """Each work's result, the works run as the module's docstring says; `Mispredicted` if a
    guess did not hold, or the first exception a work raised (the rest are then abandoned)."""
    started: list[greenlet] = []
    results: list[Any] = [None] * len(works)
    parked: list[int] = []
    try:
        for i, work in enumerate(works):
            runner = greenlet(work)
            started.append(runner)
            results[i] = runner.switch()
            if not runner.dead:
                parked.append(i)
        speculation.send()
        speculation.resumed = True
        for i in parked:
            results[i] = started[i].switch()
            if not started[i].dead:  # it parked again: a statement after it resumed
                speculation.miss()
    finally:
        for runner in started:
            if not runner.dead:
                runner.throw()  # GreenletExit: unwinds the abandoned unit
    if speculation.missed:  # a unit caught the exception: the batch is undone all the same
        speculation.miss()
    return results
