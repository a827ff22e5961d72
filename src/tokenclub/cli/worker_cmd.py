"""`tokenclub worker`: drain the ingest queue; run several on one or many machines."""

from __future__ import annotations

import os
import signal
import socket
import threading
from datetime import timedelta
from fractions import Fraction
from typing import Any

import typer

from tokenclub.cli.output import JSON_OPTION, console, print_json


def worker_command(
    once: bool = typer.Option(False, "--once", help="Stop when the queue is empty instead of waiting."),
    poll: float = typer.Option(2.0, "--poll", min=0.1, help="Seconds between looks at an empty queue."),
    name: str | None = typer.Option(None, "--name", help="Worker name in the queue (default host:pid)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Process uploaded contributions: ingest each to its receipt, reporting progress per batch.

    A worker that dies leaves its job to another one once its lease runs out; the ingest resumes
    from its last committed batch and credits nothing twice.
    """
    from tokenclub.cli.ingest_cmd import pipeline_spec
    from tokenclub.home import open_database
    from tokenclub.jobs.worker import WorkerConfig, work
    from tokenclub.settings import get_settings

    settings = get_settings()
    config = WorkerConfig(
        home=settings.home,
        spec=pipeline_spec(settings),
        credit_ratio=Fraction(str(settings.credit_ratio)),
        batch_size=settings.batch_size,
        workers=settings.workers,
        store_url=settings.store_url,
        lease=timedelta(seconds=settings.worker_lease_s),
    )
    worker_name = name or f"{socket.gethostname()}:{os.getpid()}"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report(event: str, data: dict[str, Any]) -> None:
        if json_out:
            print_json({"event": event, **data})
        else:
            console.print(f"{event}: " + ", ".join(f"{k}={v}" for k, v in data.items()))

    db = open_database(settings)
    try:
        done = work(db, config, worker_name, once=once, poll_s=poll, stop=stop, report=report)
    finally:
        db.dispose()
    report("stopped", {"worker": worker_name, "jobs": done})
