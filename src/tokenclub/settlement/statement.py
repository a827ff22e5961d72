"""A partner's statement for a closed period: its own line and the period's public figures.

Built from the frozen closing and this partner's line only; other partners' lines are never
read, so nothing of theirs can leak into a statement or its exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy.orm import Session

from tokenclub.accounts.partners import get_partner
from tokenclub.db.settlement_schema import SettlementClosing, SettlementLine
from tokenclub.errors import StateError
from tokenclub.export.registry import models_trained_on
from tokenclub.ledger.pricing import PriceList
from tokenclub.settlement.periods import counted_records, get_period
from tokenclub.settlement.settle import PeriodFigures, payout_key, token_share


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    krw: int
    note: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Statement(PeriodFigures):
    """Everything a partner (and its lawyer) needs to re-check its payout by hand."""

    partner_id: int
    partner_name: str
    period: str
    starts_at: datetime
    ends_at: datetime
    closed_at: datetime
    policy: str
    pool_rate: str
    pool_basis: str
    api_revenue_krw: int
    manual_revenue_krw: int
    cost_krw: int
    records: tuple[Record, ...]
    pool_krw: int
    total_tokens: int
    tokens: int
    allocated_krw: int
    carried_in_krw: int
    min_payout_krw: int
    paid_krw: int
    carried_out_krw: int
    free_prompt_tokens: int
    free_completion_tokens: int
    prices: PriceList
    free_usage_krw: int
    trained_models: tuple[str, ...] = ()

    @property
    def share(self) -> Fraction:
        return token_share(self.tokens, self.total_tokens)

    @property
    def due_krw(self) -> int:
        return self.allocated_krw + self.carried_in_krw

    @property
    def ledger_key(self) -> str | None:
        """The idempotency key of the payout's ledger transaction, if anything was paid."""
        return payout_key(self.period, self.partner_id) if self.paid_krw else None

    def as_dict(self) -> dict[str, object]:
        """Flat, stable field names: the JSON output and the CSV export use exactly these."""
        return {
            "partner": self.partner_id,
            "partner_name": self.partner_name,
            "period": self.period,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "closed_at": self.closed_at.isoformat(),
            "api_revenue_krw": self.api_revenue_krw,
            "manual_revenue_krw": self.manual_revenue_krw,
            "revenue_krw": self.revenue_krw,
            "cost_krw": self.cost_krw,
            "profit_krw": self.profit_krw,
            "pool_rate": self.pool_rate,
            "pool_basis": self.pool_basis,
            "pool_krw": self.pool_krw,
            "policy": self.policy,
            "total_tokens": self.total_tokens,
            "tokens": self.tokens,
            "share": f"{self.share.numerator}/{self.share.denominator}",
            "allocated_krw": self.allocated_krw,
            "carried_in_krw": self.carried_in_krw,
            "due_krw": self.due_krw,
            "min_payout_krw": self.min_payout_krw,
            "paid_krw": self.paid_krw,
            "carried_out_krw": self.carried_out_krw,
            "ledger_key": self.ledger_key,
            "free_prompt_tokens": self.free_prompt_tokens,
            "free_completion_tokens": self.free_completion_tokens,
            "price_input_krw_per_mtok": self.prices.input_krw_per_mtok,
            "price_output_krw_per_mtok": self.prices.output_krw_per_mtok,
            "free_usage_krw": self.free_usage_krw,
            "trained_models": ", ".join(self.trained_models),
            "records": [
                {"kind": r.kind, "krw": r.krw, "note": r.note, "created_at": r.created_at.isoformat()}
                for r in self.records
            ],
        }


def build_statement(session: Session, partner_id: int, period_name: str) -> Statement:
    """The statement of one partner for one closed period (zeros where it had no line)."""
    partner = get_partner(session, partner_id)
    period = get_period(session, period_name)
    closing = session.get(SettlementClosing, period.id)
    if closing is None:
        raise StateError(f"period {period.name} is open; statements are issued when it closes")
    line = session.get(SettlementLine, (period.id, partner.id))
    records = tuple(Record(r.kind, r.krw, r.note, r.created_at) for r in counted_records(session, period))
    return Statement(
        partner_id=partner.id,
        partner_name=partner.name,
        period=period.name,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        closed_at=closing.closed_at,
        policy=closing.policy,
        pool_rate=closing.pool_rate,
        pool_basis=closing.pool_basis,
        api_revenue_krw=closing.api_revenue_krw,
        manual_revenue_krw=closing.manual_revenue_krw,
        cost_krw=closing.cost_krw,
        records=records,
        pool_krw=closing.pool_krw,
        total_tokens=closing.total_tokens,
        tokens=line.tokens if line else 0,
        allocated_krw=line.allocated_krw if line else 0,
        carried_in_krw=line.carried_in_krw if line else 0,
        min_payout_krw=closing.min_payout_krw,
        paid_krw=line.paid_krw if line else 0,
        carried_out_krw=line.carried_out_krw if line else 0,
        free_prompt_tokens=line.free_prompt_tokens if line else 0,
        free_completion_tokens=line.free_completion_tokens if line else 0,
        prices=PriceList(closing.price_input_krw_per_mtok, closing.price_output_krw_per_mtok),
        free_usage_krw=line.free_usage_krw if line else 0,
        trained_models=tuple(model.name for model in models_trained_on(session, partner.id)),
    )
