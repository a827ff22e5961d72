"""upload turns

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 06:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("turn", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("heartbeat_s", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("heartbeat_s")
        batch.drop_column("turn")
