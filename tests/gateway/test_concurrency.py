"""200 concurrent requests through two gateway worker processes on PostgreSQL race for an
allowance that covers only some of them: no overdraft, and metered usage equals ledger debits."""

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

from tests.gateway.conftest import MODEL
from tests.gateway.fake_upstream import free_port
from tokenclub.accounts.customers import balance_summary, create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import CreditHold, UsageEvent
from tokenclub.ledger.operations import grant_free_tokens
from tokenclub.ledger.posting import audit

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REQUESTS = 200
ALLOWANCE = 1_000


RPM = 30


@pytest.fixture
def gateway_process(
    pg_db: Database, upstream_url: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    env.update(
        TOKENCLUB_HOME=str(tmp_path),
        TOKENCLUB_DATABASE_URL=pg_db.url,
        TOKENCLUB_MODEL_NAME=MODEL,
        TOKENCLUB_DEFAULT_MAX_TOKENS="10",
        TOKENCLUB_RATE_LIMIT_RPM=str(RPM),
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
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gateway did not start")
            time.sleep(0.2)
        yield base + "/v1", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _customer(db: Database, name: str, free: int) -> tuple[int, str]:
    with db.transaction() as session:
        cid = create_customer(session, name).id
        grant_free_tokens(session, cid, free, f"grant-{name}")
        key, _ = create_key(session, cid)
    return cid, key


async def _fire(base: str, keys: list[str], count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{base}/completions",
                    json={"model": MODEL, "prompt": "가나", "max_tokens": 10},
                    headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                )
                for i in range(count)
            )
        )
    return [a.status_code for a in answers]


def test_racing_requests_never_overdraw_and_usage_equals_debits(
    pg_db: Database, gateway_process: tuple[str, subprocess.Popen[bytes]]
) -> None:
    cid, _ = _customer(pg_db, "racer", ALLOWANCE)
    with pg_db.transaction() as session:
        keys = [create_key(session, cid)[0] for _ in range(REQUESTS // RPM + 1)]
    codes = asyncio.run(_fire(gateway_process[0], keys, REQUESTS))
    ok, refused = codes.count(200), codes.count(429)
    assert ok + refused == REQUESTS and ok > 0 and refused > 0
    with pg_db.transaction() as session:
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
    assert summary["free_tokens_left"] >= 0
    assert summary["free_tokens_used"] + summary["free_tokens_left"] == ALLOWANCE
    assert sum(e.prompt_tokens + e.completion_tokens for e in served) == summary["free_tokens_used"]
    assert summary["paid_tokens"] == 0 and summary["receivable_krw"] == 0


def test_rate_limit_holds_across_both_workers(
    pg_db: Database, gateway_process: tuple[str, subprocess.Popen[bytes]]
) -> None:
    _, key = _customer(pg_db, "limited", 10**6)
    if time.time() % 60 > 45:  # keep the burst inside one minute window
        time.sleep(61 - time.time() % 60)
    codes = asyncio.run(_fire(gateway_process[0], [key], 3 * RPM))
    assert (codes.count(200), codes.count(429)) == (RPM, 2 * RPM)


def test_answered_requests_are_in_the_ledger_even_if_the_gateway_is_killed(
    pg_db: Database, gateway_process: tuple[str, subprocess.Popen[bytes]]
) -> None:
    cid, key = _customer(pg_db, "killed", 10**6)
    codes = asyncio.run(_fire(gateway_process[0], [key], 20))
    os.killpg(gateway_process[1].pid, signal.SIGKILL)
    gateway_process[1].wait(timeout=30)
    with pg_db.transaction() as session:
        events = list(session.scalars(select(UsageEvent).where(UsageEvent.customer_id == cid)))
        used = balance_summary(session, cid)["free_tokens_used"]
    assert codes.count(200) == len([e for e in events if e.status == "ok"]) == 20
    assert used == sum(e.prompt_tokens + e.completion_tokens for e in events)
