"""Guard events: every reply or prompt the leak guard stopped, flagged or let through under watch."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from tokenclub.db.schema import Base
from tokenclub.db.types import UTCDateTime, utcnow


class GuardEvent(Base):
    """One guard decision on one request: where it looked, what it found, what it did.

    `partner_id` is the partner whose text matched, when the index could tell; partners count
    the attempts on their text from it, the operator sees all rows.
    """

    __tablename__ = "guard_events"
    __table_args__ = (Index("ix_guard_events_partner_created", "partner_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True, nullable=True)
    stage: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    matched_length: Mapped[int] = mapped_column(BigInteger, default=0)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), nullable=True)
    reasons: Mapped[str] = mapped_column(Text, default="")


class GuardTally(Base):
    """Letters of one partner's text copied by one key in one time bucket, in runs too short to
    be a leak on their own (`guard/detection/accumulate.py`); old buckets are deleted as the key
    is tallied."""

    __tablename__ = "guard_tallies"

    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    letters: Mapped[int] = mapped_column(BigInteger, default=0)


class GuardFragment(Base):
    """The ends of one copied run a customer was sent (`guard/detection/fragments.py`), kept for the
    accumulation window so that the next piece of the same passage is seen as joining it.

    `head`/`tail` are keyed prefix polynomials (little-endian 64-bit words), not letters; they
    only mean something to the index generation named in `generation`."""

    __tablename__ = "guard_fragments"
    __table_args__ = (Index("ix_guard_fragments_customer_created", "customer_id", "created_s"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_s: Mapped[int] = mapped_column(BigInteger)
    generation: Mapped[str] = mapped_column(String(32))
    hits: Mapped[int] = mapped_column(Integer)
    partners: Mapped[str] = mapped_column(Text)
    first: Mapped[int] = mapped_column(Integer)
    head: Mapped[bytes] = mapped_column(LargeBinary)
    last: Mapped[int] = mapped_column(Integer)
    tail: Mapped[bytes] = mapped_column(LargeBinary)
    letters: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class GuardCoverage(Base):
    """One indexed gram of one document that a customer was sent (`guard/detection/coverage.py`): the
    distinct grams per (customer, document) are what it has collected, whatever the piece size.

    `doc` and `ordinal` number the document and the gram within it in the index generation
    `generation` (`guard/indexing/doctable.py`); `partner_id` is the document's partner."""

    __tablename__ = "guard_coverage"
    __table_args__ = (Index("ix_guard_coverage_document", "generation", "doc"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    generation: Mapped[str] = mapped_column(String(32), primary_key=True)
    doc: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    partner_id: Mapped[int] = mapped_column(BigInteger)
    created_s: Mapped[int] = mapped_column(BigInteger)
    # asked for after the document was capped (the reply was blocked): refused, not sent
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class GuardCoverageHold(Base):
    """A request admitted under a coverage budget and not yet tallied: concurrent admissions of
    one customer count each other's holds, so together they cannot overrun the budget."""

    __tablename__ = "guard_coverage_holds"
    __table_args__ = (Index("ix_guard_coverage_holds_customer", "customer_id", "created_s"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    created_s: Mapped[int] = mapped_column(BigInteger)


class GuardCustomerState(Base):
    """When the guard last kept state for a customer (grams, fragments or credits): an admission
    reads this one row and, when it is older than every window, skips reading the rest."""

    __tablename__ = "guard_customer_state"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id"), primary_key=True, autoincrement=False
    )
    last_s: Mapped[int] = mapped_column(BigInteger)


class GuardCappedDocument(Base):
    """A contributed document whose coverage over all customers passed the document cap: every
    reply carrying its grams is refused until `capped_s` leaves the coverage window. Gateway
    workers cache the set and reload it when the table's row count or newest id changes."""

    __tablename__ = "guard_capped_documents"
    __table_args__ = (UniqueConstraint("generation", "doc"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[str] = mapped_column(String(32))
    doc: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    letters: Mapped[int] = mapped_column(Integer)
    capped_s: Mapped[int] = mapped_column(BigInteger)
