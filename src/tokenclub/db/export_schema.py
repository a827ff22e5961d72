"""Tables of training exports: snapshots, the exports written from them, their access log, models.

A snapshot freezes which committed corpus parts (and so which documents) training may use; its
rows are written once and never updated, so exporting the same snapshot again reads the same
parts in the same order. Parts, not documents, are listed: a part is one committed batch of one
upload (one partner), so the list stays small even at 10^9 documents.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenclub.db.schema import Base
from tokenclub.db.types import UTCDateTime, utcnow


class Snapshot(Base):
    """The accepted, non-withdrawn documents at one moment, with what is needed to re-check them."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    tokenizer_fingerprint: Mapped[str] = mapped_column(String(64))
    curation: Mapped[str] = mapped_column(Text)
    excluded_partners: Mapped[str] = mapped_column(Text)
    documents: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)


class SnapshotPart(Base):
    """One committed corpus part in a snapshot, in the snapshot's fixed order (`position`)."""

    __tablename__ = "snapshot_parts"

    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"))
    batch_seq: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    documents: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)


class SnapshotPartner(Base):
    """One partner's share of a snapshot: what that partner (and only it) may be shown."""

    __tablename__ = "snapshot_partners"

    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True, index=True)
    documents: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)


class Export(Base):
    """Shards and a manifest written from one snapshot to one store location.

    The row is written (`writing`) before the first shard so that every attempt is on record;
    it turns `done` once the manifest is in place, or `failed` with the reason.
    """

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    formats: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shard_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="writing")
    manifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")


class ExportLog(Base):
    """Who did what with training data, and when: snapshots, exports and downloads."""

    __tablename__ = "export_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"), nullable=True)
    export_id: Mapped[int | None] = mapped_column(ForeignKey("exports.id"), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class TrainedModel(Base):
    """A model trained on a snapshot and, while it is served, the gateway model name serving it."""

    __tablename__ = "trained_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), index=True)
    served_as: Mapped[str | None] = mapped_column(String(200), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    registered_by: Mapped[str] = mapped_column(String(200))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
