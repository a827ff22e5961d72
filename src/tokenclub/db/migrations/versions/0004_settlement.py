"""settlement periods, records, closings and lines

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 17:28:26.346880
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlement_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_periods")),
        sa.UniqueConstraint("name", name=op.f("uq_settlement_periods_name")),
    )
    op.create_table(
        "settlement_closings",
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("pool_rate", sa.String(length=32), nullable=False),
        sa.Column("min_payout_krw", sa.BigInteger(), nullable=False),
        sa.Column("price_input_krw_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("price_output_krw_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("api_revenue_krw", sa.BigInteger(), nullable=False),
        sa.Column("manual_revenue_krw", sa.BigInteger(), nullable=False),
        sa.Column("cost_krw", sa.BigInteger(), nullable=False),
        sa.Column("pool_krw", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["settlement_periods.id"],
            name=op.f("fk_settlement_closings_period_id_settlement_periods"),
        ),
        sa.PrimaryKeyConstraint("period_id", name=op.f("pk_settlement_closings")),
    )
    op.create_table(
        "settlement_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("krw", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["settlement_periods.id"],
            name=op.f("fk_settlement_records_period_id_settlement_periods"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_records")),
    )
    with op.batch_alter_table("settlement_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_records_period_id"), ["period_id"], unique=False)

    op.create_table(
        "settlement_lines",
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("allocated_krw", sa.BigInteger(), nullable=False),
        sa.Column("carried_in_krw", sa.BigInteger(), nullable=False),
        sa.Column("paid_krw", sa.BigInteger(), nullable=False),
        sa.Column("carried_out_krw", sa.BigInteger(), nullable=False),
        sa.Column("free_prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("free_completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("free_usage_krw", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_settlement_lines_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["settlement_closings.period_id"],
            name=op.f("fk_settlement_lines_period_id_settlement_closings"),
        ),
        sa.PrimaryKeyConstraint("period_id", "partner_id", name=op.f("pk_settlement_lines")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_lines_partner_id"), ["partner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_lines_partner_id"))

    op.drop_table("settlement_lines")
    with op.batch_alter_table("settlement_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_records_period_id"))

    op.drop_table("settlement_records")
    op.drop_table("settlement_closings")
    op.drop_table("settlement_periods")
