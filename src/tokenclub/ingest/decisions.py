"""Per-document decisions of an ingest, kept as rows beside the documents.

Written in the batch's own transaction, so a resumed ingest never writes them twice; the
reason is the versioned rule name the pipeline wrote (`quality:too_short`, `dedup:…`), so
re-reading the corpus under another threshold is a join on these rows, not a rewrite.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub.corpus.dedup_index import insert_rows
from tokenclub.curate.step import REJECT
from tokenclub.db.portal_schema import DocumentDecision


def record_decisions(session: Session, upload_id: str, seq: int, table: pa.Table) -> None:
    """One row per document of a decided batch: accepted (no reason) or the reason it was dropped."""
    if not table.num_rows:
        return
    accepted = pc.is_null(table.column(REJECT))
    counts = [
        pc.if_else(accepted, pc.fill_null(table.column(name), 0), 0).to_pylist()
        for name in ("words", "tokens")
    ]
    columns = [table.column(name).to_pylist() for name in ("ordinal", "doc_id", "source", REJECT)]
    insert_rows(
        session,
        DocumentDecision,
        ("upload_id", "batch_seq", "ordinal", "doc_id", "source", "reason", "words", "tokens"),
        [(upload_id, seq, *row) for row in zip(*columns, *counts, strict=True)],
    )


def decisions_page(
    session: Session, upload_id: str, *, after: int | None, limit: int, rejected_only: bool = False
) -> list[DocumentDecision]:
    """Decisions in document order, `limit` at a time after the ordinal `after` (keyset paging)."""
    query = select(DocumentDecision).where(DocumentDecision.upload_id == upload_id)
    if after is not None:
        query = query.where(DocumentDecision.ordinal > after)
    if rejected_only:
        query = query.where(DocumentDecision.reason.is_not(None))
    return list(session.scalars(query.order_by(DocumentDecision.ordinal).limit(limit)))


def decision_count(session: Session, upload_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(DocumentDecision).where(DocumentDecision.upload_id == upload_id)
        )
        or 0
    )
