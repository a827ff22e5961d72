"""Holds, then post or void: paying for API requests through the ledger.

A hold moves the request's worst case out of the free allowance (and, beyond it, out of the
customer's KRW credit line) into held accounts, so concurrent requests can never spend the
same allowance twice: the guarded accounts refuse atomically. Settling moves the real usage
to used/receivable and returns the rest; releasing returns everything. Each happens once:
the hold row is locked and its status checked, and every posting has an idempotency key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.db.schema import CreditHold, LedgerAccount, UsageEvent
from tokenclub.db.types import utcnow
from tokenclub.errors import InsufficientBalanceError, InvalidInputError, StateError
from tokenclub.gateway.pricing import PriceList, Split, krw_due, plan_hold, split_usage
from tokenclub.ledger.chart import (
    API_REVENUE_KRW,
    CREDIT_LINE_HELD_KRW,
    CREDIT_LINE_KRW,
    CREDIT_LINES_ISSUED_KRW,
    FREE_ALLOWANCE,
    FREE_ALLOWANCE_HELD,
    FREE_TOKENS_USED,
    PAID_TOKENS,
    PAID_TOKENS_SOLD,
    RECEIVABLE_KRW,
    USAGE_MICRO_KRW,
    USAGE_MICRO_KRW_BILLED,
    AccountKind,
    customer_account,
    system_account,
)
from tokenclub.ledger.posting import Leg, balance, post

HOLD_ATTEMPTS = 3


class QuotaExceededError(InsufficientBalanceError):
    """Neither free allowance nor credit line covers the request's worst case."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the usage event records besides the token counts."""

    request_id: str
    key_id: int
    model: str
    endpoint: str
    streamed: bool


def _legs(*pairs: tuple[str, int]) -> list[Leg]:
    return [Leg(account, amount) for account, amount in pairs if amount != 0]


def grant_credit_line(session: Session, customer_id: int, krw: int, key: str) -> None:
    """Let a customer spend `krw` more at list price (the operator's spending limit)."""
    if krw <= 0:
        raise InvalidInputError(f"credit line amount must be positive, got {krw}")
    post(
        session,
        key,
        "grant_credit_line",
        [
            Leg(system_account(CREDIT_LINES_ISSUED_KRW), krw),
            Leg(customer_account(customer_id, CREDIT_LINE_KRW), -krw),
        ],
    )


def place_hold(
    session: Session, customer_id: int, key_id: int, worst_tokens: int, prices: PriceList, ttl: timedelta
) -> CreditHold:
    """Set aside the worst case of a request, or refuse with `QuotaExceededError` and write nothing."""
    mine = customer_account(customer_id, FREE_ALLOWANCE)
    hold_id = uuid.uuid4().hex
    for attempt in range(HOLD_ATTEMPTS):
        # A concurrent request may take the allowance between the read and the guarded post;
        # plan again from the new balance rather than refuse a request the credit line covers.
        plan = plan_hold(worst_tokens, balance(session, mine), prices)
        legs = _legs(
            (mine, plan.free_tokens),
            (customer_account(customer_id, FREE_ALLOWANCE_HELD), -plan.free_tokens),
            (customer_account(customer_id, CREDIT_LINE_KRW), plan.krw),
            (customer_account(customer_id, CREDIT_LINE_HELD_KRW), -plan.krw),
        )
        try:
            if legs:
                post(session, f"hold:{hold_id}", "hold", legs)
            break
        except InsufficientBalanceError as exc:
            if attempt == HOLD_ATTEMPTS - 1:
                raise QuotaExceededError(
                    "insufficient quota: free allowance and spending limit do not cover this request"
                ) from exc
    now = utcnow()
    hold = CreditHold(
        id=hold_id,
        customer_id=customer_id,
        key_id=key_id,
        free_tokens=plan.free_tokens,
        krw=plan.krw,
        status="pending",
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(hold)
    session.flush()
    return hold


def _lock_hold(session: Session, hold_id: str) -> CreditHold:
    hold = session.get(CreditHold, hold_id, with_for_update=True, populate_existing=True)
    if hold is None:
        raise StateError(f"hold {hold_id} does not exist")
    return hold


def _billed_micro(session: Session, customer_id: int) -> int:
    code = customer_account(customer_id, USAGE_MICRO_KRW)
    session.execute(select(LedgerAccount.id).where(LedgerAccount.code == code).with_for_update())
    return balance(session, code)


def _acct(customer_id: int, kind: AccountKind) -> str:
    return customer_account(customer_id, kind)


def settle_hold(
    session: Session, hold_id: str, usage: Usage, prices: PriceList, info: RequestInfo, latency_ms: int
) -> UsageEvent:
    """Charge real usage against a hold (free first, then list price) and return the rest, once."""
    hold = _lock_hold(session, hold_id)
    if hold.status != "pending":
        existing = session.scalar(select(UsageEvent).where(UsageEvent.request_id == info.request_id))
        if existing is None:
            raise StateError(f"hold {hold_id} is already {hold.status}")
        return existing
    cid = hold.customer_id
    split: Split = split_usage(usage.prompt_tokens, usage.completion_tokens, hold.free_tokens)
    cost_micro = prices.cost_micro_krw(split.paid_prompt, split.paid_completion)
    krw = krw_due(_billed_micro(session, cid), cost_micro) if cost_micro else 0
    from_line = min(krw, hold.krw)
    legs = _legs(
        (_acct(cid, FREE_ALLOWANCE_HELD), hold.free_tokens),
        (_acct(cid, FREE_TOKENS_USED), -split.free),
        (_acct(cid, FREE_ALLOWANCE), -(hold.free_tokens - split.free)),
        (_acct(cid, PAID_TOKENS), split.paid),
        (system_account(PAID_TOKENS_SOLD), -split.paid),
        (_acct(cid, CREDIT_LINE_HELD_KRW), hold.krw),
        (_acct(cid, CREDIT_LINE_KRW), -(hold.krw - from_line)),
        (system_account(CREDIT_LINES_ISSUED_KRW), -from_line),
        (_acct(cid, RECEIVABLE_KRW), krw),
        (system_account(API_REVENUE_KRW), -krw),
        (_acct(cid, USAGE_MICRO_KRW), cost_micro),
        (system_account(USAGE_MICRO_KRW_BILLED), -cost_micro),
    )
    if legs:
        post(session, f"settle:{hold_id}", "api_usage", legs, memo=info.request_id)
    hold.status = "settled"
    hold.closed_at = utcnow()
    event = UsageEvent(
        request_id=info.request_id,
        customer_id=cid,
        key_id=info.key_id,
        model=info.model,
        endpoint=info.endpoint,
        streamed=info.streamed,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        free_prompt_tokens=split.free_prompt,
        free_completion_tokens=split.free_completion,
        paid_prompt_tokens=split.paid_prompt,
        paid_completion_tokens=split.paid_completion,
        krw=krw,
        latency_ms=latency_ms,
        status="ok",
    )
    session.add(event)
    session.flush()
    return event


def release_hold(session: Session, hold_id: str, status: str = "released") -> bool:
    """Return a whole hold (upstream failure, expiry); False if it was already closed."""
    hold = _lock_hold(session, hold_id)
    if hold.status != "pending":
        return False
    cid = hold.customer_id
    legs = _legs(
        (_acct(cid, FREE_ALLOWANCE_HELD), hold.free_tokens),
        (_acct(cid, FREE_ALLOWANCE), -hold.free_tokens),
        (_acct(cid, CREDIT_LINE_HELD_KRW), hold.krw),
        (_acct(cid, CREDIT_LINE_KRW), -hold.krw),
    )
    if legs:
        post(session, f"release:{hold_id}", "release_hold", legs)
    hold.status = status
    hold.closed_at = utcnow()
    session.flush()
    return True


def record_failure(
    session: Session, info: RequestInfo, customer_id: int, status: str, latency_ms: int
) -> None:
    """A usage event for a request that was charged nothing (refused or failed upstream)."""
    session.add(
        UsageEvent(
            request_id=info.request_id,
            customer_id=customer_id,
            key_id=info.key_id,
            model=info.model,
            endpoint=info.endpoint,
            streamed=info.streamed,
            latency_ms=latency_ms,
            status=status,
        )
    )
    session.flush()


def stale_holds(session: Session, now: datetime) -> list[str]:
    return list(
        session.scalars(
            select(CreditHold.id).where(CreditHold.status == "pending", CreditHold.expires_at < now)
        )
    )
