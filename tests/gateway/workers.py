"""Two real gateway worker processes on one database, and the checks every backend must pass
when requests race them or the gateway is killed under them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.gateway.conftest import MODEL
from tests.gateway.fake_upstream import free_port
from tokenclub.accounts.customers import balance_summary, create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import CreditHold, UsageEvent
from tokenclub.home import init_home
from tokenclub.ledger.operations import grant_free_tokens
from tokenclub.ledger.posting import audit
from tokenclub.settings import Settings

Gateway = tuple[str, subprocess.Popen[bytes]]


@contextmanager
def two_gateway_workers(db: Database, upstream_url: str, home: Path, **env_extra: str) -> Iterator[Gateway]:
    """`tokenclub serve --workers 2` as a real program; yields its /v1 URL and the process."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    env.update(
        TOKENCLUB_HOME=str(home),
        TOKENCLUB_DATABASE_URL=db.url,
        TOKENCLUB_MODEL_NAME=MODEL,
        TOKENCLUB_DEFAULT_MAX_TOKENS="10",
        **env_extra,
    )
    # The gateway mounts the portal, which seals staged uploads: the home needs its master key.
    init_home(Settings(home=home, database_url=db.url))
    tokenclub = os.path.join(os.path.dirname(sys.executable), "tokenclub")
    proc = subprocess.Popen(
        [tokenclub, "serve", "--port", str(port), "--workers", "2", "--upstream", upstream_url + "/v1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(home / "gateway.log").open("w"),
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


def customer(db: Database, name: str, free: int) -> tuple[int, str]:
    with db.transaction() as session:
        cid = create_customer(session, name).id
        grant_free_tokens(session, cid, free, f"grant-{name}")
        key, _ = create_key(session, cid)
    return cid, key


def more_keys(db: Database, cid: int, count: int) -> list[str]:
    with db.transaction() as session:
        return [create_key(session, cid)[0] for _ in range(count)]


def fire(base: str, keys: list[str], count: int) -> list[int]:
    """`count` completions at once, spread over `keys`; their status codes in order."""

    async def run() -> list[int]:
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

    return asyncio.run(run())


def assert_race_settled(db: Database, cid: int, allowance: int, codes: list[int]) -> None:
    """Some requests were served and the rest refused for quota, none overdrew the allowance,
    metered usage equals the ledger's debits and no hold is left pending."""
    ok, refused = codes.count(200), codes.count(429)
    assert ok + refused == len(codes) and ok > 0 and refused > 0
    with db.transaction() as session:
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
    assert summary["free_tokens_used"] + summary["free_tokens_left"] == allowance
    assert sum(e.prompt_tokens + e.completion_tokens for e in served) == summary["free_tokens_used"]
    assert summary["paid_tokens"] == 0 and summary["receivable_krw"] == 0


def assert_answered_survive_a_kill(db: Database, gateway: Gateway, count: int) -> None:
    """Every request answered 200 before a SIGKILL of the whole gateway is in the ledger."""
    cid, key = customer(db, "killed", 10**6)
    codes = fire(gateway[0], [key], count)
    os.killpg(gateway[1].pid, signal.SIGKILL)
    gateway[1].wait(timeout=30)
    with db.transaction() as session:
        events = list(session.scalars(select(UsageEvent).where(UsageEvent.customer_id == cid)))
        used = balance_summary(session, cid)["free_tokens_used"]
        assert audit(session) == []
    assert codes.count(200) == len([e for e in events if e.status == "ok"]) == count
    assert used == sum(e.prompt_tokens + e.completion_tokens for e in events)
