"""Where one gateway request's database time goes: round trips and time per unit of work.

Runs the real app in this process (the same `create_app` as `tokenclub serve`, the leak guard
active on the corpora folder's petitions unless --no-guard) in front of the gateway bench's fake
upstream, sends requests one at a time through an in-process ASGI client, and counts, per unit
of database work (admission, settlement, ...), the round trips to PostgreSQL (each wait of
psycopg for the server), the time spent waiting for the server and the unit's wall time in its
thread, and the request's wall time in all.

    PYTHONPATH=src .venv/bin/python bench/bench_gateway_trace.py --requests 200
    PYTHONPATH=src .venv/bin/python bench/bench_gateway_trace.py --no-postgres   # SQLite only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.table import Table

from bench_gateway import (
    MODEL,
    Target,
    postgres_database,
    provision,
    request_body,
    start_reporting_port,
    stop,
)

T = TypeVar("T")


@dataclass
class Phase:
    runs: int = 0
    trips: int = 0
    wait_s: float = 0.0
    wall_s: list[float] = field(default_factory=list)


class Tracer:
    """Counts round trips and server waits per unit of work, on the writer thread."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.phases: dict[str, Phase] = defaultdict(Phase)
        self.trips = 0
        self.wait_s = 0.0
        self.statements: dict[tuple[str, str], list[float]] = defaultdict(list)

    def trip(self, seconds: float) -> None:
        name = getattr(self.local, "phase", None)
        self.trips += 1
        self.wait_s += seconds
        if name is not None:
            phase = self.phases[name]
            phase.trips += 1
            phase.wait_s += seconds
            sql = getattr(self.local, "sql", "?")
            self.statements[(name, sql)].append(seconds)
            self.local.sql = "(implicit: BEGIN, COMMIT, fetch)"

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.local.phase = name
        started = time.perf_counter()
        try:
            yield
        finally:
            phase = self.phases[name]
            phase.runs += 1
            phase.wall_s.append(time.perf_counter() - started)
            self.local.phase = "batch (begin, lock, commit)"


def _watched(gen: Any, waited: list[bool]) -> Any:
    """`gen`, noting in `waited` whether it ever waited for the socket."""
    try:
        value = next(gen)
    except StopIteration as stop:
        return stop.value
    waited[0] = True
    while True:
        sent = yield value
        try:
            value = gen.send(sent)
        except StopIteration as stop:
            return stop.value


def instrument(tracer: Tracer) -> None:
    """Count every wait of psycopg on the server."""
    import psycopg

    original_wait = psycopg.Connection.wait

    def wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        waited = [False]
        started = time.perf_counter()
        try:
            return original_wait(self, _watched(gen, waited), *args, **kwargs)
        finally:
            if waited[0]:  # settings such as autocommit are waits that never touch the socket
                tracer.trip(time.perf_counter() - started)

    psycopg.Connection.wait = wait  # type: ignore[method-assign]

    def naming(original: Callable[..., Any]) -> Callable[..., Any]:
        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            text = (
                query
                if isinstance(query, str)
                else bytes(query).decode()
                if isinstance(query, bytes)
                else str(query)
            )
            tracer.local.sql = " ".join(text.split())[:90]
            return original(self, query, *args, **kwargs)

        return execute

    psycopg.Cursor.execute = naming(psycopg.Cursor.execute)  # type: ignore[method-assign]
    psycopg.Cursor.executemany = naming(psycopg.Cursor.executemany)  # type: ignore[method-assign]
    psycopg.Connection.execute = naming(psycopg.Connection.execute)  # type: ignore[method-assign]


def wrap_units(tracer: Tracer) -> None:
    """Name each unit of work by the function that made it."""
    from tokenclub.gateway.dbwork import DatabaseWork

    original_run = DatabaseWork.run

    async def run(self: DatabaseWork, work: Callable[[Any], T], *args: Any, **kwargs: Any) -> T:
        name = getattr(work, "__qualname__", "unit").replace(".<locals>", "")

        def named(session: Any) -> T:
            with tracer.phase(name):
                return work(session)

        return await original_run(self, named, *args, **kwargs)

    DatabaseWork.run = run  # type: ignore[method-assign]


async def drive(app: Any, secret: str, mode: str, requests: int) -> list[float]:
    target = Target("tokenclub", "", 0, MODEL)
    body = request_body(target, mode)
    headers = {"authorization": f"Bearer {secret}"}
    took: list[float] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for _ in range(requests):
            started = time.perf_counter()
            reply = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert reply.status_code == 200, reply.text[:300]
            took.append(time.perf_counter() - started)
    return took


def in_process_app(url: str, home: Path, upstream: str) -> Any:
    """The app `tokenclub serve` runs, built in this process for `home`'s database in front of
    `upstream`; rate limits out of the way but still counted, as in the gateway bench."""
    from tokenclub.gateway.app import create_app
    from tokenclub.gateway.config import gateway_config
    from tokenclub.settings import Settings

    os.environ.update(TOKENCLUB_RATE_LIMIT_RPM=str(10**9), TOKENCLUB_RATE_LIMIT_TPM=str(10**15))
    settings = Settings(home=home, database_url=url, upstream_url=upstream + "/v1", model_name=MODEL)
    return create_app(gateway_config(settings, upstream + "/v1", MODEL))


@contextlib.contextmanager
def backends(
    prefix: str, sqlite: bool, postgres: bool, guard: bool
) -> Iterator[tuple[str, list[tuple[str, Path, str]]]]:
    """The gateway bench's fake upstream, running, and a provisioned home for each backend: the
    upstream's URL and, per backend, (database URL, home, key)."""
    me = [sys.executable, str(Path(__file__).resolve().with_name("bench_gateway.py"))]
    with tempfile.TemporaryDirectory(prefix=prefix) as folder, postgres_database(postgres) as pg:
        tmp = Path(folder)
        server, port = start_reporting_port("upstream", [*me, "--serve", "upstream"], tmp, dict(os.environ))
        try:
            urls = [f"sqlite:///{tmp / 'tokenclub.db'}"] if sqlite else []
            urls += [pg] if pg else []
            homes = [(url, tmp / f"home-{url.split(':', 1)[0]}") for url in urls]
            yield (
                f"http://127.0.0.1:{port}",
                [(url, home, provision(home, url, guard)) for url, home in homes],
            )
        finally:
            stop(server)


async def trace(
    url: str, home: Path, secret: str, upstream: str, requests: int, console: Console, verbose: bool
) -> None:
    app = in_process_app(url, home, upstream)
    tracer: Tracer = app.state.tracer
    async with app.router.lifespan_context(app):
        for mode in ("non-stream", "stream"):
            await drive(app, secret, mode, 20)
            tracer.phases.clear()
            tracer.trips, tracer.wait_s = 0, 0.0
            tracer.statements.clear()
            took = await drive(app, secret, mode, requests)
            await app.state.gateway.drain()
            table = Table(title=f"{url.split(':', 1)[0]}, {mode}: per request, {requests} requests at c=1")
            for column in (
                "unit of work",
                "units/request",
                "round trips/unit",
                "server wait ms/unit",
                "wall ms/unit (median)",
            ):
                table.add_column(column, justify="left" if column == "unit of work" else "right")
            for name, phase in sorted(tracer.phases.items()):
                runs = max(phase.runs, 1)
                table.add_row(
                    name,
                    f"{phase.runs / requests:.2f}",
                    f"{phase.trips / runs:.1f}",
                    f"{phase.wait_s * 1000 / runs:.2f}",
                    f"{statistics.median(phase.wall_s) * 1000:.2f}" if phase.wall_s else "–",
                )
            table.add_row(
                "all, per request",
                "",
                f"{tracer.trips / requests:.1f}",
                f"{tracer.wait_s * 1000 / requests:.2f}",
                f"request p50 {statistics.median(took) * 1000:.2f}",
            )
            console.print(table)
            if verbose:
                detail = Table(title="round trips by statement (per request)")
                for column in ("unit", "statement", "trips/request", "ms/request"):
                    detail.add_column(column, justify="left" if column in ("unit", "statement") else "right")
                for (unit, sql), waits in sorted(tracer.statements.items()):
                    detail.add_row(
                        unit[:34], sql, f"{len(waits) / requests:.2f}", f"{sum(waits) * 1000 / requests:.3f}"
                    )
                console.print(detail)
            tracer.statements.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-guard", action="store_true")
    parser.add_argument("--statements", action="store_true", help="also list round trips by statement")
    args = parser.parse_args()
    console = Console(width=160)
    tracer = Tracer()
    instrument(tracer)
    wrap_units(tracer)
    from tokenclub.gateway import app as app_module

    create = app_module.create_app

    def create_traced(config: Any) -> Any:
        app = create(config)
        app.state.tracer = tracer
        return app

    app_module.create_app = create_traced
    with backends("tc-trace-", not args.no_sqlite, not args.no_postgres, not args.no_guard) as (
        upstream,
        homes,
    ):
        for url, home, secret in homes:
            asyncio.run(trace(url, home, secret, upstream, args.requests, console, args.statements))


if __name__ == "__main__":
    main()
