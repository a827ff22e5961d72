"""A snapshot's documents, streamed part by part through the corpus store's reading API.

Without a seed the order is the snapshot's. With a seed the order is shuffled reproducibly in
bounded memory: the parts are permuted, then documents are shuffled within windows of at most
`window` documents. Same seed, same snapshot, same window: same order, on any machine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from tokenclub.corpus.store import CorpusStore
from tokenclub.export.snapshot import PartInfo

EXPORT_COLUMNS = ("doc_id", "partner_id", "upload_id", "text", "tokens")
DEFAULT_SHUFFLE_WINDOW = 65_536
BATCH_ROWS = 1_024


def _slices(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, BATCH_ROWS):
        yield table.slice(start, BATCH_ROWS)


def iter_snapshot(
    store: CorpusStore,
    parts: Sequence[PartInfo],
    seed: int | None = None,
    window: int = DEFAULT_SHUFFLE_WINDOW,
) -> Iterator[pa.Table]:
    """Batches of `EXPORT_COLUMNS`; every document of every part exactly once."""
    if seed is None:
        for part in parts:
            yield from _slices(store.read_part(part.upload_id, part.batch_seq, EXPORT_COLUMNS))
        return
    rng = np.random.default_rng(seed)
    buffered: list[pa.Table] = []
    rows = 0
    for index in rng.permutation(len(parts)):
        part = parts[int(index)]
        table = store.read_part(part.upload_id, part.batch_seq, EXPORT_COLUMNS)
        buffered.append(table)
        rows += table.num_rows
        if rows >= window:
            yield from _shuffled(pa.concat_tables(buffered), rng)
            buffered, rows = [], 0
    if buffered:
        yield from _shuffled(pa.concat_tables(buffered), rng)


def _shuffled(table: pa.Table, rng: np.random.Generator) -> Iterator[pa.Table]:
    yield from _slices(table.take(pa.array(rng.permutation(table.num_rows))).combine_chunks())
