"""Hot-path statements compiled once per dialect and run on the driver's own cursor.

SQLAlchemy's Core `execute` costs ~24 µs a statement here even with its compiled cache
(execution context, parameter processing, result wrapping, events); the driver's cursor ~7 µs.
The gateway runs 15 prebuilt statements a request, so they skip that layer: SQLAlchemy's
compiler still writes the SQL and supplies each parameter's bind processor (the SQLite datetime
format, for one), once per dialect and set of parameter names; driver errors are re-raised as
SQLAlchemy's (`IntegrityError`, a deadlock's SQLSTATE on `orig`), so callers see the same
exceptions. They run inside the caller's transaction; no cursor events fire for them. Rows come
back as the driver returns them (no result processing), so only plain integer and text columns
are read back through here.

Inside a gateway batch on PostgreSQL (`deferred_writes`) a write whose result nobody reads (no
RETURNING: balance updates, ledger entries, a hold's insert or close) is not sent on its own: it
waits, and goes to the server in one psycopg pipeline (one round trip) with the next statement
that must be answered — a prebuilt read, any SQLAlchemy statement (an engine hook sends the
waiting writes first), or the savepoint step or COMMIT at the end of the unit (`flush_writes`).
So an error of a waiting write still surfaces inside its own unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Table, bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Params = Mapping[str, Any]
_WAITING = "tokenclub.waiting_writes"
"""Key in the DBAPI connection's `info` of the writes that wait for the next round trip."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    positional: bool
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    answered: bool
    """The statement returns rows (a SELECT, or a write with RETURNING)."""


class Prebuilt:
    """One Core statement; `run` executes it with one set of parameters or many (executemany)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        found = self._compiled.get((dialect.name, keys))
        if found is not None:
            return found
        compiled = cast(SQLCompiler, self.statement.compile(dialect=dialect, column_keys=list(keys)))
        names = tuple(compiled.positiontup or compiled.binds)
        missing = [name for name in names if name not in keys]
        if missing:  # a Python-side column default or an unset parameter: not for this path
            raise ValueError(f"prebuilt statement needs parameters {missing}: {compiled.string}")
        processors = []
        for name in names:
            processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((name, processor))
        answered = not (compiled.isinsert or compiled.isupdate or compiled.isdelete) or bool(
            compiled.effective_returning
        )
        found = _Compiled(
            compiled.string, names, compiled.positiontup is not None, tuple(processors), answered
        )
        self._compiled[(dialect.name, keys)] = found
        return found

    def run(self, conn: Connection, params: Params | Sequence[Params]) -> list[Any]:
        """Execute in the connection's transaction; the rows it returned (none for executemany)."""
        many = not isinstance(params, Mapping)
        sets: Sequence[Params] = [params] if isinstance(params, Mapping) else params
        dialect = conn.dialect
        compiled = self._compile(dialect, tuple(sorted(sets[0])))
        rows = [_bind(compiled, p) for p in sets]
        waiting: list[_Write] | None = conn.connection.info.get(_WAITING)
        if waiting is not None:
            if not compiled.answered:
                waiting.append(_Write(compiled.sql, rows, many))
                return []
            if waiting:
                return _send(conn, waiting, _Write(compiled.sql, rows, many))
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            if many:
                cursor.executemany(compiled.sql, rows)
                return []
            cursor.execute(compiled.sql, rows[0])
            return list(cursor.fetchall()) if cursor.description else []
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                compiled.sql, rows, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()


@dataclass(frozen=True, slots=True)
class _Write:
    sql: str
    rows: list[Any]
    many: bool


def _send(conn: Connection, waiting: list[_Write], last: _Write | None = None) -> list[Any]:
    """The waiting writes, then `last`, in one pipeline (one round trip); the rows of `last`."""
    statements = [*waiting, *([last] if last else [])]
    waiting.clear()
    driver = conn.connection.driver_connection
    assert driver is not None
    dialect = conn.dialect
    cursors = []
    try:
        with driver.pipeline():
            for write in statements:
                cursor = driver.cursor()
                if write.many:
                    cursor.executemany(write.sql, write.rows)
                else:
                    cursor.execute(write.sql, write.rows[0])
                cursors.append(cursor)
        return list(cursors[-1].fetchall()) if last is not None and not last.many else []
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            "; ".join(w.sql for w in statements), None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        for cursor in cursors:
            cursor.close()


@contextmanager
def deferred_writes(conn: Connection) -> Iterator[None]:
    """Let unanswered prebuilt writes wait for the next round trip (PostgreSQL only); whatever
    still waits at the end is dropped, so call `flush_writes` before committing."""
    if conn.dialect.name != "postgresql":
        yield
        return
    info = conn.connection.info
    info[_WAITING] = []
    try:
        yield
    finally:
        info.pop(_WAITING, None)


def flush_writes(conn: Connection, *statements: str) -> None:
    """Send the waiting writes, and then `statements` (plain SQL without parameters, e.g. the
    savepoint steps), in one round trip; without deferral, just run the statements."""
    waiting: list[_Write] | None = conn.connection.info.get(_WAITING)
    if waiting is None:
        driver = conn.connection.driver_connection
        assert driver is not None
        for sql in statements:
            driver.execute(sql)
        return
    waiting.extend(_Write(sql, [None], many=False) for sql in statements)
    if waiting:
        _send(conn, waiting)


def drop_writes(conn: Connection) -> None:
    """Forget the waiting writes (their unit is being rolled back to its savepoint)."""
    waiting: list[_Write] | None = conn.connection.info.get(_WAITING)
    if waiting is not None:
        waiting.clear()


def send_waiting_writes_first(conn: Connection, *_: Any) -> None:
    """A `before_cursor_execute` hook: any SQLAlchemy statement first sends the waiting writes."""
    waiting = conn.connection.info.get(_WAITING)
    if waiting:
        _send(conn, waiting)


def _bind(compiled: _Compiled, params: Params) -> Any:
    if not compiled.processors and not compiled.positional:
        return params
    values = dict(params)
    for name, processor in compiled.processors:
        values[name] = processor(values[name])
    if compiled.positional:
        return tuple(values[name] for name in compiled.names)
    return values


class CounterUpsert:
    """Add to counters in a row found by its key columns, creating it when missing, atomically on
    both backends (`INSERT … ON CONFLICT DO UPDATE SET c = c + excluded.c`), prebuilt per
    dialect; with `returning`, the counters after the addition come back."""

    def __init__(self, table: Table, keys: Sequence[str], counters: Sequence[str], returning: bool = False):
        self._by_dialect = {
            "postgresql": Prebuilt(_counter_upsert(pg_insert, table, keys, counters, returning)),
            "sqlite": Prebuilt(_counter_upsert(sqlite_insert, table, keys, counters, returning)),
        }

    def run(self, conn: Connection, params: Params | Sequence[Params]) -> list[Any]:
        return self._by_dialect[conn.dialect.name].run(conn, params)


def _counter_upsert(
    insert: Any, table: Table, keys: Sequence[str], counters: Sequence[str], returning: bool
) -> Any:
    stmt = insert(table).values({name: bindparam(name) for name in (*keys, *counters)})
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[name] for name in keys],
        set_={name: table.c[name] + stmt.excluded[name] for name in counters},
    )
    return stmt.returning(*(table.c[name] for name in counters)) if returning else stmt
