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

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from tokenclub.curate.step import Step
from tokenclub.pipeline.executor import StepFactory, run_steps

T = TypeVar("T")

BATCH_TAG = "__tokenclub_batch"
"""Column that carries a batch's position in its window through Ray and is dropped after."""

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
        self.window = window or 4 * self.parallelism

    def map(self, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, pa.Table]]:
        stream = iter(items)
        while chunk := list(islice(stream, self.window)):
            yield from self._run_window(chunk)

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
