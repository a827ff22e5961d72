"""200 concurrent requests through two gateway worker processes on PostgreSQL race for an
allowance that covers only some of them: no overdraft, and metered usage equals ledger debits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REQUESTS = 200
ALLOWANCE = 1_000
RPM = 30


@pytest.fixture
def gateway_process(pg_db: Database, upstream_url: str, tmp_path: Path) -> Iterator[Gateway]:
    with two_gateway_workers(pg_db, upstream_url, tmp_path, TOKENCLUB_RATE_LIMIT_RPM=str(RPM)) as gateway:
        yield gateway


def test_racing_requests_never_overdraw_and_usage_equals_debits(
    pg_db: Database, gateway_process: Gateway
) -> None:
    cid, _ = customer(pg_db, "racer", ALLOWANCE)
    codes = fire(gateway_process[0], more_keys(pg_db, cid, REQUESTS // RPM + 1), REQUESTS)
    assert_race_settled(pg_db, cid, ALLOWANCE, codes)


def test_rate_limit_holds_across_both_workers(pg_db: Database, gateway_process: Gateway) -> None:
    _, key = customer(pg_db, "limited", 10**6)
    if time.time() % 60 > 45:  # keep the burst inside one minute window
        time.sleep(61 - time.time() % 60)
    codes = fire(gateway_process[0], [key], 3 * RPM)
    assert (codes.count(200), codes.count(429)) == (RPM, 2 * RPM)


def test_answered_requests_are_in_the_ledger_even_if_the_gateway_is_killed(
    pg_db: Database, gateway_process: Gateway
) -> None:
    assert_answered_survive_a_kill(pg_db, gateway_process, 20)
