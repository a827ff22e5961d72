"""Deciding duplicates of a batch against itself and everything accepted before.

The exact index is the unique `dedup_key` of accepted documents; the near-duplicate index is
the MinHash LSH band keys as 64-bit integers (`band_key_integers`), whose candidates are
confirmed by the estimated Jaccard similarity of the stored signatures, so documents that
merely share a template or topic are not taken for copies. Both live in the database and grow
with every committed batch. A batch is decided with one statement (the exact keys and every
band key of its live documents, and the signatures behind them) and recorded with one insert
per table; band keys never become Python objects one by one until the decision loop reads them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Result,
    String,
    any_,
    bindparam,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.types import TypeEngine

from tokenclub.curate.dedup import NEAR_DUPLICATE_JACCARD, U32Array, band_key_integers, signature_from_bytes
from tokenclub.curate.step import REJECT, set_column
from tokenclub.db.schema import Base, CorpusDocument, DedupBand

T = TypeVar("T")

DUPLICATE_REASON = "dedup:duplicate of an earlier contribution"


def row_band_keys(bands: pa.ChunkedArray | pa.Array) -> list[list[int]]:
    """Each row's band keys as integers (empty for a row without bands)."""
    column = bands.combine_chunks() if isinstance(bands, pa.ChunkedArray) else bands
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    flat = band_key_integers(pc.list_flatten(column)).tolist()
    cuts = np.concatenate(([0], np.cumsum(lengths))).tolist()
    return [flat[cuts[i] : cuts[i + 1]] for i in range(len(lengths))]


def _one_of(
    session: Session, column: InstrumentedAttribute[T], values: Sequence[T], type_: TypeEngine[T]
) -> ColumnElement[bool]:
    """`column IN values` with the values bound as one parameter (a PostgreSQL array, an SQLite
    JSON array), so a statement is compiled once and its parameters are not expanded one by one."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(type_)))
    if dialect == "sqlite":
        listed = func.json_each(bindparam(None, json.dumps(list(values)), type_=String())).table_valued(
            "value"
        )
        return column.in_(select(listed.c.value))
    return column.in_(values)


def _known(
    session: Session, keys: Sequence[str], bands: Sequence[int]
) -> tuple[set[str], dict[int, list[U32Array]]]:
    """Which exact keys are taken, and the signatures of accepted documents under each band key."""
    seen: set[str] = set()
    by_band: dict[int, list[U32Array]] = defaultdict(list)
    rows: Result[int | None, str | None, bytes | None] = session.execute(
        union_all(
            select(null().label("band_key"), CorpusDocument.dedup_key, null().label("minhash")).where(
                _one_of(session, CorpusDocument.dedup_key, keys, String())
            ),
            select(DedupBand.band_key, literal(None).label("dedup_key"), CorpusDocument.minhash)
            .join(CorpusDocument, CorpusDocument.doc_id == DedupBand.doc_id)
            .where(_one_of(session, DedupBand.band_key, bands, BigInteger())),
        )
    )
    for band, key, minhash in rows:
        if key is not None:
            seen.add(key)
        elif band is not None and minhash is not None:
            by_band[band].append(signature_from_bytes(minhash))
    return seen, by_band


def _near_duplicate(signature: U32Array, candidates: list[U32Array]) -> bool:
    threshold = NEAR_DUPLICATE_JACCARD * signature.size
    return any(np.count_nonzero(signature == other) >= threshold for other in candidates)


def mark_duplicates(session: Session, table: pa.Table) -> pa.Table:
    """Reject rows that copy an earlier document, in the index or earlier in this batch.

    Rows are decided in order, so the first of two copies inside one batch is the one kept.
    """
    reasons = table.column(REJECT).to_pylist()
    live = [i for i, reason in enumerate(reasons) if reason is None]
    if not live:
        return table
    keys = table.column("dedup_key").to_pylist()
    minhash = table.column("minhash").to_pylist()
    bands = row_band_keys(table.column("minhash_bands"))
    seen, by_band = _known(session, [keys[i] for i in live], sorted({b for i in live for b in bands[i]}))
    for i in live:
        raw = minhash[i]
        assert raw is not None, "live rows carry a signature"
        signature = signature_from_bytes(raw)
        candidates = [other for band in bands[i] for other in by_band.get(band, ())]
        if keys[i] in seen or _near_duplicate(signature, candidates):
            reasons[i] = DUPLICATE_REASON
            continue
        seen.add(keys[i])
        for band in bands[i]:
            by_band[band].append(signature)
    return set_column(table, REJECT, reasons, pa.string())


def record_accepted(
    session: Session, upload_id: str, partner_id: int, fingerprint: str, seq: int, accepted: pa.Table
) -> None:
    """Add a batch's accepted documents (provenance, exact key, signature) and their band keys.

    Core `INSERT … executemany` rather than ORM objects: a batch of 256 documents writes about
    4,000 band rows, and building ORM instances for them took as long as the curation steps.
    """
    if not accepted.num_rows:
        return
    columns = {
        name: accepted.column(name).to_pylist()
        for name in ("doc_id", "dedup_key", "source", "words", "tokens", "minhash")
    }
    session.connection().execute(
        insert(CorpusDocument),
        [
            {
                "doc_id": doc_id,
                "dedup_key": key,
                "upload_id": upload_id,
                "partner_id": partner_id,
                "batch_seq": seq,
                "source": source,
                "words": words,
                "tokens": tokens,
                "tokenizer_fingerprint": fingerprint,
                "minhash": minhash,
            }
            for doc_id, key, source, words, tokens, minhash in zip(*columns.values(), strict=True)
        ],
    )
    bands = row_band_keys(accepted.column("minhash_bands"))
    rows = [
        (band, doc_id)
        for doc_id, row in zip(columns["doc_id"], bands, strict=True)
        for band in sorted(set(row))
    ]
    insert_rows(session, DedupBand, ("band_key", "doc_id"), rows)


def insert_rows(
    session: Session, entity: type[Base], names: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """Insert plain rows with the driver's own executemany: no per-row parameter processing in
    SQLAlchemy (16 band rows a document, one decision row a document)."""
    if not rows:
        return
    connection = session.connection()
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(connection.dialect.paramstyle)
    if marker is None:
        connection.execute(insert(entity), [dict(zip(names, row, strict=True)) for row in rows])
        return
    markers = ", ".join([marker] * len(names))
    connection.exec_driver_sql(
        f"INSERT INTO {entity.__tablename__} ({', '.join(names)}) VALUES ({markers})", rows
    )
