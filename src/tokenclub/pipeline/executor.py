"""The local executor: runs the step list over batches on a process per core, in order.

Steps are built once per worker process from a picklable factory, so heavy state (the
tokenizer) is loaded per process rather than shipped with every batch. At most
`2 × workers` batches are in flight, which keeps memory bounded however long the stream.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import pyarrow as pa

from tokenclub.curate.step import Step

StepFactory = Callable[[], Sequence[Step]]
T = TypeVar("T")
R = TypeVar("R")

_worker_steps: Sequence[Step] = ()


def run_steps(steps: Sequence[Step], table: pa.Table) -> pa.Table:
    """Apply every step in order: the pure heart of every executor."""
    for step in steps:
        table = step.process(table)
    return table


def _init_worker(factory: StepFactory) -> None:
    global _worker_steps
    _worker_steps = factory()


def _run_in_worker(table: pa.Table) -> pa.Table:
    return run_steps(_worker_steps, table)


class Executor(Protocol):
    """Maps the steps over a stream of (tag, table) pairs, yielding results in input order."""

    def map(self, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]: ...


@dataclass(frozen=True, slots=True)
class Readers:
    """Processes that read an upload's files ahead: `submit(fn, *args)` runs `fn` on one of the
    `count` (`ingest/extraction.py`)."""

    submit: Callable[..., Future[Any]]
    count: int


@runtime_checkable
class ReadingExecutor(Protocol):
    """An executor whose processes can read an upload's files while its `map` runs."""

    def readers(self) -> Readers | None:
        """Its readers, or None where its processes should not read the files."""
        ...


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class LocalExecutor:
    """Maps the steps over a stream of (tag, table) pairs and yields results in input order."""

    def __init__(self, factory: StepFactory, workers: int | None = None) -> None:
        self.factory = factory
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def readers(self) -> Readers | None:
        """Its worker processes, when there are several."""
        return Readers(self.submit, self.workers) if self.workers > 1 else None

    def submit(self, fn: Callable[..., R], /, *args: object) -> Future[R]:
        """Run `fn(*args)` on one of the processes of the running `map` (an upload's files are
        read there, ahead of the steps); only while `map` reads its items, with more than one
        worker."""
        if self._pool is None:
            raise RuntimeError("submit needs a map running on worker processes")
        return self._pool.submit(fn, *args)

    def map(self, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]:
        if self.workers == 1:
            steps = self.factory()
            for tag, table in items:
                yield tag, run_steps(steps, table)
            return
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(self.factory,)
        ) as pool:
            self._pool = pool
            try:
                pending: deque[tuple[T, Future[pa.Table]]] = deque()
                for tag, table in items:
                    pending.append((tag, pool.submit(_run_in_worker, table)))
                    if len(pending) >= 2 * self.workers:
                        done_tag, future = pending.popleft()
                        yield done_tag, future.result()
                while pending:
                    done_tag, future = pending.popleft()
                    yield done_tag, future.result()
            finally:
                self._pool = None
