"""guard capped documents

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 00:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_capped_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.Column("doc", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", sa.BigInteger(), nullable=False),
        sa.Column("letters", sa.Integer(), nullable=False),
        sa.Column("capped_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_capped_documents")),
        sa.UniqueConstraint("generation", "doc", name=op.f("uq_guard_capped_documents_generation")),
    )
    with op.batch_alter_table("guard_coverage") as batch:
        batch.add_column(sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("guard_coverage") as batch:
        batch.drop_column("blocked")
    op.drop_table("guard_capped_documents")
