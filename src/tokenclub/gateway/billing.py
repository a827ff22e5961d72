"""The gateway's side of paying for API requests: holds through the ledger, and usage events.

The money moves in `ledger/holds.py` (a hold is a pending transfer, resolved exactly once);
this adapter adds what the gateway records beside it: one usage event per request, written in
the same transaction, and the replay of a settle that already happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from tokenclub.db.prebuilt import Prebuilt
from tokenclub.db.schema import UsageEvent
from tokenclub.db.types import utcnow
from tokenclub.ledger import holds
from tokenclub.ledger.holds import Hold, HoldResolvedError, Posted, QuotaExceededError, Usage
from tokenclub.ledger.posting import Gate, Rider
from tokenclub.ledger.pricing import PriceList, Split

__all__ = [
    "Charge",
    "Hold",
    "QuotaExceededError",
    "RequestInfo",
    "Usage",
    "place_hold",
    "record_failure",
    "release_hold",
    "settle_hold",
    "stale_holds",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the usage event records besides the token counts."""

    request_id: str
    key_id: int
    model: str
    endpoint: str
    streamed: bool


@dataclass(frozen=True, slots=True)
class Charge:
    """A settled request as its usage event recorded it (`id` is the event's id); `capped` when
    the upstream reported more than the hold and the charge stopped at the hold."""

    id: int
    request_id: str
    free_prompt_tokens: int
    free_completion_tokens: int
    paid_prompt_tokens: int
    paid_completion_tokens: int
    krw: int
    capped: bool = False
    rode: bool = False  # the caller's `extra` rider was written with the charge


_EVENTS = cast(Table, UsageEvent.__table__)
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


def place_hold(
    session: Session,
    customer_id: int,
    key_id: int,
    worst_tokens: int,
    prices: PriceList,
    ttl: timedelta,
    rider: Rider | None = None,
    gate: Gate | None = None,
) -> Hold:
    """Set aside the worst case of a request, or refuse with `QuotaExceededError` and write
    nothing; the caller's `rider` goes with the hold where it can (`Hold.rider_values`), and
    with `gate` the hold is written under it or not at all (`holds.Ungated`)."""
    return holds.place(session, customer_id, key_id, worst_tokens, prices, ttl, rider, gate)


_EVENT_COLUMNS = (
    "request_id",
    "customer_id",
    "key_id",
    "model",
    "endpoint",
    "streamed",
    "prompt_tokens",
    "completion_tokens",
    "free_prompt_tokens",
    "free_completion_tokens",
    "paid_prompt_tokens",
    "paid_completion_tokens",
    "krw",
    "latency_ms",
    "status",
    "created_at",
)
_EVENT_RIDER = f""", evt AS (
    INSERT INTO usage_events ({", ".join(_EVENT_COLUMNS)})
    SELECT {", ".join(f"%(ev_{name})s" for name in _EVENT_COLUMNS)} FROM tx
    RETURNING id
)"""
"""The usage event, written in the ledger's statement for the charge (PostgreSQL)."""


def settle_hold(
    session: Session,
    hold: Hold,
    usage: Usage,
    prices: PriceList,
    info: RequestInfo,
    latency_ms: int,
    extra: Rider | None = None,
) -> Charge:
    """Charge min(usage, hold) (free first, then list price) and return the rest, once; a
    replay of the same request returns the first charge. The usage event goes in the ledger's
    one statement for the charge where it has one (PostgreSQL), and with it the caller's
    `extra` writes (`Charge.rode`; else the caller writes them itself). `hold` is as placed:
    on PostgreSQL it is not read back first (`holds.charge`)."""

    def rider(posted: Posted) -> Rider:
        row = _event_row(
            info, posted.hold.customer_id, posted.usage, posted.split, posted.krw, latency_ms, "ok"
        )
        event = Rider(
            _EVENT_RIDER, {f"ev_{name}": value for name, value in row.items()}, ", (SELECT id FROM evt)"
        )
        return event if extra is None else event + extra

    try:
        posted = holds.charge(session, hold.id, usage, prices, memo=info.request_id, rider=rider, placed=hold)
    except HoldResolvedError:
        existing = (
            session.connection().execute(_EVENT_BY_REQUEST, {"request_id": info.request_id}).one_or_none()
        )
        if existing is None:
            raise
        return Charge(*existing)
    if posted.capped:
        log.warning(
            "request %s: upstream reported %d+%d tokens, above the hold of %d; charged the hold",
            info.request_id,
            usage.prompt_tokens,
            usage.completion_tokens,
            posted.hold.tokens,
        )
    split = posted.split
    if posted.rider_values is not None:
        event_id = int(posted.rider_values[0])
    else:
        event_id = _event(
            session, info, posted.hold.customer_id, posted.usage, split, posted.krw, latency_ms, "ok"
        )
    return Charge(
        event_id,
        info.request_id,
        split.free_prompt,
        split.free_completion,
        split.paid_prompt,
        split.paid_completion,
        posted.krw,
        posted.capped,
        extra is not None and posted.rider_values is not None,
    )


def _event_row(
    info: RequestInfo, customer_id: int, usage: Usage, split: Split, krw: int, latency_ms: int, status: str
) -> dict[str, object]:
    return {
        "request_id": info.request_id,
        "customer_id": customer_id,
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
        "status": status,
        "created_at": utcnow(),
    }


def _event(
    session: Session,
    info: RequestInfo,
    customer_id: int,
    usage: Usage,
    split: Split,
    krw: int,
    latency_ms: int,
    status: str,
) -> int:
    row = _event_row(info, customer_id, usage, split, krw, latency_ms, status)
    event_id: int = _INSERT_EVENT.run(session.connection(), row)[0][0]
    return event_id


def release_hold(session: Session, hold_id: str, expire: bool = False) -> bool:
    """Void a whole hold (upstream failure, refusal) or, with `expire`, expire it once due;
    False if it was already resolved."""
    try:
        holds.void(session, hold_id, expire=expire)
    except HoldResolvedError:
        return False
    return True


def record_failure(
    session: Session, info: RequestInfo, customer_id: int, status: str, latency_ms: int
) -> None:
    """A usage event for a request that was charged nothing (refused or failed upstream)."""
    _event(session, info, customer_id, Usage(0, 0), Split(0, 0, 0, 0), 0, latency_ms, status)


def stale_holds(session: Session, now: datetime) -> list[str]:
    return holds.stale(session, now)
