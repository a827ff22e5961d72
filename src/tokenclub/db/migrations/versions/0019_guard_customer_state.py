"""guard customer state

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 22:50:00.000000
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_customer_state",
        sa.Column("customer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_s", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_guard_customer_state_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_guard_customer_state")),
    )
    # Customers with state already kept: the newest time of it (credits are bucketed, so they
    # count as kept now: at worst one window of admissions reads state that has expired).
    op.execute(
        sa.text(
            "INSERT INTO guard_customer_state (customer_id, last_s) "
            "SELECT customer_id, max(kept) FROM ("
            "SELECT customer_id, created_s AS kept FROM guard_coverage "
            "UNION ALL SELECT customer_id, created_s FROM guard_fragments "
            "UNION ALL SELECT k.customer_id, :now FROM guard_tallies t JOIN api_keys k ON k.id = t.key_id"
            ") AS kept_state GROUP BY customer_id"
        ).bindparams(now=int(time.time()))
    )


def downgrade() -> None:
    op.drop_table("guard_customer_state")
