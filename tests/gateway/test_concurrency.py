"""200 concurrent requests through two gateway worker processes on PostgreSQL race for an
allowance that covers only some of them: no overdraft, and metered usage equals ledger debits."""

from __future__ import annotations

import asyncio
import os
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


@pytest.fixture
def two_workers(pg_db: Database, upstream_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    env.update(
        TOKENCLUB_HOME=str(tmp_path),
        TOKENCLUB_DATABASE_URL=pg_db.url,
        TOKENCLUB_MODEL_NAME=MODEL,
        TOKENCLUB_DEFAULT_MAX_TOKENS="10",
    )
    tokenclub = os.path.join(os.path.dirname(sys.executable), "tokenclub")
    proc = subprocess.Popen(
        [tokenclub, "serve", "--port", str(port), "--workers", "2", "--upstream", upstream_url + "/v1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "gateway.log").open("w"),
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
        yield base + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_racing_requests_never_overdraw_and_usage_equals_debits(pg_db: Database, two_workers: str) -> None:
    with pg_db.transaction() as session:
        cid = create_customer(session, "racer").id
        grant_free_tokens(session, cid, ALLOWANCE, "grant-racer")
        key, _ = create_key(session, cid)

    async def fire() -> list[int]:
        limits = httpx.Limits(max_connections=REQUESTS)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        f"{two_workers}/completions",
                        json={"model": MODEL, "prompt": "가나", "max_tokens": 10},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    for _ in range(REQUESTS)
                )
            )
        return [a.status_code for a in answers]

    codes = asyncio.run(fire())
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
