"""portal users, sessions, data uploads, the ingest queue, document decisions, audit trail, key scopes

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-04 20:40:00.000000

Existing API keys get the `inference` scope only: they were issued when the API served
inference alone, so no client of theirs needs more, and a key already given to an app must
not start to upload or read statements by itself.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default="inference"))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_users_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(op.f("ix_users_partner_id"), "users", ["partner_id"])
    op.create_table(
        "partner_applications",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("estimated_words", sa.BigInteger(), nullable=False),
        sa.Column("licence_accepted_at", TZ, nullable=False),
        sa.Column("applicant_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["applicant_user_id"], ["users.id"], name=op.f("fk_partner_applications_applicant_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_applications_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_partner_applications")),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_portal_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_portal_sessions")),
    )
    op.create_index(op.f("ix_portal_sessions_user_id"), "portal_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_email_at", "login_failures", ["email", "at"])
    op.create_table(
        "data_uploads",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("received_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_data_uploads_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_uploads")),
    )
    op.create_index(op.f("ix_data_uploads_partner_id"), "data_uploads", ["partner_id"])
    op.create_table(
        "upload_parts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["data_uploads.id"], name=op.f("fk_upload_parts_upload_id_data_uploads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_parts")),
    )
    op.create_index(op.f("ix_upload_parts_upload_id"), "upload_parts", ["upload_id"])
    op.create_table(
        "contributions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("data_upload_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("worker", sa.String(120), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("documents_seen", sa.BigInteger(), nullable=False),
        sa.Column("documents_accepted", sa.BigInteger(), nullable=False),
        sa.Column("batches_done", sa.BigInteger(), nullable=False),
        sa.Column("upload_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["data_upload_id"], ["data_uploads.id"], name=op.f("fk_contributions_data_upload_id_data_uploads")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_contributions_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_contributions_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contributions")),
        sa.UniqueConstraint("data_upload_id", name=op.f("uq_contributions_data_upload_id")),
    )
    op.create_index(op.f("ix_contributions_partner_id"), "contributions", ["partner_id"])
    op.create_index("ix_contributions_status_created", "contributions", ["status", "created_at"])
    op.create_table(
        "document_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("batch_seq", sa.BigInteger(), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False),
        sa.Column("doc_id", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("words", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_document_decisions_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_decisions")),
        sa.UniqueConstraint("upload_id", "ordinal", name=op.f("uq_document_decisions_upload_id")),
    )
    op.create_table(
        "audit_trail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_audit_trail_actor_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_trail")),
    )
    op.create_index(op.f("ix_audit_trail_at"), "audit_trail", ["at"])


def downgrade() -> None:
    for table in (
        "audit_trail",
        "document_decisions",
        "contributions",
        "upload_parts",
        "data_uploads",
        "login_failures",
        "portal_sessions",
        "partner_applications",
        "users",
    ):
        op.drop_table(table)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
