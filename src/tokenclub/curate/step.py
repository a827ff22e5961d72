"""The step contract shared by every curation step and every executor.

A batch is a `pyarrow.Table` with at least the columns `doc_id` (string), `text` (string) and
`reject_reason` (string, null while the document is still in). Steps never remove rows: a
filter writes its reason into `reject_reason` (documents stay, decisions are attributes), and
later steps skip rows that already carry a reason. Because a step is a pure function of its
batch, the local executor and a Ray Data `map_batches(batch_format="pyarrow")` run it alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import pyarrow as pa

REJECT = "reject_reason"


class Step(ABC):
    """One stage of the pipeline; declares the columns it reads and writes."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ("text",)
    writes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def process(self, batch: pa.Table) -> pa.Table:
        """Return the batch with this step's columns written."""


def live_mask(batch: pa.Table) -> list[bool]:
    """Which rows are still in (no reject reason yet)."""
    return [reason is None for reason in batch.column(REJECT).to_pylist()]


def set_column(batch: pa.Table, name: str, values: Sequence[object], type_: pa.DataType) -> pa.Table:
    """Replace or append a column, keeping the others in place."""
    array = pa.array(values, type=type_)
    index = batch.schema.get_field_index(name)
    if index >= 0:
        return batch.set_column(index, name, array)
    return batch.append_column(name, array)


class DocumentFilter(Step):
    """Keep a document, or drop it with a reason such as ``"quality:too_short"``."""

    writes = (REJECT,)

    @abstractmethod
    def reason_to_drop(self, text: str) -> str | None:
        """None keeps the document; a short `step:rule` string drops it."""

    def process(self, batch: pa.Table) -> pa.Table:
        reasons = batch.column(REJECT).to_pylist()
        texts = batch.column("text").to_pylist()
        out = [
            reason if reason is not None else self.reason_to_drop(text)
            for reason, text in zip(reasons, texts, strict=True)
        ]
        return set_column(batch, REJECT, out, pa.string())


class TextTransform(Step):
    """Rewrite the text of every live document."""

    writes = ("text",)

    @abstractmethod
    def transform(self, text: str) -> str:
        """The new text."""

    def process(self, batch: pa.Table) -> pa.Table:
        live = live_mask(batch)
        texts = batch.column("text").to_pylist()
        out = [self.transform(t) if keep else t for t, keep in zip(texts, live, strict=True)]
        return set_column(batch, "text", out, pa.string())
