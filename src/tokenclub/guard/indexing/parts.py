"""Committed corpus parts into the guard index: a group of them in one add, logged as indexed.

This is all an ingest's indexing worker process needs, so it imports no database layer and no
settings (`guard/indexing/background.py`); keeping the index in step with the database is
`build.py`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from tokenclub.corpus.store import CorpusStore
from tokenclub.guard.indexing.index import IndexShape, log_parts, logged_parts, writer

GROUP_TOKENS = 100_000
"""Accepted tokens of corpus parts indexed in one add (an ingest's committed batches, a
rebuild's parts): an ingest's batches keep few documents each (one in seven on the bench
corpus), and the index costs less per document in larger adds, up to a few hundred documents
(docs/scale.md)."""

COLUMNS = ("text", "partner_id", "tokens")


def guard_root(home: Path) -> Path:
    return home / "guard"


def rows(table: pa.Table) -> tuple[list[str], list[int], list[int]]:
    """A part's texts, partners and counted tokens, as `GuardIndex.add` takes them."""
    texts = [t or "" for t in table.column("text").to_pylist()]
    partners = [int(p) for p in table.column("partner_id").to_pylist()]
    tokens = (
        [int(t or 0) for t in table.column("tokens").to_pylist()] if "tokens" in table.column_names else []
    )
    return texts, partners, tokens


def part_name(upload_id: str, seq: int) -> str:
    """How the parts log names a corpus part."""
    return f"{upload_id}/{seq}"


def index_parts(
    home: Path, store: CorpusStore, upload_id: str, seqs: Sequence[int], shape: IndexShape, once: bool = False
) -> int:
    """Index committed corpus parts of one upload in one add and log them as indexed, so `sync`
    skips them; returns grams added. With `once`, parts already logged are left out (a sync
    racing an ingest; the writer lock orders them). `shape` applies if no index exists yet.

    One add for several small parts pays the index's costs per add once (the writer's open and
    flush, a document-table run, each array operation's fixed cost): every petition indexed in
    parts of 16 documents took 3.4 CPU s, in parts of 64 or 256 2.2 (docs/scale.md)."""
    names = [part_name(upload_id, seq) for seq in seqs]
    tables = [store.read_part(upload_id, seq, COLUMNS) for seq in seqs]
    with writer(guard_root(home), shape.params, shape.capacity, shape.commonness) as index:
        if once:
            logged = logged_parts(index)
            tables = [table for name, table in zip(names, tables, strict=True) if name not in logged]
            names = [name for name in names if name not in logged]
        if not names:
            return 0
        texts, partners, tokens = rows(pa.concat_tables(tables))
        added = index.add(texts, partners, tokens)
        log_parts(index, names)
    return added
