"""Closing a period: read its revenue, cost and weights, run the maths, freeze the result, post payouts.

All of it happens in the caller's one transaction, under a lock on the period row, so a
close either happens whole or not at all, and two closers cannot both close. Closing a
closed period reads the frozen rows back: the same result, nothing written.

Set-based on purpose: a fixed number of statements whatever the number of partners (one
aggregate per input, bulk inserts for lines and ledger rows), so 100,000 partners settle in
seconds; `bench/bench_settle.py` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import ColumnElement, Integer, func, insert, literal_column, select
from sqlalchemy.orm import Session

from tokenclub.db.schema import Customer, LedgerAccount, LedgerEntry, LedgerTransaction, Partner, UsageEvent
from tokenclub.db.settlement_schema import SettlementClosing, SettlementLine, SettlementPeriod
from tokenclub.db.types import UTCDateTime, utcnow
from tokenclub.errors import IdempotencyConflictError, NotFoundError, StateError
from tokenclub.ledger.chart import API_REVENUE_KRW, PAYABLE_KRW, system_account
from tokenclub.ledger.operations import PAYOUT_KIND, post_payouts
from tokenclub.ledger.pricing import PriceList
from tokenclub.settings import Settings
from tokenclub.settlement.allocation import Payout, PoolBasis, allocate, free_usage_krw, pay_out, pool_krw
from tokenclub.settlement.periods import RecordKind, get_or_open, is_closed, record_totals
from tokenclub.settlement.weights import Bounds, CreditedTokens, WeightPolicy

NOTHING = Payout(0, 0, 0)


def payout_key(period_name: str, partner_id: int) -> str:
    """The idempotency key of a partner's payout for a period: at most one per pair, ever."""
    return f"{PAYOUT_KIND}:{period_name}:{partner_id}"


@dataclass(frozen=True, slots=True)
class Terms:
    """The operator's settings that a close freezes into the period."""

    pool_rate: Decimal
    min_payout_krw: int
    prices: PriceList
    pool_basis: PoolBasis = PoolBasis.PROFIT

    @classmethod
    def from_settings(cls, settings: Settings, pool_basis: PoolBasis | None = None) -> Terms:
        # The float setting's shortest repr (0.3) is the decimal the operator typed.
        return cls(
            Decimal(repr(settings.pool_rate)),
            settings.min_payout_krw,
            PriceList(settings.price_input_krw_per_mtok, settings.price_output_krw_per_mtok),
            pool_basis or PoolBasis(settings.pool_basis),
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One partner's result in a closed period."""

    partner_id: int
    tokens: int
    allocated_krw: int
    carried_in_krw: int
    paid_krw: int
    carried_out_krw: int
    free_prompt_tokens: int
    free_completion_tokens: int
    free_usage_krw: int

    def share(self, total_tokens: int) -> Fraction:
        return token_share(self.tokens, total_tokens)


def token_share(tokens: int, total_tokens: int) -> Fraction:
    """A partner's exact share of the period's weight (none when nobody had any)."""
    return Fraction(tokens, total_tokens) if total_tokens else Fraction(0)


class PeriodFigures:
    """Revenue and profit derived from a closing's frozen inputs: a closing and every statement
    of it compute them alike."""

    __slots__ = ()
    api_revenue_krw: int
    manual_revenue_krw: int
    cost_krw: int

    @property
    def revenue_krw(self) -> int:
        return self.api_revenue_krw + self.manual_revenue_krw

    @property
    def profit_krw(self) -> int:
        return self.revenue_krw - self.cost_krw


@dataclass(frozen=True, slots=True)
class Settlement(PeriodFigures):
    """A closed period as frozen: inputs, terms, pool and every partner's line."""

    period: str
    starts_at: datetime
    ends_at: datetime
    closed_at: datetime
    policy: str
    pool_rate: str
    pool_basis: str
    min_payout_krw: int
    prices: PriceList
    api_revenue_krw: int
    manual_revenue_krw: int
    cost_krw: int
    pool_krw: int
    total_tokens: int
    lines: tuple[Line, ...]
    created: bool = field(default=False, compare=False)
    """True only for the call that closed the period."""

    def as_dict(self) -> dict[str, object]:
        return {
            "period": self.period,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "closed_at": self.closed_at.isoformat(),
            "policy": self.policy,
            "pool_rate": self.pool_rate,
            "pool_basis": self.pool_basis,
            "min_payout_krw": self.min_payout_krw,
            "api_revenue_krw": self.api_revenue_krw,
            "manual_revenue_krw": self.manual_revenue_krw,
            "revenue_krw": self.revenue_krw,
            "cost_krw": self.cost_krw,
            "profit_krw": self.profit_krw,
            "pool_krw": self.pool_krw,
            "total_tokens": self.total_tokens,
            "paid_krw": sum(line.paid_krw for line in self.lines),
            "carried_in_krw": sum(line.carried_in_krw for line in self.lines),
            "carried_out_krw": sum(line.carried_out_krw for line in self.lines),
            "payouts": [
                {
                    "partner": line.partner_id,
                    "tokens": line.tokens,
                    "share": float(line.share(self.total_tokens)),
                    "krw": line.allocated_krw,
                    "carried_in_krw": line.carried_in_krw,
                    "paid_krw": line.paid_krw,
                    "carried_out_krw": line.carried_out_krw,
                }
                for line in self.lines
            ],
        }


def api_revenue_krw(session: Session, bounds: Bounds) -> int:
    """Net credits to `system:api_revenue_krw` in ledger transactions written within the range."""
    account_id = session.scalar(
        select(LedgerAccount.id).where(LedgerAccount.code == system_account(API_REVENUE_KRW))
    )
    total = session.scalar(
        select(func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerEntry.account_id == account_id,
            LedgerTransaction.created_at >= bounds.starts_at,
            LedgerTransaction.created_at < bounds.ends_at,
        )
    )
    return -int(total or 0)


def free_usage(session: Session, bounds: Bounds) -> dict[int, tuple[int, int]]:
    """Partner id → (free prompt tokens, free completion tokens) its API keys used in the range."""
    customer: ColumnElement[int] = UsageEvent.customer_id.expression
    created: ColumnElement[datetime] = UsageEvent.created_at.expression
    if session.get_bind().dialect.name == "sqlite":
        # SQLite would walk the (customer_id, created_at) index and fetch every event row in
        # random order; unary plus keeps it off the index: one sequential scan and a sort,
        # three times faster at 10 million events (bench/bench_settle.py).
        customer = literal_column(f"+{UsageEvent.__tablename__}.customer_id", Integer)
        created = literal_column(f"+{UsageEvent.__tablename__}.created_at", UTCDateTime)
    per_customer = session.execute(
        select(customer, func.sum(UsageEvent.free_prompt_tokens), func.sum(UsageEvent.free_completion_tokens))
        .where(created >= bounds.starts_at, created < bounds.ends_at)
        .group_by(customer)
    ).all()
    partner_of = {
        customer_id: partner_id
        for customer_id, partner_id in session.execute(select(Customer.id, Customer.partner_id))
        if partner_id is not None
    }
    return {
        partner_of[customer_id]: (int(prompt), int(completion))
        for customer_id, prompt, completion in per_customer
        if customer_id in partner_of and (prompt or completion)
    }


def _carried_in(session: Session, period: SettlementPeriod) -> dict[int, int]:
    """What the last closed period before this one carried forward (it includes all earlier carry)."""
    previous = session.scalar(
        select(SettlementPeriod.id)
        .join(SettlementClosing, SettlementClosing.period_id == SettlementPeriod.id)
        .where(SettlementPeriod.ends_at <= period.starts_at)
        .order_by(SettlementPeriod.ends_at.desc())
        .limit(1)
    )
    if previous is None:
        return {}
    rows = session.execute(
        select(SettlementLine.partner_id, SettlementLine.carried_out_krw).where(
            SettlementLine.period_id == previous, SettlementLine.carried_out_krw > 0
        )
    )
    return {partner: krw for partner, krw in rows}


def _refuse_early_or_out_of_order(session: Session, period: SettlementPeriod, now: datetime) -> None:
    if now < period.ends_at:
        raise StateError(f"period {period.name} ends {period.ends_at.isoformat()}; it cannot close before")
    earlier_open = session.scalar(
        select(SettlementPeriod.name)
        .where(
            SettlementPeriod.ends_at <= period.starts_at,
            ~select(SettlementClosing.period_id)
            .where(SettlementClosing.period_id == SettlementPeriod.id)
            .exists(),
        )
        .order_by(SettlementPeriod.starts_at)
        .limit(1)
    )
    if earlier_open is not None:
        raise StateError(f"period {earlier_open} is still open; close periods in order")


def _post_payouts(session: Session, period_name: str, paid: dict[int, int]) -> None:
    """One ledger transaction per payout, posted in bulk by the ledger.

    The keys are new: they are written only here, in the transaction that closes the period,
    and a closed period never posts again (a clash is refused whole). The digest is the
    ledger's own, so a later `post()` with the same key and legs replays instead of conflicting.
    """
    if not paid:
        return
    payable = {
        partner: code
        for partner, code in session.execute(
            select(Customer.partner_id, LedgerAccount.code)
            .join(LedgerAccount, LedgerAccount.customer_id == Customer.id)
            .where(Customer.partner_id.is_not(None), LedgerAccount.kind == PAYABLE_KRW.name)
        )
    }
    missing = sorted(paid.keys() - payable.keys())
    if missing:
        raise StateError(
            f"ledger accounts missing for payouts (partners {missing[:5]}); run `tokenclub init`"
        )
    try:
        post_payouts(
            session,
            {payout_key(period_name, partner): (payable[partner], krw) for partner, krw in paid.items()},
            f"profit share {period_name}",
        )
    except NotFoundError as exc:
        raise StateError(f"ledger accounts missing for payouts: {exc}; run `tokenclub init`") from exc
    except IdempotencyConflictError as exc:
        raise StateError(f"the ledger already holds payouts keyed to period {period_name}") from exc


def load_settlement(session: Session, period: SettlementPeriod) -> Settlement:
    """A closed period's frozen result, read back exactly as the close wrote it."""
    closing = session.get(SettlementClosing, period.id)
    if closing is None:
        raise StateError(f"period {period.name} is not closed yet")
    lines = tuple(
        Line(
            row.partner_id,
            row.tokens,
            row.allocated_krw,
            row.carried_in_krw,
            row.paid_krw,
            row.carried_out_krw,
            row.free_prompt_tokens,
            row.free_completion_tokens,
            row.free_usage_krw,
        )
        for row in session.scalars(
            select(SettlementLine)
            .where(SettlementLine.period_id == period.id)
            .order_by(SettlementLine.partner_id)
        )
    )
    return _settlement(period, closing, lines)


def _settlement(
    period: SettlementPeriod, closing: SettlementClosing, lines: tuple[Line, ...], created: bool = False
) -> Settlement:
    return Settlement(
        period=period.name,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        closed_at=closing.closed_at,
        policy=closing.policy,
        pool_rate=closing.pool_rate,
        pool_basis=closing.pool_basis,
        min_payout_krw=closing.min_payout_krw,
        prices=PriceList(closing.price_input_krw_per_mtok, closing.price_output_krw_per_mtok),
        api_revenue_krw=closing.api_revenue_krw,
        manual_revenue_krw=closing.manual_revenue_krw,
        cost_krw=closing.cost_krw,
        pool_krw=closing.pool_krw,
        total_tokens=closing.total_tokens,
        lines=lines,
        created=created,
    )


def _line(partner: int, tokens: int, payout: Payout, usage: tuple[int, int], terms: Terms) -> Line:
    free_prompt, free_completion = usage
    return Line(
        partner,
        tokens,
        payout.allocated,
        payout.carried_in,
        payout.paid,
        payout.carried_out,
        free_prompt,
        free_completion,
        free_usage_krw(free_prompt, free_completion, terms.prices),
    )


def close_period(
    session: Session,
    name: str,
    terms: Terms,
    *,
    policy: WeightPolicy | None = None,
    now: datetime | None = None,
) -> Settlement:
    """Close a period (a `YYYY-MM` month opens itself) and return its settlement.

    Closing a closed period returns the frozen result and writes nothing. With no partner
    holding any weight there is no one to share with, so the pool is zero.
    """
    period = get_or_open(session, name, lock=True)
    if is_closed(session, period):
        return load_settlement(session, period)
    moment = (now or utcnow()).astimezone(UTC)
    _refuse_early_or_out_of_order(session, period, moment)
    bounds = Bounds(period.starts_at, period.ends_at)
    chosen = policy or CreditedTokens()
    weights = chosen.weights(session, bounds)
    total_tokens = sum(weights.values())
    api = api_revenue_krw(session, bounds)
    records = record_totals(session, period)
    pool = (
        pool_krw(
            api + records[RecordKind.REVENUE],
            records[RecordKind.COST],
            Fraction(terms.pool_rate),
            terms.pool_basis,
        )
        if total_tokens
        else 0
    )
    # Ties between equal remainders go by partner name, not id: ids follow the order partners
    # were created in, and the split must not depend on that.
    names: dict[int, str] = {pid: name for pid, name in session.execute(select(Partner.id, Partner.name))}
    by_name = allocate(pool, {names[partner]: weight for partner, weight in weights.items()})
    allocated = {partner: by_name[names[partner]] for partner in weights}
    payouts = pay_out(allocated, _carried_in(session, period), terms.min_payout_krw)
    usage = free_usage(session, bounds)
    lines = tuple(
        _line(
            partner, weights.get(partner, 0), payouts.get(partner, NOTHING), usage.get(partner, (0, 0)), terms
        )
        for partner in sorted(payouts.keys() | usage.keys())
    )
    closing = SettlementClosing(
        period_id=period.id,
        closed_at=moment,
        policy=chosen.name,
        pool_rate=str(terms.pool_rate),
        pool_basis=terms.pool_basis.value,
        min_payout_krw=terms.min_payout_krw,
        price_input_krw_per_mtok=terms.prices.input_krw_per_mtok,
        price_output_krw_per_mtok=terms.prices.output_krw_per_mtok,
        api_revenue_krw=api,
        manual_revenue_krw=records[RecordKind.REVENUE],
        cost_krw=records[RecordKind.COST],
        pool_krw=pool,
        total_tokens=total_tokens,
    )
    session.add(closing)
    session.flush()
    if lines:
        session.connection().execute(
            insert(SettlementLine),
            [
                {
                    "period_id": period.id,
                    "partner_id": line.partner_id,
                    "tokens": line.tokens,
                    "allocated_krw": line.allocated_krw,
                    "carried_in_krw": line.carried_in_krw,
                    "paid_krw": line.paid_krw,
                    "carried_out_krw": line.carried_out_krw,
                    "free_prompt_tokens": line.free_prompt_tokens,
                    "free_completion_tokens": line.free_completion_tokens,
                    "free_usage_krw": line.free_usage_krw,
                }
                for line in lines
            ],
        )
    _post_payouts(session, period.name, {ln.partner_id: ln.paid_krw for ln in lines if ln.paid_krw})
    return _settlement(period, closing, lines, created=True)
