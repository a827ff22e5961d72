"""Holds, then post or void: paying for API requests through the ledger.

A hold moves the request's worst case out of the free allowance (and, beyond it, out of the
customer's KRW credit line) into held accounts, so concurrent requests can never spend the
same allowance twice. Settling moves the real usage to used/receivable and returns the rest;
releasing returns everything. Each happens once: the hold row is locked and its status
checked, and every posting has an idempotency key.

This is the gateway's hot path, so it is written in SQLAlchemy Core with statements built once
and run on the driver's cursor (`db/prebuilt.py`):
the accounts a posting touches are locked and read in one statement (`lock_accounts`), the
plan and the overdraft guards are checked on those locked balances, and the writes follow
with nothing to undo, so no savepoint and no retry loop are needed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from tokenclub.db.prebuilt import Prebuilt
from tokenclub.db.schema import CreditHold, UsageEvent
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
from tokenclub.ledger.posting import Leg, lock_accounts, post, post_locked


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


@dataclass(frozen=True, slots=True)
class Hold:
    """A placed hold: what was set aside, in free tokens and in KRW of credit line."""

    id: str
    customer_id: int
    free_tokens: int
    krw: int


@dataclass(frozen=True, slots=True)
class Charge:
    """A settled request as its usage event recorded it (`id` is the event's id)."""

    id: int
    request_id: str
    free_prompt_tokens: int
    free_completion_tokens: int
    paid_prompt_tokens: int
    paid_completion_tokens: int
    krw: int


_HOLDS = cast(Table, CreditHold.__table__)
_EVENTS = cast(Table, UsageEvent.__table__)
_INSERT_HOLD = Prebuilt(insert(_HOLDS))
_LOCK_HOLD = Prebuilt(
    select(_HOLDS.c.customer_id, _HOLDS.c.free_tokens, _HOLDS.c.krw, _HOLDS.c.status)
    .where(_HOLDS.c.id == bindparam("hold_id"))
    .with_for_update()
)
_CLOSE_HOLD = Prebuilt(
    update(_HOLDS)
    .where(_HOLDS.c.id == bindparam("hold_id"))
    .values(status=bindparam("status"), closed_at=bindparam("closed_at"))
)
_INSERT_EVENT = Prebuilt(insert(_EVENTS).returning(_EVENTS.c.id))
_EVENT_BY_REQUEST = select(
    _EVENTS.c.id,
    _EVENTS.c.request_id,
    _EVENTS.c.free_prompt_tokens,
    _EVENTS.c.free_completion_tokens,
    _EVENTS.c.paid_prompt_tokens,
    _EVENTS.c.paid_completion_tokens,
    _EVENTS.c.krw,
).where(_EVENTS.c.request_id == bindparam("request_id"))
_STALE_HOLDS = select(_HOLDS.c.id).where(_HOLDS.c.status == "pending", _HOLDS.c.expires_at < bindparam("now"))


def _legs(*pairs: tuple[str, int]) -> list[Leg]:
    return [Leg(account, amount) for account, amount in pairs if amount != 0]


def _acct(customer_id: int, kind: AccountKind) -> str:
    return customer_account(customer_id, kind)


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
) -> Hold:
    """Set aside the worst case of a request, or refuse with `QuotaExceededError` and write nothing."""
    conn = session.connection()
    codes = [
        _acct(customer_id, kind)
        for kind in (FREE_ALLOWANCE, FREE_ALLOWANCE_HELD, CREDIT_LINE_KRW, CREDIT_LINE_HELD_KRW)
    ]
    accounts = lock_accounts(conn, codes)
    allowance, allowance_held, line, line_held = codes
    plan = plan_hold(worst_tokens, accounts[allowance].reported(), prices)
    if plan.krw > accounts[line].reported():
        raise QuotaExceededError(
            "insufficient quota: free allowance and spending limit do not cover this request"
        )
    hold_id = uuid.uuid4().hex
    legs = _legs(
        (allowance, plan.free_tokens),
        (allowance_held, -plan.free_tokens),
        (line, plan.krw),
        (line_held, -plan.krw),
    )
    if legs:
        post_locked(conn, accounts, f"hold:{hold_id}", "hold", legs)
    now = utcnow()
    _INSERT_HOLD.run(
        conn,
        {
            "id": hold_id,
            "customer_id": customer_id,
            "key_id": key_id,
            "free_tokens": plan.free_tokens,
            "krw": plan.krw,
            "status": "pending",
            "created_at": now,
            "expires_at": now + ttl,
        },
    )
    return Hold(hold_id, customer_id, plan.free_tokens, plan.krw)


def _lock_hold(conn: Connection, hold_id: str) -> tuple[Hold, str]:
    rows = _LOCK_HOLD.run(conn, {"hold_id": hold_id})
    if not rows:
        raise StateError(f"hold {hold_id} does not exist")
    customer_id, free_tokens, krw, status = rows[0]
    return Hold(hold_id, customer_id, free_tokens, krw), status


def _close_hold(conn: Connection, hold_id: str, status: str) -> None:
    _CLOSE_HOLD.run(conn, {"hold_id": hold_id, "status": status, "closed_at": utcnow()})


def _settle_codes(cid: int, split: Split, hold: Hold) -> list[str]:
    """Every account the settlement may touch, so all of them are locked at once, in id order."""
    codes = [_acct(cid, FREE_ALLOWANCE_HELD), _acct(cid, FREE_TOKENS_USED), _acct(cid, FREE_ALLOWANCE)]
    if split.paid:
        codes += [
            _acct(cid, PAID_TOKENS),
            system_account(PAID_TOKENS_SOLD),
            _acct(cid, RECEIVABLE_KRW),
            system_account(API_REVENUE_KRW),
            _acct(cid, USAGE_MICRO_KRW),
            system_account(USAGE_MICRO_KRW_BILLED),
        ]
    if hold.krw:
        codes += [
            _acct(cid, CREDIT_LINE_HELD_KRW),
            _acct(cid, CREDIT_LINE_KRW),
            system_account(CREDIT_LINES_ISSUED_KRW),
        ]
    return codes


def settle_hold(
    session: Session, hold_id: str, usage: Usage, prices: PriceList, info: RequestInfo, latency_ms: int
) -> Charge:
    """Charge real usage against a hold (free first, then list price) and return the rest, once."""
    conn = session.connection()
    hold, status = _lock_hold(conn, hold_id)
    if status != "pending":
        existing = conn.execute(_EVENT_BY_REQUEST, {"request_id": info.request_id}).one_or_none()
        if existing is None:
            raise StateError(f"hold {hold_id} is already {status}")
        return Charge(*existing)
    cid = hold.customer_id
    split = split_usage(usage.prompt_tokens, usage.completion_tokens, hold.free_tokens)
    accounts = lock_accounts(conn, _settle_codes(cid, split, hold))
    cost_micro = prices.cost_micro_krw(split.paid_prompt, split.paid_completion)
    billed = accounts[_acct(cid, USAGE_MICRO_KRW)].reported() if cost_micro else 0
    krw = krw_due(billed, cost_micro) if cost_micro else 0
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
        post_locked(conn, accounts, f"settle:{hold_id}", "api_usage", legs, memo=info.request_id)
    _close_hold(conn, hold_id, "settled")
    event_id: int = _INSERT_EVENT.run(
        conn,
        {
            "request_id": info.request_id,
            "customer_id": cid,
            "key_id": info.key_id,
            "model": info.model,
            "endpoint": info.endpoint,
            "streamed": info.streamed,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "free_prompt_tokens": split.free_prompt,
            "free_completion_tokens": split.free_completion,
            "paid_prompt_tokens": split.paid_prompt,
            "paid_completion_tokens": split.paid_completion,
            "krw": krw,
            "latency_ms": latency_ms,
            "status": "ok",
            "created_at": utcnow(),
        },
    )[0][0]
    return Charge(
        event_id,
        info.request_id,
        split.free_prompt,
        split.free_completion,
        split.paid_prompt,
        split.paid_completion,
        krw,
    )


def release_hold(session: Session, hold_id: str, status: str = "released") -> bool:
    """Return a whole hold (upstream failure, expiry); False if it was already closed."""
    conn = session.connection()
    hold, current = _lock_hold(conn, hold_id)
    if current != "pending":
        return False
    cid = hold.customer_id
    pairs = (
        (_acct(cid, FREE_ALLOWANCE_HELD), hold.free_tokens),
        (_acct(cid, FREE_ALLOWANCE), -hold.free_tokens),
        (_acct(cid, CREDIT_LINE_HELD_KRW), hold.krw),
        (_acct(cid, CREDIT_LINE_KRW), -hold.krw),
    )
    legs = _legs(*pairs)
    if legs:
        accounts = lock_accounts(conn, [leg.account for leg in legs])
        post_locked(conn, accounts, f"release:{hold_id}", "release_hold", legs)
    _close_hold(conn, hold_id, status)
    return True


def record_failure(
    session: Session, info: RequestInfo, customer_id: int, status: str, latency_ms: int
) -> None:
    """A usage event for a request that was charged nothing (refused or failed upstream)."""
    _INSERT_EVENT.run(
        session.connection(),
        {
            "request_id": info.request_id,
            "customer_id": customer_id,
            "key_id": info.key_id,
            "model": info.model,
            "endpoint": info.endpoint,
            "streamed": info.streamed,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "free_prompt_tokens": 0,
            "free_completion_tokens": 0,
            "paid_prompt_tokens": 0,
            "paid_completion_tokens": 0,
            "krw": 0,
            "latency_ms": latency_ms,
            "status": status,
            "created_at": utcnow(),
        },
    )


def stale_holds(session: Session, now: datetime) -> list[str]:
    return list(session.connection().execute(_STALE_HOLDS, {"now": now}).scalars())
