"""settlement record voids

Revision ID: 0016
Revises: 0010
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlement_record_voids",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voided_by", sa.String(length=400), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["settlement_records.id"],
            name=op.f("fk_settlement_record_voids_record_id_settlement_records"),
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_settlement_record_voids")),
    )


def downgrade() -> None:
    op.drop_table("settlement_record_voids")
