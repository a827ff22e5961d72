"""The relational schema: partners, customers, API keys and the double-entry ledger.

Alembic migrations in `migrations/versions` create exactly this; a test checks they agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tokenclub.db.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Partner(Base):
    """A data provider: applies, is approved or rejected by an operator, then contributes; it may
    later withdraw its data from future training."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contact: Mapped[str] = mapped_column(String(320), default="")
    org_type: Mapped[str] = mapped_column(String(32), default="other")
    data_description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="applied")
    accepted_words: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Customer(Base):
    """An account that uses the API; every partner has exactly one."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), unique=True, nullable=True)
    spending_limit_krw: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """An API key, kept only as a hash; the prefix lets people and scanners recognise it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    display_prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(64), default="inference")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LedgerAccount(Base):
    """One ledger account; `balance` caches the signed sum of its entries (debits positive)."""

    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str] = mapped_column(String(8))
    normal: Mapped[str] = mapped_column(String(8))
    guarded: Mapped[bool] = mapped_column(Boolean, default=False)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerTransaction(Base):
    """A balanced group of entries, written once under its idempotency key."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """One leg of a transaction: a signed amount (debit positive) on one account."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("transaction_id", "account_id"),
        Index("ix_ledger_entries_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)


class Upload(Base):
    """One ingest of a partner's files; its id is derived from the partner and the file hashes,
    so sending the same files again finds the same upload instead of crediting twice."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="processing")
    files: Mapped[str] = mapped_column(Text)
    batch_size: Mapped[int] = mapped_column(BigInteger)
    tokenizer_fingerprint: Mapped[str] = mapped_column(String(64))
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the order in which running uploads commit, and the last sign of life of the run holding it
    turn: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    heartbeat_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class UploadBatch(Base):
    """A committed batch of an upload: the checkpoint that lets a killed ingest resume."""

    __tablename__ = "upload_batches"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stats: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CorpusDocument(Base):
    """An accepted document's provenance and exact-duplicate key; the text lives in the corpus store."""

    __tablename__ = "corpus_documents"

    doc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    batch_seq: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text)
    words: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)
    tokenizer_fingerprint: Mapped[str] = mapped_column(String(64))
    minhash: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DedupBand(Base):
    """MinHash LSH band keys of accepted documents as 64-bit integers: the near-duplicate index."""

    __tablename__ = "dedup_band_keys"

    band_key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("corpus_documents.doc_id"), primary_key=True)


class CreditHold(Base):
    """A pending transfer: the most a running API request may cost, set aside before the
    upstream is called.

    Resolved exactly once (`ledger_schema.HoldResolution`): posted (usage charged, the rest
    returned), voided, or expired by the sweep; `status` caches the outcome for the sweep.
    """

    __tablename__ = "credit_holds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    free_tokens: Mapped[int] = mapped_column(BigInteger)
    krw: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """The pending amount: the most tokens a post against this hold may charge."""
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RateCounter(Base):
    """Requests and tokens of one API key in one minute: the limiter shared by all gateway workers."""

    __tablename__ = "rate_counters"

    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageEvent(Base):
    """One API request as metered: tokens in the served model's tokenizer, the free/paid split, KRW."""

    __tablename__ = "usage_events"
    __table_args__ = (Index("ix_usage_events_customer_created", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(64))
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    free_prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    free_completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    krw: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


from tokenclub.db import export_schema as export_schema  # noqa: E402
from tokenclub.db import guard_schema as guard_schema  # noqa: E402
from tokenclub.db import ledger_schema as ledger_schema  # noqa: E402
from tokenclub.db import portal_schema as portal_schema  # noqa: E402
from tokenclub.db import settlement_schema as settlement_schema  # noqa: E402
