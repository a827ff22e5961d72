"""guarded balances

The database itself refuses to take a guarded ledger account below zero (credit-normal ones
above zero), whatever the code that writes it: the ledger checks every posting on locked
balances first, and a gateway batch reads the balances it locked once (`kept_locks`), so this is
the net under both. PostgreSQL: a CHECK constraint; SQLite: triggers (adding a constraint there
means copying the table, which the entries' foreign keys make unsafe on a live home).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 03:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ledger_accounts_guarded_balance"
ALLOWED = (
    "NOT {p}guarded OR ({p}normal = 'credit' AND {p}balance <= 0)"
    " OR ({p}normal = 'debit' AND {p}balance >= 0)"
)
MESSAGE = "a guarded ledger account would be overdrawn"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_check_constraint(NAME, "ledger_accounts", ALLOWED.format(p=""))
        return
    for event, when in (("insert", "INSERT"), ("update", "UPDATE OF balance, guarded, normal")):
        op.execute(
            f"CREATE TRIGGER {NAME}_{event} BEFORE {when} ON ledger_accounts FOR EACH ROW "
            f"WHEN NOT ({ALLOWED.format(p='NEW.')}) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(NAME, "ledger_accounts", type_="check")
        return
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER {NAME}_{event}")
