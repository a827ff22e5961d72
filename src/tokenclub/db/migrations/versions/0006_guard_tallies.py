"""guard tallies

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 20:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_tallies",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("letters", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_guard_tallies_key_id_api_keys")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_guard_tallies_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("key_id", "partner_id", "bucket", name=op.f("pk_guard_tallies")),
    )


def downgrade() -> None:
    op.drop_table("guard_tallies")
