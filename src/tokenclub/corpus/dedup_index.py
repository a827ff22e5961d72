"""Deciding duplicates of a batch against itself and everything accepted before.

The exact index is the unique `dedup_key` of accepted documents; the near-duplicate index is
the MinHash LSH band keys, whose candidates are confirmed by the estimated Jaccard similarity
of the stored signatures, so documents that merely share a template or topic are not taken
for copies. Both live in the database, grow with every committed batch, and are queried once
per batch (not per document).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pyarrow as pa
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tokenclub.curate.dedup import NEAR_DUPLICATE_JACCARD, U32Array, jaccard_estimate, signature_from_bytes
from tokenclub.curate.step import REJECT, set_column
from tokenclub.db.schema import CorpusDocument, DedupBand

DUPLICATE_REASON = "dedup:duplicate of an earlier contribution"
_CHUNK = 500


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _known_keys(session: Session, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(keys):
        found.update(
            session.scalars(select(CorpusDocument.dedup_key).where(CorpusDocument.dedup_key.in_(chunk)))
        )
    return found


def _known_signatures(session: Session, bands: Sequence[str]) -> dict[str, list[U32Array]]:
    found: dict[str, list[U32Array]] = defaultdict(list)
    for chunk in _chunks(bands):
        rows = session.execute(
            select(DedupBand.band_key, CorpusDocument.minhash)
            .join(CorpusDocument, CorpusDocument.doc_id == DedupBand.doc_id)
            .where(DedupBand.band_key.in_(chunk))
        )
        for band, minhash in rows:
            found[band].append(signature_from_bytes(minhash))
    return found


def band_strings(bands: Sequence[bytes] | None) -> list[str]:
    return [band.hex() for band in bands or ()]


def _near_duplicate(signature: U32Array, candidates: list[U32Array]) -> bool:
    return any(jaccard_estimate(signature, other) >= NEAR_DUPLICATE_JACCARD for other in candidates)


def mark_duplicates(session: Session, table: pa.Table) -> pa.Table:
    """Reject rows that copy an earlier document, in the index or earlier in this batch.

    Rows are decided in order, so the first of two copies inside one batch is the one kept.
    """
    reasons = table.column(REJECT).to_pylist()
    keys = table.column("dedup_key").to_pylist()
    signatures = [
        None if raw is None else signature_from_bytes(raw) for raw in table.column("minhash").to_pylist()
    ]
    bands = [band_strings(b) for b in table.column("minhash_bands").to_pylist()]
    live = [i for i, reason in enumerate(reasons) if reason is None]
    seen_keys = _known_keys(session, [keys[i] for i in live])
    by_band = _known_signatures(session, sorted({b for i in live for b in bands[i]}))
    for i in live:
        signature = signatures[i]
        assert signature is not None, "live rows carry a signature"
        candidates = [other for band in bands[i] for other in by_band.get(band, ())]
        if keys[i] in seen_keys or _near_duplicate(signature, candidates):
            reasons[i] = DUPLICATE_REASON
            continue
        seen_keys.add(keys[i])
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
    docs = accepted.select(["doc_id", "dedup_key", "source", "words", "tokens", "minhash", "minhash_bands"])
    rows = docs.to_pylist()
    if not rows:
        return
    session.execute(
        insert(CorpusDocument),
        [
            {
                "doc_id": doc["doc_id"],
                "dedup_key": doc["dedup_key"],
                "upload_id": upload_id,
                "partner_id": partner_id,
                "batch_seq": seq,
                "source": doc["source"],
                "words": doc["words"],
                "tokens": doc["tokens"],
                "tokenizer_fingerprint": fingerprint,
                "minhash": doc["minhash"],
            }
            for doc in rows
        ],
    )
    session.execute(
        insert(DedupBand),
        [
            {"band_key": band, "doc_id": doc["doc_id"]}
            for doc in rows
            for band in sorted(set(band_strings(doc["minhash_bands"])))
        ],
    )
