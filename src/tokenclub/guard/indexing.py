"""Keeping the guard index in step with the accepted corpus: per batch, after a crash, on withdrawal.

`index_accepted` adds one committed batch. Ingest calls it right after the batch's database
transaction commits; a crash between the two leaves the batch out of the index, and `sync`
(cheap when nothing is missing: it compares the committed parts with the index's parts log)
puts it back. `rebuild` reads the corpus again into a fresh generation, leaving out withdrawn
partners, then syncs whatever was committed meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select

from tokenclub.corpus.store import CorpusStore
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.index import GuardIndex, log_parts, logged_parts, open_index, rebuild, writer

LETTERS_PER_TOKEN = 5.0
"""Guard letters per counted token, rounded up from 4.6 measured on Korean prose (docs/leak-guard.md)."""


def guard_root(home: Path) -> Path:
    return home / "guard"


def _rows(table: pa.Table) -> tuple[list[str], list[int], list[int]]:
    texts = [t or "" for t in table.column("text").to_pylist()]
    partners = [int(p) for p in table.column("partner_id").to_pylist()]
    tokens = (
        [int(t or 0) for t in table.column("tokens").to_pylist()] if "tokens" in table.column_names else []
    )
    return texts, partners, tokens


def index_accepted(home: Path, table: pa.Table, part: str | None = None) -> int:
    """Add a committed batch (`text`, `partner_id` columns) to the index; returns grams added.

    `part` ("<upload id>/<batch seq>") marks the batch as indexed, so `sync` skips it.
    """
    settings = GuardSettings()
    texts, partners, tokens = _rows(table)
    with writer(guard_root(home), settings.index_params(), settings.initial_capacity) as index:
        added = index.add(texts, partners, tokens)
        if part is not None:
            log_parts(index, [part])
    return added


def _committed_parts(db: Database) -> list[tuple[str, int]]:
    query = select(CorpusDocument.upload_id, CorpusDocument.batch_seq).distinct()
    with db.transaction() as session:
        return [(row[0], row[1]) for row in session.execute(query.order_by(*query.selected_columns))]


def _read_part(home: Path, upload_id: str, seq: int) -> pa.Table:
    path = CorpusStore(home / "corpus").part_path(upload_id, seq)
    return pq.read_table(path, columns=["text", "partner_id", "tokens"])


def sync(db: Database, home: Path) -> int:
    """Index the committed corpus parts that the index does not have yet; returns how many."""
    index = open_index(guard_root(home))
    done = logged_parts(index) if index is not None else set()
    missing = [(u, s) for u, s in _committed_parts(db) if f"{u}/{s}" not in done]
    for upload_id, seq in missing:
        index_accepted(home, _read_part(home, upload_id, seq), f"{upload_id}/{seq}")
    return len(missing)


def rebuild_index(db: Database, home: Path, withdrawn: Collection[int] = ()) -> GuardIndex:
    """A new generation from the accepted corpus, sized to fit it, without `withdrawn` partners.

    Their parts are read past and logged, so `sync` does not bring them back, and their later
    batches are refused by the index itself.
    """
    settings = GuardSettings()
    params = settings.index_params()
    query = select(func.coalesce(func.sum(CorpusDocument.tokens), 0))
    if withdrawn:
        query = query.where(CorpusDocument.partner_id.not_in(list(withdrawn)))
    with db.transaction() as session:
        tokens = int(session.scalar(query) or 0)
    capacity = max(1024, math.ceil(tokens * LETTERS_PER_TOKEN / params.stride))
    parts = _committed_parts(db)

    def batches() -> Iterator[tuple[list[str], list[int], list[int]]]:
        for upload_id, seq in parts:
            yield _rows(_read_part(home, upload_id, seq))

    index = rebuild(guard_root(home), batches(), params, capacity, [f"{u}/{s}" for u, s in parts], withdrawn)
    sync(db, home)
    return index
