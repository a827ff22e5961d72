"""hold resolutions, hold token bound, pool basis

Revision ID: 0010
Revises: 0011
Create Date: 2026-12-04 20:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credit_holds") as batch:
        batch.add_column(sa.Column("tokens", sa.BigInteger(), nullable=False, server_default="0"))
    # A hold placed before this revision bounded its charge by its free tokens and KRW only.
    op.execute("UPDATE credit_holds SET tokens = free_tokens")
    op.create_table(
        "hold_resolutions",
        sa.Column("hold_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reported_prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reported_completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("krw", sa.BigInteger(), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["credit_holds.id"], name=op.f("fk_hold_resolutions_hold_id_credit_holds")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_hold_resolutions_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("hold_id", name=op.f("pk_hold_resolutions")),
    )
    with op.batch_alter_table("hold_resolutions") as batch:
        batch.create_index(batch.f("ix_hold_resolutions_capped"), ["capped"], unique=False)
    with op.batch_alter_table("settlement_closings") as batch:
        batch.add_column(
            sa.Column("pool_basis", sa.String(length=16), nullable=False, server_default="profit")
        )


def downgrade() -> None:
    with op.batch_alter_table("settlement_closings") as batch:
        batch.drop_column("pool_basis")
    with op.batch_alter_table("hold_resolutions") as batch:
        batch.drop_index(batch.f("ix_hold_resolutions_capped"))
    op.drop_table("hold_resolutions")
    with op.batch_alter_table("credit_holds") as batch:
        batch.drop_column("tokens")
