"""Keeping the guard index in step with the accepted corpus: per batch, after a crash, on withdrawal.

Ingest calls `index_parts` for its committed batches a few at a time (`GROUP_TOKENS` of
accepted text, `ingest.service`), and `sync` for its upload at the end. A crash between a
commit and its indexing leaves the batch out of the index until then; `sync` (cheap when
nothing is missing: it compares the committed parts with the index's parts log) puts it back,
for one upload or for the whole corpus. `rebuild_index` reads the corpus again into a fresh
generation, leaving out the partners it is told to (the operator names them, or released them
after a withdrawal), then syncs whatever was committed meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
from sqlalchemy import func, select

from tokenclub.corpus.store import CorpusStore
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.indexing.index import GuardIndex, log_parts, logged_parts, open_index, rebuild, writer
from tokenclub.guard.state.releases import released_partners

GROUP_TOKENS = 100_000
"""Accepted tokens of corpus parts indexed in one add (an ingest's committed batches, a
rebuild's parts): an ingest's batches keep few documents each (one in seven on the bench
corpus), and the index costs less per document in larger adds, up to a few hundred documents
(docs/scale.md)."""
LETTERS_PER_TOKEN = 5.0
"""Guard letters per counted token, rounded up from 4.6 measured on Korean prose (docs/leak-guard.md)."""


_COLUMNS = ("text", "partner_id", "tokens")


def guard_root(home: Path) -> Path:
    return home / "guard"


def _rows(table: pa.Table) -> tuple[list[str], list[int], list[int]]:
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
    home: Path, store: CorpusStore, upload_id: str, seqs: Sequence[int], once: bool = False
) -> int:
    """Index committed corpus parts of one upload in one add and log them as indexed, so `sync`
    skips them; returns grams added. With `once`, parts already logged are left out (a sync
    racing an ingest; the writer lock orders them).

    One add for several small parts pays the index's costs per add once (the writer's open and
    flush, a document-table run, each array operation's fixed cost): every petition indexed in
    parts of 16 documents took 3.4 CPU s, in parts of 64 or 256 2.2 (docs/scale.md)."""
    names = [part_name(upload_id, seq) for seq in seqs]
    tables = [store.read_part(upload_id, seq, _COLUMNS) for seq in seqs]
    settings = GuardSettings()
    with writer(
        guard_root(home), settings.index_params(), settings.initial_capacity, settings.commonness()
    ) as index:
        if once:
            logged = logged_parts(index)
            tables = [table for name, table in zip(names, tables, strict=True) if name not in logged]
            names = [name for name in names if name not in logged]
        if not names:
            return 0
        texts, partners, tokens = _rows(pa.concat_tables(tables))
        added = index.add(texts, partners, tokens)
        log_parts(index, names)
    return added


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
    for upload, seq in missing:
        index_parts(home, store, upload, [seq], once=True)
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
    settings = GuardSettings()
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
            more = _rows(store.read_part(upload_id, seq, _COLUMNS))
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
