"""uploads and dedup index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 16:47:14.515647
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("batch_size", sa.BigInteger(), nullable=False),
        sa.Column("tokenizer_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_uploads_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "corpus_documents",
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("batch_seq", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("words", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("tokenizer_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("minhash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_corpus_documents_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_corpus_documents_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("doc_id", name=op.f("pk_corpus_documents")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_corpus_documents_dedup_key")),
    )
    with op.batch_alter_table("corpus_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_corpus_documents_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_corpus_documents_upload_id"), ["upload_id"], unique=False)

    op.create_table(
        "upload_batches",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stats", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_upload_batches_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("upload_id", "seq", name=op.f("pk_upload_batches")),
    )
    op.create_table(
        "dedup_bands",
        sa.Column("band_key", sa.String(length=40), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["doc_id"], ["corpus_documents.doc_id"], name=op.f("fk_dedup_bands_doc_id_corpus_documents")
        ),
        sa.PrimaryKeyConstraint("band_key", "doc_id", name=op.f("pk_dedup_bands")),
    )


def downgrade() -> None:
    op.drop_table("dedup_bands")
    op.drop_table("upload_batches")
    with op.batch_alter_table("corpus_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_corpus_documents_upload_id"))
        batch_op.drop_index(batch_op.f("ix_corpus_documents_partner_id"))

    op.drop_table("corpus_documents")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_partner_id"))

    op.drop_table("uploads")
