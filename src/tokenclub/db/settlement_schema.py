"""Tables of the profit-share settlement: periods, the operator's records, closings and lines.

A period is closed by inserting its `SettlementClosing` and `SettlementLine` rows; nothing
of a closed period is ever updated, so a closing row's presence is the period's state. A
wrong record of an open period is voided by inserting its `SettlementRecordVoid`: the record
itself stays as it was entered.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenclub.db.schema import Base
from tokenclub.db.types import UTCDateTime, utcnow


class SettlementPeriod(Base):
    """A half-open UTC range [starts_at, ends_at) whose API profit is shared once."""

    __tablename__ = "settlement_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettlementRecord(Base):
    """Revenue or cost the operator enters by hand for a period (e.g. an enterprise contract)."""

    __tablename__ = "settlement_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("settlement_periods.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    krw: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettlementRecordVoid(Base):
    """The void of one record: who, when and why. At most one per record (its primary key)."""

    __tablename__ = "settlement_record_voids"

    record_id: Mapped[int] = mapped_column(ForeignKey("settlement_records.id"), primary_key=True)
    voided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_by: Mapped[str] = mapped_column(String(400))
    """Who voided it: `user:<id> <email>` from the portal, the operator's name from the CLI."""
    reason: Mapped[str] = mapped_column(Text)


class SettlementClosing(Base):
    """Everything the close of a period decided, frozen: inputs, parameters and the pool."""

    __tablename__ = "settlement_closings"

    period_id: Mapped[int] = mapped_column(ForeignKey("settlement_periods.id"), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    policy: Mapped[str] = mapped_column(String(64))
    pool_rate: Mapped[str] = mapped_column(String(32))
    pool_basis: Mapped[str] = mapped_column(String(16), server_default="profit")
    """What the pool rate applies to: `profit` (revenue − cost) or `revenue` (API revenue)."""
    min_payout_krw: Mapped[int] = mapped_column(BigInteger)
    price_input_krw_per_mtok: Mapped[int] = mapped_column(BigInteger)
    price_output_krw_per_mtok: Mapped[int] = mapped_column(BigInteger)
    api_revenue_krw: Mapped[int] = mapped_column(BigInteger)
    manual_revenue_krw: Mapped[int] = mapped_column(BigInteger)
    cost_krw: Mapped[int] = mapped_column(BigInteger)
    pool_krw: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)


class SettlementLine(Base):
    """One partner's result in a closed period; `carried_out_krw` is the next period's carry-in."""

    __tablename__ = "settlement_lines"

    period_id: Mapped[int] = mapped_column(ForeignKey("settlement_closings.period_id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True, index=True)
    tokens: Mapped[int] = mapped_column(BigInteger)
    allocated_krw: Mapped[int] = mapped_column(BigInteger)
    carried_in_krw: Mapped[int] = mapped_column(BigInteger)
    paid_krw: Mapped[int] = mapped_column(BigInteger)
    carried_out_krw: Mapped[int] = mapped_column(BigInteger)
    free_prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    free_completion_tokens: Mapped[int] = mapped_column(BigInteger)
    free_usage_krw: Mapped[int] = mapped_column(BigInteger)
