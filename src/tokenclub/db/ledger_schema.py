"""The resolutions of holds: the one immutable record that closes a pending transfer.

A hold (`credit_holds`) is a pending transfer; its resolution (posted, voided or expired) is
a row here whose primary key is the hold's id, so the database itself refuses a second one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenclub.db.schema import Base
from tokenclub.db.types import UTCDateTime, utcnow


class HoldResolution(Base):
    """How a hold ended: what was charged against it, and what the upstream had reported.

    `capped` marks an upstream usage anomaly: the reported usage exceeded the hold, so the
    charge stopped at the hold.
    """

    __tablename__ = "hold_resolutions"

    hold_id: Mapped[str] = mapped_column(ForeignKey("credit_holds.id"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    reported_prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    reported_completion_tokens: Mapped[int] = mapped_column(BigInteger)
    krw: Mapped[int] = mapped_column(BigInteger)
    capped: Mapped[bool] = mapped_column(Boolean, index=True)
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
