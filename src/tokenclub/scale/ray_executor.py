"""The Ray executor: the same steps as the local executor, on a pool of long-lived Ray actors.

Each actor builds the steps once from the picklable factory (the tokenizer is loaded there, not
shipped with every batch) and then maps batch after batch: there is no per-batch or per-window
planning, which is what a Ray Data execution per window cost (0.3–0.5 s each, more than the
steps of a window on a small cluster). Batches go to the actors in turn with at most `window`
in flight and come back in input order; the in-flight bound keeps the driver's memory flat
however long the upload, and while the driver extracts and commits, the actors work through
the batches already sent. Dedup decisions and commits stay in the driver, in batch order, so
the receipt cannot depend on the executor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pyarrow as pa

from tokenclub.pipeline.executor import Readers, StepFactory, run_steps

T = TypeVar("T")
R = TypeVar("R")


class _Steps:
    """The actor: one step list, built once, applied to every batch it is sent."""

    def __init__(self, factory: StepFactory) -> None:
        self.steps = factory()

    def process(self, table: pa.Table) -> pa.Table:
        return run_steps(self.steps, table)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Any other work sent to the actor (an upload's file read ahead of its batches)."""
        return fn(*args)


class RayExecutor:
    """Maps the steps over (tag, table) pairs on `parallelism` Ray actors; results in input order.

    `shares_disk`: every actor runs on this machine (a local instance an ingest started), so
    the actors may read an upload's files. On a cluster they do not: the raw store, and its key
    when it is sealed, stay on the driver's machine."""

    def __init__(
        self, factory: StepFactory, parallelism: int, window: int | None = None, shares_disk: bool = False
    ) -> None:
        self.factory = factory
        self.parallelism = max(1, parallelism)
        self.window = max(window or 2 * self.parallelism, 1)
        self.shares_disk = shares_disk
        self._actors: list[Any] = []
        self._turn = 0

    def readers(self) -> Readers | None:
        """Its actors, when there are several and they run on this machine."""
        if self.parallelism < 2 or not self.shares_disk:
            return None
        return Readers(self.submit, self.parallelism)

    def submit(self, fn: Callable[..., R], /, *args: object) -> Future[R]:
        """Run `fn(*args)` on the actors of the running `map`, in turn; only while `map` reads its
        items."""
        if not self._actors:
            raise RuntimeError("submit needs a map running on actors")
        self._turn += 1
        future: Future[R] = self._actors[self._turn % len(self._actors)].call.remote(fn, *args).future()
        return future

    def map(self, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]:
        import ray

        actor = ray.remote(num_cpus=1)(_Steps)
        actors: list[Any] = [actor.remote(self.factory) for _ in range(self.parallelism)]
        self._actors = actors
        pending: deque[tuple[T, Any]] = deque()
        try:
            for index, (tag, table) in enumerate(items):
                pending.append((tag, actors[index % len(actors)].process.remote(table)))
                if len(pending) >= self.window:
                    done, ref = pending.popleft()
                    yield done, ray.get(ref)
            while pending:
                done, ref = pending.popleft()
                yield done, ray.get(ref)
        finally:
            self._actors = []
            for handle in actors:
                ray.kill(handle)
