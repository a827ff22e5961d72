"""Where one request's time goes, step by step: a c=1 timeline in-process, two ways side by side.

Runs the real app in this process (as `bench_gateway_trace.py` does: the leak guard active on the
corpora folder's petitions) in front of the gateway bench's fake upstream, and marks, for every
request, the time from its start to each unit of database work's start and end, the upstream
call's start, each read of a stream and its end, and each message sent to the client. A row is
the median of a mark over the requests. Each backend and mode runs in blocks that alternate
between SQLite's lone path (a request served alone runs its units on the event loop,
`gateway/dbwork.py`) and every unit on its lane's thread, in one process: the two columns see
the same minutes, which end-to-end rows on a shared machine do not. On PostgreSQL, which has no
lone path, both columns take the thread: their difference is the method's own noise.

    PYTHONPATH=src .venv/bin/python bench/bench_gateway_timeline.py
    PYTHONPATH=src .venv/bin/python bench/bench_gateway_timeline.py --no-postgres --requests 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench_gateway import MODEL, Target, request_body
from bench_gateway_trace import backends, in_process_app

BLOCK = 50
WAYS = ("lone path", "thread")


class Timeline:
    """Marks of the request in flight, then their times from its start across requests."""

    def __init__(self) -> None:
        self.started = 0.0
        self.marks: dict[str, list[float]] = defaultdict(list)
        self.recording = False

    def mark(self, name: str) -> None:
        if self.recording:
            self.marks[name].append(time.perf_counter() - self.started)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(times) for name, times in self.marks.items()}


def instrument(timeline: Timeline) -> None:
    """Mark units of work, upstream calls and reads (classes patched for this process)."""
    from tokenclub.gateway.service import Gateway
    from tokenclub.gateway.upstream import Upstream

    in_db, complete, stream = Gateway.in_db, Upstream.complete, Upstream.stream

    async def timed_in_db(self: Gateway, work: Callable[[Any], Any], *args: Any, **kwargs: Any) -> Any:
        name = getattr(work, "__qualname__", "unit").replace(".<locals>", "").rsplit(".", 1)[-1]
        timeline.mark(f"unit {name}: start")
        try:
            return await in_db(self, work, *args, **kwargs)
        finally:
            timeline.mark(f"unit {name}: end")

    async def timed_complete(self: Upstream, *args: Any, **kwargs: Any) -> Any:
        timeline.mark("upstream: start")
        try:
            return await complete(self, *args, **kwargs)
        finally:
            timeline.mark("upstream: whole reply read")

    async def timed_stream(self: Upstream, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        timeline.mark("upstream: start")
        reads = 0
        async for events in stream(self, *args, **kwargs):
            reads += 1
            timeline.mark(f"upstream: read {reads}")
            yield events
        timeline.mark("upstream: stream ended")

    Gateway.in_db = timed_in_db  # type: ignore[method-assign]
    Upstream.complete = timed_complete  # type: ignore[method-assign]
    Upstream.stream = timed_stream  # type: ignore[method-assign]


def marking_app(app: Any, timeline: Timeline) -> Callable[..., Any]:
    """The app, with the request's start and every message it sends marked."""

    async def marked(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        timeline.started = time.perf_counter()
        sent = 0

        async def marked_send(message: Any) -> None:
            nonlocal sent
            sent += 1
            timeline.mark(f"client: message {sent} ({message['type'].removeprefix('http.response.')})")
            await send(message)

        await app(scope, receive, marked_send)
        timeline.mark("app returned")

    return marked


async def run_backend(
    url: str, home: Path, secret: str, upstream: str, requests: int, timeline: Timeline
) -> dict[tuple[str, str], dict[str, float]]:
    app = in_process_app(url, home, upstream)
    gateway = app.state.gateway
    lone = gateway.work.alone
    results: dict[tuple[str, str], dict[str, float]] = {}
    headers = {"authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=marking_app(app, timeline))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        for mode in ("non-stream", "stream"):
            body = request_body(Target("tokenclub", "", 0, MODEL), mode)
            collected: dict[str, Timeline] = {way: Timeline() for way in WAYS}
            for block in range(-1, max(1, requests // BLOCK) * 2):
                way = WAYS[block % 2]
                gateway.work.alone = lone if way == "lone path" else (lambda: False)
                timeline.marks = collected[way].marks
                timeline.recording = block >= 0  # the first block warms up
                for _ in range(BLOCK):
                    reply = await client.post("/v1/chat/completions", json=body, headers=headers)
                    assert reply.status_code == 200, reply.text[:300]
                await gateway.drain()
            for way in WAYS:
                results[(mode, way)] = collected[way].medians()
    return results


def report(backend: str, results: dict[tuple[str, str], dict[str, float]], console: Console) -> None:
    for mode in ("non-stream", "stream"):
        lone, thread = results[(mode, WAYS[0])], results[(mode, WAYS[1])]
        table = Table(title=f"{backend}, {mode}: ms from the request's start (median), c=1")
        for column in ("mark", *WAYS, "difference"):
            table.add_column(column, justify="left" if column == "mark" else "right")
        for name in sorted(lone.keys() | thread.keys(), key=lambda n: lone.get(n, thread.get(n, 0.0))):
            a, b = lone.get(name), thread.get(name)
            table.add_row(
                name,
                f"{a * 1000:.3f}" if a is not None else "–",
                f"{b * 1000:.3f}" if b is not None else "–",
                f"{(a - b) * 1000:+.3f}" if a is not None and b is not None else "",
            )
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per way, backend and mode")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    console = Console(width=140)
    timeline = Timeline()
    instrument(timeline)
    with backends("tc-timeline-", not args.no_sqlite, not args.no_postgres, True) as (upstream, homes):
        for url, home, secret in homes:
            results = asyncio.run(run_backend(url, home, secret, upstream, args.requests, timeline))
            report(url.split(":", 1)[0].split("+")[0], results, console)


if __name__ == "__main__":
    main()
