"""Group commit on SQLite under two real worker processes: racing requests never overdraw, every
answered request is in the ledger even when the gateway is killed, no hold is left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import _clear
from tests.gateway.fake_upstream import free_port
from tests.gateway.test_concurrency import ALLOWANCE, REQUESTS, _customer, _fire
from tokenclub.accounts.customers import balance_summary
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import CreditHold, UsageEvent
from tokenclub.ledger.posting import audit

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_db(_sqlite_db: Database) -> Iterator[Database]:
    _clear(_sqlite_db)
    yield _sqlite_db


@pytest.fixture
def two_workers(
    sqlite_db: Database, upstream_url: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    env.update(
        TOKENCLUB_HOME=str(tmp_path),
        TOKENCLUB_DATABASE_URL=sqlite_db.url,
        TOKENCLUB_MODEL_NAME="tiny",
        TOKENCLUB_DEFAULT_MAX_TOKENS="10",
    )
    tokenclub = os.path.join(os.path.dirname(sys.executable), "tokenclub")
    proc = subprocess.Popen(
        [tokenclub, "serve", "--port", str(port), "--workers", "2", "--upstream", upstream_url + "/v1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "gateway.log").open("w"),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _health(base) != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gateway did not start")
            time.sleep(0.2)
        yield base + "/v1", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _health(base: str) -> int:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code
    except httpx.HTTPError:
        return 0


def test_racing_requests_on_sqlite_never_overdraw_and_usage_equals_debits(
    sqlite_db: Database, two_workers: tuple[str, subprocess.Popen[bytes]]
) -> None:
    cid, _ = _customer(sqlite_db, "racer", ALLOWANCE)
    with sqlite_db.transaction() as session:
        keys = [create_key(session, cid)[0] for _ in range(8)]
    codes = asyncio.run(_fire(two_workers[0], keys, REQUESTS))
    ok, refused = codes.count(200), codes.count(429)
    assert ok + refused == REQUESTS and ok > 0 and refused > 0
    with sqlite_db.transaction() as session:
        summary = balance_summary(session, cid)
        events = list(session.scalars(select(UsageEvent).where(UsageEvent.customer_id == cid)))
        pending = session.scalar(
            select(func.count()).select_from(CreditHold).where(CreditHold.status == "pending")
        )
        assert audit(session) == []
    served = [e for e in events if e.status == "ok"]
    assert len(served) == ok
    assert len([e for e in events if e.status == "insufficient_quota"]) == refused
    assert pending == 0
    assert summary["free_tokens_used"] + summary["free_tokens_left"] == ALLOWANCE
    assert sum(e.prompt_tokens + e.completion_tokens for e in served) == summary["free_tokens_used"]


def test_answered_requests_survive_a_killed_sqlite_gateway(
    sqlite_db: Database, two_workers: tuple[str, subprocess.Popen[bytes]]
) -> None:
    cid, key = _customer(sqlite_db, "killed", 10**6)
    codes = asyncio.run(_fire(two_workers[0], [key], 50))
    os.killpg(two_workers[1].pid, signal.SIGKILL)
    two_workers[1].wait(timeout=30)
    with sqlite_db.transaction() as session:
        events = list(session.scalars(select(UsageEvent).where(UsageEvent.customer_id == cid)))
        used = balance_summary(session, cid)["free_tokens_used"]
        assert audit(session) == []
    assert codes.count(200) == len([e for e in events if e.status == "ok"]) == 50
    assert used == sum(e.prompt_tokens + e.completion_tokens for e in events)
