"""Tables of the partner portal and the data API: people, sessions, uploads, the ingest queue,
per-document decisions and the operators' audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tokenclub.db.schema import Base
from tokenclub.db.types import UTCDateTime, utcnow


class User(Base):
    """A person who logs in to the portal; partner staff belong to exactly one partner."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PartnerApplication(Base):
    """What an applicant declared on the public form, beside its `partners` row."""

    __tablename__ = "partner_applications"

    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    estimated_words: Mapped[int] = mapped_column(BigInteger, default=0)
    licence_accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applicant_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class PortalSession(Base):
    """A logged-in browser: the cookie holds the secret, the table only its hash."""

    __tablename__ = "portal_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """A failed login, counted per e-mail address to throttle password guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_email_at", "email", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataUpload(Base):
    """An upload in the shape of OpenAI's Uploads API: created, filled part by part, completed."""

    __tablename__ = "data_uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    mime_type: Mapped[str] = mapped_column(String(128))
    bytes: Mapped[int] = mapped_column(BigInteger)
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UploadPart(Base):
    """One received part, already on disk with its checksum."""

    __tablename__ = "upload_parts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("data_uploads.id"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Contribution(Base):
    """A completed upload waiting for, or processed by, an ingest worker: the durable job queue.

    A worker claims a queued job (or one whose lease ran out: its worker died) by a
    compare-and-set update, keeps the lease fresh while it runs, and resumes the ingest exactly
    where the dead worker left it, because the ingest itself is resumable.
    """

    __tablename__ = "contributions"
    __table_args__ = (Index("ix_contributions_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    data_upload_id: Mapped[str] = mapped_column(ForeignKey("data_uploads.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    documents_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    batches_done: Mapped[int] = mapped_column(BigInteger, default=0)
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id"), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DocumentDecision(Base):
    """One document's fate in an ingest, kept beside the documents (decisions are attributes):
    accepted, or rejected with the versioned name of the rule that dropped it."""

    __tablename__ = "document_decisions"
    __table_args__ = (UniqueConstraint("upload_id", "ordinal"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"))
    batch_seq: Mapped[int] = mapped_column(BigInteger)
    ordinal: Mapped[int] = mapped_column(BigInteger)
    doc_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    words: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEntry(Base):
    """An operator's action: who, what, when, and the object before and after (JSON)."""

    __tablename__ = "audit_trail"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[str] = mapped_column(Text, default="")
    after: Mapped[str] = mapped_column(Text, default="")
