"""fragment letters

A kept fragment holds the NFKC letters of its run and of the runs it was found to join, so a
guard whose verdict counts those letters (`TOKENCLUB_GUARD_LEAK_LETTERS`) joins pieces by the
same measure. Rows kept before carry 0: not counted, and any join with them is a leak, as before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("guard_fragments") as batch:
        batch.add_column(sa.Column("letters", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("guard_fragments") as batch:
        batch.drop_column("letters")
