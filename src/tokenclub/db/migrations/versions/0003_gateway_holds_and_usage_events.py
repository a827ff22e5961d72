"""gateway holds and usage events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 16:59:36.053196
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_holds",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("free_tokens", sa.BigInteger(), nullable=False),
        sa.Column("krw", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_credit_holds_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_credit_holds_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_holds")),
    )
    with op.batch_alter_table("credit_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_holds_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credit_holds_status"), ["status"], unique=False)

    op.create_table(
        "rate_counters",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_rate_counters_key_id_api_keys")),
        sa.PrimaryKeyConstraint("key_id", "window", name=op.f("pk_rate_counters")),
    )
    op.create_table(
        "usage_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("free_prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("free_completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("paid_prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("paid_completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("krw", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_usage_events_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_usage_events_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("request_id", name=op.f("uq_usage_events_request_id")),
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index("ix_usage_events_customer_created", ["customer_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_customer_created")

    op.drop_table("usage_events")
    op.drop_table("rate_counters")
    with op.batch_alter_table("credit_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_holds_status"))
        batch_op.drop_index(batch_op.f("ix_credit_holds_customer_id"))

    op.drop_table("credit_holds")
