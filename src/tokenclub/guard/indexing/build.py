"""Keeping the guard index in step with the accepted corpus: per batch, after a crash, on withdrawal.

Ingest indexes its committed batches a few at a time (`parts.index_group`, `GROUP_TOKENS` of
accepted text, on a worker process: `background.py`), and calls `sync` for its upload at the
end. A crash between a commit and its indexing leaves the batch out of the index until then;
`sync` (cheap when nothing is missing: it compares the committed parts with the index's parts
log) puts it back, for one upload or for the whole corpus. `rebuild_index` reads the corpus
again into a fresh generation, leaving out the partners it is told to (the operator names
them, or released them after a withdrawal), then syncs whatever was committed meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from pathlib import Path

from sqlalchemy import func, select

from tokenclub.corpus.store import CorpusStore
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.guard.config import guard_settings
from tokenclub.guard.indexing.index import GuardIndex, logged_parts, open_index, rebuild
from tokenclub.guard.indexing.parts import COLUMNS, GROUP_TOKENS, guard_root, index_parts, part_name, rows
from tokenclub.guard.state.releases import released_partners

LETTERS_PER_TOKEN = 5.0
"""Guard letters per counted token, rounded up from 4.6 measured on Korean prose (docs/leak-guard.md)."""


def _committed_parts(db: Database, upload_id: str | None = None) -> list[tuple[str, int]]:
    query = select(CorpusDocument.upload_id, CorpusDocument.batch_seq).distinct()
    if upload_id is not None:
        query = query.where(CorpusDocument.upload_id == upload_id)
    with db.transaction() as session:
        return [(row[0], row[1]) for row in session.execute(query.order_by(*query.selected_columns))]


def sync(db: Database, home: Path, store: CorpusStore, upload_id: str | None = None) -> int:
    """Index the committed parts (of one upload, or all) that the index lacks; returns how many."""
    index = open_index(guard_root(home))
    done = logged_parts(index) if index is not None else set()
    missing = [(u, s) for u, s in _committed_parts(db, upload_id) if part_name(u, s) not in done]
    shape = guard_settings().index_shape()
    for upload, seq in missing:
        index_parts(home, store, upload, [seq], shape, once=True)
    return len(missing)


def rebuild_index(
    db: Database, home: Path, store: CorpusStore, withdrawn: Collection[int] = ()
) -> GuardIndex:
    """A new generation from the accepted corpus, sized to fit it, without the partners whose
    text the operator released (`guard release`, after withdrawal) or names in `withdrawn`.
    A withdrawn partner's text stays until it is released: a served model may have seen it.

    Their parts are read past and logged, so `sync` does not bring them back, and their later
    batches are refused by the index itself.
    """
    settings = guard_settings()
    params = settings.index_params()
    withdrawn = sorted(set(withdrawn) | released_partners(guard_root(home)))
    with db.transaction() as session:
        query = select(func.coalesce(func.sum(CorpusDocument.tokens), 0))
        if withdrawn:
            query = query.where(CorpusDocument.partner_id.not_in(withdrawn))
        tokens = int(session.scalar(query) or 0)
    capacity = max(1024, math.ceil(tokens * LETTERS_PER_TOKEN / params.stride))
    parts = _committed_parts(db)

    def batches() -> Iterator[tuple[list[str], list[int], list[int]]]:
        """The parts' rows, `GROUP_TOKENS` at a time."""
        texts: list[str] = []
        owners: list[int] = []
        counts: list[int] = []
        gathered = 0
        for upload_id, seq in parts:
            more = rows(store.read_part(upload_id, seq, COLUMNS))
            texts += more[0]
            owners += more[1]
            counts += more[2]
            gathered += sum(more[2])
            if gathered >= GROUP_TOKENS:
                yield texts, owners, counts
                texts, owners, counts, gathered = [], [], [], 0
        if texts:
            yield texts, owners, counts

    names = [part_name(u, s) for u, s in parts]
    index = rebuild(guard_root(home), batches(), params, capacity, names, withdrawn, settings.commonness())
    sync(db, home, store)
    return index
