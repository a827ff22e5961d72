"""guard coverage

Revision ID: 0017
Revises: 0010
Create Date: 2026-12-04 22:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_coverage",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.Column("doc", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ordinal", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.BigInteger(), nullable=False),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_guard_coverage_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_guard_coverage_key_id_api_keys")),
        sa.PrimaryKeyConstraint(
            "customer_id", "generation", "doc", "ordinal", name=op.f("pk_guard_coverage")
        ),
    )
    op.create_index("ix_guard_coverage_document", "guard_coverage", ["generation", "doc"], unique=False)
    op.create_table(
        "guard_coverage_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_guard_coverage_holds_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_coverage_holds")),
    )
    op.create_index(
        "ix_guard_coverage_holds_customer", "guard_coverage_holds", ["customer_id", "created_s"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_guard_coverage_holds_customer", table_name="guard_coverage_holds")
    op.drop_table("guard_coverage_holds")
    op.drop_index("ix_guard_coverage_document", table_name="guard_coverage")
    op.drop_table("guard_coverage")
