"""The gateway's database work under concurrency: group commit against a transaction per unit.

Each simulated request runs the gateway's own two units of database work through its
`Gateway` object, as `gateway/completion.py` does: the admission (key, rate counter, hold; not
durable) and the settlement (rate counter, ledger posting, usage event; durable), c requests at
a time in one event loop, on SQLite and on PostgreSQL, for one customer (its account rows are the
hot rows) and, with `--customers N`, also spread over N customers (request i uses customer
i mod N; on PostgreSQL their units go to the customers' lanes, `gateway/dbwork.py`). No HTTP,
upstream or guard, so the rows show the database's share alone. The reference in the same run is
the scheduling the gateway had on PostgreSQL before group commit: every unit its own durable
transaction, on as many threads as the pool has connections (`PerUnit` below). Rows run in
interleaved rounds, as in bench_gateway.py.

    .venv/bin/python bench/bench_dbwork.py                  # 2 rounds, 200 (c=1) / 1,000 (c=50)
    .venv/bin/python bench/bench_dbwork.py --rounds 1 --requests 100   # a smoke run
    .venv/bin/python bench/bench_dbwork.py --customers 8    # also 8 customers
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from anyio import CapacityLimiter, to_thread
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bench_gateway import MODEL, postgres_database, provision
from tokenclub.db.engine import POSTGRES_POOL_SIZE, Database
from tokenclub.gateway.app import Gateway, GatewayConfig
from tokenclub.gateway.billing import RequestInfo, Usage
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.ledger.pricing import PriceList

T = TypeVar("T")
USAGE = Usage(20, 10)
CONCURRENCIES = (1, 50)


REFERENCE_ATTEMPTS = 20
"""Tries of one unit in the reference: at c=50 one customer's transactions on 20 threads, which no
lane orders, lock its hold, counter and account rows in different orders and deadlock often."""


class PerUnit:
    """The reference: each unit alone in a durable transaction on a pool thread, retried whole
    when PostgreSQL picks it as a deadlock victim."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.postgres = db.engine.dialect.name == "postgresql"
        self._threads: CapacityLimiter | None = None

    async def run(self, work: Callable[[Session], T], durable: bool = True, lane: int | None = None) -> T:
        if self._threads is None:
            self._threads = CapacityLimiter(POSTGRES_POOL_SIZE if self.db.url.startswith("postgres") else 1)
        return await to_thread.run_sync(self._alone, work, limiter=self._threads)

    def _alone(self, work: Callable[[Session], T]) -> T:
        for attempt in range(REFERENCE_ATTEMPTS):
            try:
                with self.db.transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) not in {"40P01", "40001"}:
                    raise
                if attempt == REFERENCE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")


async def _request(gateway: Gateway, secret: str) -> float:
    started = time.perf_counter()
    lane = await gateway.lane_of(secret)
    admitted = await gateway.in_db(lambda session: gateway.admit(session, secret, 200), False, lane)
    info = RequestInfo(uuid.uuid4().hex, admitted.key.id, MODEL, "chat", False)
    await gateway.settle(admitted, USAGE, info, started)
    return time.perf_counter() - started


async def _row(
    gateway: Gateway, secrets: list[str], concurrency: int, total: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def client(index: int, count: int) -> None:
        for i in range(count):
            latencies.append(await _request(gateway, secrets[(index * count + i) % len(secrets)]))

    started = time.perf_counter()
    await asyncio.gather(*(client(i, total // concurrency) for i in range(concurrency)))
    return time.perf_counter() - started, latencies


def _gateway(url: str, scheduling: str) -> Gateway:
    config = GatewayConfig(
        database_url=url,
        routes={MODEL: ModelRoute(MODEL, "http://127.0.0.1:9/v1", MODEL)},
        prices=PriceList(2_000, 8_000),
        limiter=DatabaseRateLimiter(Limits(10**9, 10**15)),
    )
    gateway = Gateway(config)
    if scheduling == "per unit (reference)":
        gateway.work = PerUnit(gateway.db)  # type: ignore[assignment]
    return gateway


def more_customers(url: str, count: int) -> list[str]:
    """Keys of `count` more customers, each with its own allowance."""
    from tokenclub.accounts.customers import create_customer
    from tokenclub.accounts.keys import create_key
    from tokenclub.ledger.operations import grant_free_tokens

    db = Database(url)
    keys = []
    try:
        with db.transaction() as session:
            for i in range(count):
                customer = create_customer(session, f"bench-{i}")
                grant_free_tokens(session, customer.id, 10**13, f"bench-grant-{customer.id}")
                keys.append(create_key(session, customer.id, "bench")[0])
    finally:
        db.dispose()
    return keys


Row = tuple[str, str, int, int]
"""backend, scheduling, customers, concurrency"""


async def measure(
    databases: dict[str, tuple[str, list[str]]], rounds: int, requests: int
) -> dict[Row, tuple[list[float], list[float]]]:
    results: dict[Row, tuple[list[float], list[float]]] = {}
    schedulings = ("per unit (reference)", "group commit")
    for _ in range(rounds):
        for backend, (url, keys) in databases.items():
            for scheduling in schedulings:
                gateway = _gateway(url, scheduling)
                try:
                    await _row(gateway, keys, 1, 20)  # warm the pool, the statement and key caches
                    for secrets in sorted({1, len(keys)}):
                        for concurrency in CONCURRENCIES:
                            total = requests if concurrency == 1 else requests * 5
                            elapsed, latencies = await _row(gateway, keys[:secrets], concurrency, total)
                            rates, all_latencies = results.setdefault(
                                (backend, scheduling, secrets, concurrency), ([], [])
                            )
                            rates.append(len(latencies) / elapsed)
                            all_latencies.extend(latencies)
                finally:
                    await gateway.upstream.aclose()
                    gateway.db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per row and round at c=1 (×5 at c=50)"
    )
    parser.add_argument("--customers", type=int, default=1, help="also rows spread over this many customers")
    args = parser.parse_args()
    console = Console(width=140)
    with tempfile.TemporaryDirectory(prefix="tc-bench-dbwork-") as tmp, postgres_database(True) as pg_url:
        databases = {"sqlite": f"sqlite:///{Path(tmp) / 'tokenclub.db'}"}
        if pg_url is not None:
            databases["postgresql"] = pg_url
        else:
            console.print("[yellow]PostgreSQL did not answer: SQLite rows only[/]")
        homes = {
            name: (
                url,
                [provision(Path(tmp) / name, url, guard=False), *more_customers(url, args.customers - 1)],
            )
            for name, url in databases.items()
        }
        results = asyncio.run(measure(homes, args.rounds, args.requests))
    table = Table(title=f"The gateway's database work per request (admit + settle), {args.rounds} rounds")
    for column in (
        "backend",
        "scheduling",
        "customers",
        "c",
        "req/s",
        "req/s per round",
        "p50 ms",
        "p99 ms",
        "÷ reference",
    ):
        table.add_column(column, justify="left" if column in ("backend", "scheduling") else "right")
    for (backend, scheduling, customers, concurrency), (rates, latencies) in results.items():
        reference = statistics.mean(results[(backend, "per unit (reference)", customers, concurrency)][0])
        ordered = sorted(latencies)
        table.add_row(
            backend,
            scheduling,
            str(customers),
            str(concurrency),
            f"{statistics.mean(rates):.0f}",
            "–".join(f"{rate:.0f}" for rate in (min(rates), max(rates))),
            f"{statistics.median(ordered) * 1000:.2f}",
            f"{ordered[int(len(ordered) * 0.99) - 1] * 1000:.2f}",
            f"{statistics.mean(rates) / reference:.2f}×",
        )
    console.print(table)


if __name__ == "__main__":
    main()
