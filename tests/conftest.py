"""Database fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL gets a database of its own per test run (dropped at the end), so parallel or
repeated runs never collide; tests on it are skipped only when no server answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import Base
from tokenclub.ledger.posting import ensure_system_accounts

PG_ADMIN_URL = os.environ.get("TOKENCLUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPORA = Path(
    os.environ.get("TOKENCLUB_CORPORA") or Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
)
"""The open Korean corpus: `TOKENCLUB_CORPORA`, else `../shared/corpora` beside the checkout."""


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432 in CI")
        pytest.skip("PostgreSQL is not reachable")
    name = f"tc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrated(url: str) -> Database:
    db = Database(url)
    upgrade(db.engine)
    return db


def _clear(db: Database) -> None:
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        ensure_system_accounts(session)


@pytest.fixture(scope="session")
def _sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = _migrated(f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}")
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def _pg_db(pg_url: str) -> Iterator[Database]:
    db = _migrated(pg_url)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated, empty database (system accounts only) on each backend."""
    database: Database = request.getfixturevalue("_sqlite_db" if request.param == "sqlite" else "_pg_db")
    _clear(database)
    yield database


@pytest.fixture
def pg_db(_pg_db: Database) -> Iterator[Database]:
    """The PostgreSQL database alone, for tests that need real concurrency."""
    _clear(_pg_db)
    yield _pg_db
