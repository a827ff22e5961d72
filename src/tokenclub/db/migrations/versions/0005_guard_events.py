"""guard events

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 17:26:11.504560
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("matched_length", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_guard_events_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_guard_events_key_id_api_keys")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_guard_events_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_events")),
    )
    with op.batch_alter_table("guard_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guard_events_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_guard_events_partner_created", ["partner_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_guard_events_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("guard_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_events_request_id"))
        batch_op.drop_index("ix_guard_events_partner_created")
        batch_op.drop_index(batch_op.f("ix_guard_events_customer_id"))

    op.drop_table("guard_events")
