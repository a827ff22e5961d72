"""Accepted text into the guard index: a group of committed parts in one add, logged as indexed.

This is all an ingest's indexing worker process needs (`guard/indexing/background.py`), so it
imports no database layer, no settings, no corpus store and no Arrow at run time: the ingest
hands the worker the rows it has just committed, and only `sync` and `rebuild` read parts back
from the store (`build.py`), where those are loaded already.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tokenclub.guard.indexing.index import IndexShape, log_parts, logged_parts, writer

if TYPE_CHECKING:
    import pyarrow as pa

    from tokenclub.corpus.store import CorpusStore

GROUP_TOKENS = 100_000
"""Accepted tokens of corpus parts indexed in one add (an ingest's committed batches, a
rebuild's parts): an ingest's batches keep few documents each (one in seven on the bench
corpus), and the index costs less per document in larger adds, up to a few hundred documents
(docs/scale.md)."""

COLUMNS = ("text", "partner_id", "tokens")

Rows = tuple[list[str], list[int], list[int]]
"""A part's texts, partners and counted tokens, as `GuardIndex.add` takes them."""

Part = tuple[str, Rows]
"""A committed part's name in the parts log and its rows."""


def guard_root(home: Path) -> Path:
    return home / "guard"


def rows(table: pa.Table) -> Rows:
    """A part's rows from its table (the columns of `COLUMNS`)."""
    texts = [t or "" for t in table.column("text").to_pylist()]
    partners = [int(p) for p in table.column("partner_id").to_pylist()]
    tokens = (
        [int(t or 0) for t in table.column("tokens").to_pylist()] if "tokens" in table.column_names else []
    )
    return texts, partners, tokens


def part_name(upload_id: str, seq: int) -> str:
    """How the parts log names a corpus part."""
    return f"{upload_id}/{seq}"


def index_group(home: Path, group: Sequence[Part], shape: IndexShape, once: bool = False) -> int:
    """Index committed parts in one add and log them as indexed, so `sync` skips them; returns
    grams added. With `once`, parts already logged are left out (a sync racing an ingest; the
    writer lock orders them). `shape` applies if no index exists yet.

    One add for several small parts pays the index's costs per add once (the writer's open and
    flush, a document-table run, each array operation's fixed cost): every petition indexed in
    parts of 16 documents took 3.4 CPU s, in parts of 64 or 256 2.2 (docs/scale.md)."""
    with writer(guard_root(home), shape.params, shape.capacity, shape.commonness) as index:
        if once:
            logged = logged_parts(index)
            group = [part for part in group if part[0] not in logged]
        if not group:
            return 0
        added = index.add(
            [text for _, part in group for text in part[0]],
            [partner for _, part in group for partner in part[1]],
            [count for _, part in group for count in part[2]],
        )
        log_parts(index, [name for name, _ in group])
    return added


def index_parts(
    home: Path, store: CorpusStore, upload_id: str, seqs: Sequence[int], shape: IndexShape, once: bool = False
) -> int:
    """`index_group` of committed parts read back from the corpus store."""
    group = [(part_name(upload_id, seq), rows(store.read_part(upload_id, seq, COLUMNS))) for seq in seqs]
    return index_group(home, group, shape, once)
