"""Reading the accepted corpus back: only batches committed in the database count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tokenclub.accounts.partners import WITHDRAWN_IDS
from tokenclub.atrest.objects import Sealing
from tokenclub.corpus.store import CorpusStore
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.storage import store_child

DUMP_COLUMNS = (
    "doc_id",
    "partner_id",
    "upload_id",
    "source",
    "format",
    "title",
    "text",
    "words",
    "tokens",
    "pii",
)


def iter_corpus(
    db: Database,
    home: Path,
    partner_id: int | None = None,
    store_url: str | None = None,
    include_withdrawn: bool = False,
    sealing: Sealing | None = None,
) -> Iterator[dict[str, Any]]:
    """Accepted documents in commit order; parts left by a crashed, uncommitted batch are ignored,
    and so, unless asked for, are the documents of partners that withdrew from future training."""
    query = select(CorpusDocument.upload_id, CorpusDocument.batch_seq).distinct()
    if partner_id is not None:
        query = query.where(CorpusDocument.partner_id == partner_id)
    if not include_withdrawn:
        query = query.where(CorpusDocument.partner_id.not_in(WITHDRAWN_IDS))
    with db.transaction() as session:
        parts = [(row[0], row[1]) for row in session.execute(query.order_by(*query.selected_columns))]
    store = CorpusStore(store_child(home, store_url, "corpus"), sealing)
    for upload_id, seq in parts:
        yield from store.read_part(upload_id, seq, DUMP_COLUMNS).to_pylist()
