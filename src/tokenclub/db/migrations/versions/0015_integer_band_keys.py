"""integer band keys

The near-duplicate index keyed by one 64-bit integer per band key instead of its 20-character
hex string: a smaller index, probed once per batch. Upgrading converts each stored key;
downgrading recomputes the hex keys from the stored signatures (an integer cannot be undone).

Revision ID: 0015
Revises: 0008
Create Date: 2026-12-04 20:45:00.000000
"""

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 2_000


def _signatures() -> Iterator[tuple[list[str], np.ndarray]]:
    """Accepted documents' ids and signatures, a chunk at a time."""
    result = op.get_bind().execute(sa.text("SELECT doc_id, minhash FROM corpus_documents ORDER BY doc_id"))
    while rows := result.fetchmany(_CHUNK):
        ids = [row[0] for row in rows]
        yield ids, np.stack([np.frombuffer(row[1], dtype=np.uint32) for row in rows])


def _band_records(signatures: np.ndarray) -> pa.Array:
    from tokenclub.curate.dedup import MinHasher

    hasher = MinHasher(num_perm=signatures.shape[1])
    records = hasher._band_keys(signatures)
    size = records.dtype.itemsize
    return pa.Array.from_buffers(
        pa.binary(),
        records.size,
        [
            None,
            pa.py_buffer(np.arange(0, (records.size + 1) * size, size, dtype=np.int32)),
            pa.py_buffer(records),
        ],
    )


def upgrade() -> None:
    from tokenclub.curate.dedup import band_key_integers

    table = op.create_table(
        "dedup_band_keys",
        sa.Column("band_key", sa.BigInteger(), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["doc_id"], ["corpus_documents.doc_id"], name=op.f("fk_dedup_band_keys_doc_id_corpus_documents")
        ),
        sa.PrimaryKeyConstraint("band_key", "doc_id", name=op.f("pk_dedup_band_keys")),
    )
    result = op.get_bind().execute(sa.text("SELECT band_key, doc_id FROM dedup_bands"))
    while rows := result.fetchmany(_CHUNK * 16):
        keys = band_key_integers(pa.array([bytes.fromhex(row[0]) for row in rows], pa.binary())).tolist()
        op.bulk_insert(
            table, [{"band_key": key, "doc_id": row[1]} for key, row in zip(keys, rows, strict=True)]
        )
    op.drop_table("dedup_bands")


def downgrade() -> None:
    table = op.create_table(
        "dedup_bands",
        sa.Column("band_key", sa.String(length=40), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["doc_id"], ["corpus_documents.doc_id"], name=op.f("fk_dedup_bands_doc_id_corpus_documents")
        ),
        sa.PrimaryKeyConstraint("band_key", "doc_id", name=op.f("pk_dedup_bands")),
    )
    for ids, signatures in _signatures():
        bands = _band_records(signatures).to_pylist()
        per_doc = len(bands) // len(ids)
        rows = [
            {"band_key": band.hex(), "doc_id": doc}
            for index, doc in enumerate(ids)
            for band in sorted(set(bands[index * per_doc : (index + 1) * per_doc]))
        ]
        op.bulk_insert(table, rows)
    op.drop_table("dedup_band_keys")
