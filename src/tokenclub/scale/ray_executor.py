"""The Ray Data executor: the same steps as the local executor, mapped with `map_batches`.

The extraction stream is cut into windows of batches; each window becomes a Ray Dataset whose
blocks are the pipeline's own batches (tagged with their position), streamed through
`map_batches(batch_format="pyarrow")` on the cluster and handed back in input order. A window
bounds the driver's memory however long the upload, like the local executor's in-flight limit.
The steps are built once per Ray worker process from the picklable factory (the tokenizer is
loaded there, not shipped with every batch). Dedup decisions and commits stay in the driver, in
batch order, so the receipt cannot depend on the executor.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from tokenclub.curate.step import Step
from tokenclub.pipeline.executor import StepFactory, run_steps

T = TypeVar("T")

BATCH_TAG = "__tokenclub_batch"
"""Column that carries a batch's position in its window through Ray and is dropped after."""


def _put(target: queue.Queue[Any], value: object, stop: threading.Event) -> None:
    """Put unless the consumer has gone away (then the producer just ends)."""
    while not stop.is_set():
        try:
            target.put(value, timeout=0.1)
            return
        except queue.Full:
            continue


_worker_steps: list[tuple[StepFactory, Sequence[Step]]] = []


def _apply_steps(table: pa.Table, factory: StepFactory) -> pa.Table:
    """The `map_batches` function: the steps of an equal factory are reused within a worker process."""
    if not _worker_steps or _worker_steps[0][0] != factory:
        _worker_steps[:] = [(factory, factory())]
    return run_steps(_worker_steps[0][1], table)


class RayExecutor:
    """Maps the steps over (tag, table) pairs on Ray Data; results come back in input order."""

    def __init__(self, factory: StepFactory, parallelism: int, window: int | None = None) -> None:
        self.factory = factory
        self.parallelism = max(1, parallelism)
        self.window = window or 8 * self.parallelism

    def map(self, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]:
        """Results of window k are handed out while window k+1 is read and runs on the cluster.

        Without the overlap the driver's serial work (extraction, dedup decisions, commits) and
        the cluster's work would take turns, and the cluster would idle half the time.
        """
        done: queue.Queue[list[tuple[T, pa.Table]] | BaseException | None] = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce() -> None:
            try:
                stream = iter(items)
                while not stop.is_set() and (chunk := list(islice(stream, self.window))):
                    _put(done, list(self._run_window(chunk)), stop)
                _put(done, None, stop)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                _put(done, exc, stop)

        worker = threading.Thread(target=produce, name="ray-executor-windows", daemon=True)
        worker.start()
        try:
            while (result := done.get()) is not None:
                if isinstance(result, BaseException):
                    raise result
                yield from result
        finally:
            stop.set()
            worker.join()

    def _run_window(self, chunk: list[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]:
        import ray.data

        tagged = [
            table.append_column(BATCH_TAG, pa.array([index] * table.num_rows, pa.int32()))
            for index, (_, table) in enumerate(chunk)
            if table.num_rows
        ]
        results: dict[int, pa.Table] = {}
        if tagged:
            dataset = ray.data.from_arrow(tagged).map_batches(
                partial(_apply_steps, factory=self.factory),
                batch_size=None,
                batch_format="pyarrow",
                zero_copy_batch=True,
                num_cpus=1,
            )
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                block = cast(pa.Table, batch)
                for index in pc.unique(block.column(BATCH_TAG)).to_pylist():
                    part = block.filter(pc.equal(block.column(BATCH_TAG), index))
                    results[index] = pa.concat_tables([results[index], part]) if index in results else part
        for index, (tag, table) in enumerate(chunk):
            if index in results:
                done = results.pop(index)
                yield tag, done.drop_columns([BATCH_TAG])
            else:
                yield tag, _apply_steps(table, self.factory)
