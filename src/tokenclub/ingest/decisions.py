"""Per-document decisions of an ingest, kept as rows beside the documents.

Written in the batch's own transaction, so a resumed ingest never writes them twice; the
reason is the versioned rule name the pipeline wrote (`quality:too_short`, `dedup:…`), so
re-reading the corpus under another threshold is a join on these rows, not a rewrite.
"""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from tokenclub.curate.step import REJECT
from tokenclub.db.portal_schema import DocumentDecision


def record_decisions(session: Session, upload_id: str, seq: int, table: pa.Table) -> None:
    """One row per document of a decided batch: accepted (no reason) or the reason it was dropped."""
    if not table.num_rows:
        return
    rows = table.select(["doc_id", "ordinal", "source", REJECT, "words", "tokens"]).to_pylist()
    session.execute(
        insert(DocumentDecision),
        [
            {
                "upload_id": upload_id,
                "batch_seq": seq,
                "ordinal": row["ordinal"],
                "doc_id": row["doc_id"],
                "source": row["source"],
                "reason": row[REJECT],
                "words": int(row["words"] or 0) if row[REJECT] is None else 0,
                "tokens": int(row["tokens"] or 0) if row[REJECT] is None else 0,
            }
            for row in rows
        ],
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
