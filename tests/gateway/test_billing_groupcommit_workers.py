"""Group commit on SQLite under two real worker processes: racing requests never overdraw, every
answered request is in the ledger even when the gateway is killed, no hold is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _clear
from tests.gateway.workers import (
    Gateway,
    assert_answered_survive_a_kill,
    assert_race_settled,
    customer,
    fire,
    more_keys,
    two_gateway_workers,
)
from tokenclub.db.engine import Database

pytestmark = pytest.mark.slow

REQUESTS = 200
ALLOWANCE = 1_000


@pytest.fixture
def sqlite_db(_sqlite_db: Database) -> Iterator[Database]:
    _clear(_sqlite_db)
    yield _sqlite_db


@pytest.fixture
def two_workers(sqlite_db: Database, upstream_url: str, tmp_path: Path) -> Iterator[Gateway]:
    with two_gateway_workers(sqlite_db, upstream_url, tmp_path) as gateway:
        yield gateway


def test_racing_requests_on_sqlite_never_overdraw_and_usage_equals_debits(
    sqlite_db: Database, two_workers: Gateway
) -> None:
    cid, _ = customer(sqlite_db, "racer", ALLOWANCE)
    codes = fire(two_workers[0], more_keys(sqlite_db, cid, 8), REQUESTS)
    assert_race_settled(sqlite_db, cid, ALLOWANCE, codes)


def test_answered_requests_survive_a_killed_sqlite_gateway(sqlite_db: Database, two_workers: Gateway) -> None:
    assert_answered_survive_a_kill(sqlite_db, two_workers, 50)
