"""guard fragments

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_fragments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("partners", sa.Text(), nullable=False),
        sa.Column("first", sa.Integer(), nullable=False),
        sa.Column("head", sa.LargeBinary(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.Column("tail", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_guard_fragments_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_guard_fragments_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_fragments")),
    )
    op.create_index(
        "ix_guard_fragments_customer_created", "guard_fragments", ["customer_id", "created_s"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_guard_fragments_customer_created", table_name="guard_fragments")
    op.drop_table("guard_fragments")
