"""training exports: snapshots, exports, their access log, the model registry

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-04 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{referred}"))


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("tokenizer_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("curation", sa.Text(), nullable=False),
        sa.Column("excluded_partners", sa.Text(), nullable=False),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    op.create_table(
        "snapshot_parts",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("batch_seq", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        _fk("snapshot_parts", "snapshot_id", "snapshots.id"),
        _fk("snapshot_parts", "upload_id", "uploads.id"),
        _fk("snapshot_parts", "partner_id", "partners.id"),
        sa.PrimaryKeyConstraint("snapshot_id", "position", name=op.f("pk_snapshot_parts")),
    )
    op.create_table(
        "snapshot_partners",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        _fk("snapshot_partners", "snapshot_id", "snapshots.id"),
        _fk("snapshot_partners", "partner_id", "partners.id"),
        sa.PrimaryKeyConstraint("snapshot_id", "partner_id", name=op.f("pk_snapshot_partners")),
    )
    op.create_index(
        op.f("ix_snapshot_partners_partner_id"), "snapshot_partners", ["partner_id"], unique=False
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("formats", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("shard_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        _fk("exports", "snapshot_id", "snapshots.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index(op.f("ix_exports_snapshot_id"), "exports", ["snapshot_id"], unique=False)
    op.create_table(
        "export_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("export_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        _fk("export_log", "snapshot_id", "snapshots.id"),
        _fk("export_log", "export_id", "exports.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_log")),
    )
    op.create_table(
        "trained_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("served_as", sa.String(length=200), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=200), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        _fk("trained_models", "snapshot_id", "snapshots.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trained_models")),
        sa.UniqueConstraint("name", name=op.f("uq_trained_models_name")),
    )
    op.create_index(op.f("ix_trained_models_snapshot_id"), "trained_models", ["snapshot_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_trained_models_snapshot_id"), table_name="trained_models")
    op.drop_table("trained_models")
    op.drop_table("export_log")
    op.drop_index(op.f("ix_exports_snapshot_id"), table_name="exports")
    op.drop_table("exports")
    op.drop_index(op.f("ix_snapshot_partners_partner_id"), table_name="snapshot_partners")
    op.drop_table("snapshot_partners")
    op.drop_table("snapshot_parts")
    op.drop_table("snapshots")
