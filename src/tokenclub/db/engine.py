"""Engine and session set-up for the embedded SQLite default and for PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another process's write lock before it fails."""
POSTGRES_POOL_SIZE = 20
POSTGRES_MAX_OVERFLOW = 10


def make_engine(url: str) -> Engine:
    """An engine tuned per backend.

    SQLite runs in WAL mode and every transaction starts with BEGIN IMMEDIATE, so that two
    writers queue on the lock instead of failing when a reader upgrades to a writer.
    """
    if url.startswith("sqlite"):
        waits = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        engine = create_engine(url, connect_args=waits)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL still survives a process crash (every commit is in the log);
            # only an operating-system crash can lose the last commits, for far fewer fsyncs.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip per checkout; a dead connection surfaces as an error
    # on first use and the pool drops it.
    return create_engine(
        url, pool_size=POSTGRES_POOL_SIZE, max_overflow=POSTGRES_MAX_OVERFLOW, pool_recycle=3600
    )


class Database:
    """Owns the engine; hands out sessions whose transaction commits on success."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One atomic unit of work: everything inside commits together or not at all."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
