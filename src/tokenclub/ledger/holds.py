"""Holds as two-phase pending transfers, in the sense of TigerBeetle's.

`place` writes a pending transfer: the request's bound in tokens (`tokens`), covered by free
allowance first and, beyond it, by KRW of credit line, both moved into held accounts, so
concurrent requests can never spend the same allowance twice. Then exactly one resolution:

- **post** charges real usage, at most the pending amount, and returns the rest;
- **void** returns everything (upstream failure, refusal);
- **expire** is a void by time, allowed only once the hold's `expires_at` has passed.

Each resolution is a ledger transaction plus an immutable `hold_resolutions` row keyed by the
hold's id: the hold row is locked and its state checked, and the primary key is the database's
own refusal of a second resolution. A post above the pending amount is refused
(`HoldExceededError`); `charge` is the gateway's way in: it caps the reported usage at the
hold, so no charge ever exceeds its hold whatever an upstream reports, and flags the cap.

The gateway's hot path: statements are built once and run on the driver's cursor
(`db/prebuilt.py`); the accounts a resolution touches are locked and read in one statement and
every rule is checked on them before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from tokenclub.db.ledger_schema import HoldResolution
from tokenclub.db.prebuilt import Prebuilt
from tokenclub.db.schema import CreditHold
from tokenclub.db.types import utcnow
from tokenclub.errors import InsufficientBalanceError, InvalidInputError, StateError
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
from tokenclub.ledger.posting import (
    NO_RIDER,
    Gate,
    Leg,
    LockedAccount,
    Rider,
    connection_of,
    lock_accounts,
    post,
    post_in_one_statement,
)
from tokenclub.ledger.pricing import PriceList, Split, krw_due, plan_hold, split_usage


class Outcome(StrEnum):
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


PENDING = "pending"


class QuotaExceededError(InsufficientBalanceError):
    """Neither free allowance nor credit line covers the request's bound."""


class HoldResolvedError(StateError):
    """The hold already has its one resolution."""


class HoldExceededError(InvalidInputError):
    """A post above the hold's pending amount."""


class Ungated(Exception):
    """A posting under a `Gate` wrote nothing: the gate found no row, or the posting was
    refused or could not go in one statement. The caller takes its usual path, which answers
    exactly (for a charge of a hold as placed, `charge` itself)."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def capped(self, tokens: int) -> Usage:
        """At most `tokens` in all, the prompt counted first."""
        prompt = min(self.prompt_tokens, tokens)
        return Usage(prompt, min(self.completion_tokens, tokens - prompt))


@dataclass(frozen=True, slots=True)
class Hold:
    """A pending transfer: its bound in tokens, and what was set aside in free tokens and KRW."""

    id: str
    customer_id: int
    tokens: int
    free_tokens: int
    krw: int
    rider_values: tuple[Any, ...] | None = None
    """What the caller's rider of `place` returned; None when it was not written with the hold."""


@dataclass(frozen=True, slots=True)
class Posted:
    """A posted hold: the usage charged (never above the hold), the split and the KRW."""

    hold: Hold
    usage: Usage
    reported: Usage
    split: Split
    krw: int
    rider_values: tuple[Any, ...] | None = None
    """What the caller's rider returned, when it was written with the posting (`charge`)."""

    @property
    def capped(self) -> bool:
        """The reported usage exceeded the hold: an upstream usage anomaly."""
        return self.reported != self.usage


_HOLDS = cast(Table, CreditHold.__table__)
_RESOLUTIONS = cast(Table, HoldResolution.__table__)
_INSERT_HOLD = Prebuilt(insert(_HOLDS))
_LOCK_HOLD = Prebuilt(
    select(
        _HOLDS.c.customer_id,
        _HOLDS.c.tokens,
        _HOLDS.c.free_tokens,
        _HOLDS.c.krw,
        _HOLDS.c.status,
        (_HOLDS.c.expires_at <= bindparam("now")).label("due"),
    )
    .where(_HOLDS.c.id == bindparam("hold_id"))
    .with_for_update()
)
_CLOSE_HOLD = Prebuilt(
    update(_HOLDS)
    .where(_HOLDS.c.id == bindparam("hold_id"))
    .values(status=bindparam("status"), closed_at=bindparam("closed_at"))
)
_INSERT_RESOLUTION = Prebuilt(insert(_RESOLUTIONS))
_HOLD_RIDER = """, held AS (
    INSERT INTO credit_holds
        (id, customer_id, key_id, tokens, free_tokens, krw, status, created_at, expires_at)
    SELECT %(h_id)s, %(h_customer_id)s, %(h_key_id)s, %(h_tokens)s, %(h_free_tokens)s, %(h_krw)s,
        %(h_status)s, %(h_created_at)s, %(h_expires_at)s
    FROM tx
)"""
"""The hold's row, written with its posting (`place` on PostgreSQL)."""
_RESOLUTION_RIDER = """, closed AS (
    UPDATE credit_holds SET status = %(r_outcome)s, closed_at = %(r_created_at)s
    FROM tx WHERE credit_holds.id = %(r_hold_id)s
), resolved AS (
    INSERT INTO hold_resolutions
        (hold_id, outcome, prompt_tokens, completion_tokens, reported_prompt_tokens,
         reported_completion_tokens, krw, capped, transaction_id, created_at)
    SELECT %(r_hold_id)s, %(r_outcome)s, %(r_prompt_tokens)s, %(r_completion_tokens)s,
        %(r_reported_prompt_tokens)s, %(r_reported_completion_tokens)s, %(r_krw)s, %(r_capped)s,
        tx.id, %(r_created_at)s
    FROM tx
)"""
"""Closing the hold and its resolution row, written with the resolution's posting."""
_STALE_HOLDS = select(_HOLDS.c.id).where(_HOLDS.c.status == PENDING, _HOLDS.c.expires_at < bindparam("now"))


def _one_statement(conn: Connection) -> bool:
    """Whether postings and their hold rows go in one statement (data-modifying WITH clauses,
    which PostgreSQL has and SQLite has not; SQLite runs in-process, where statements are cheap)."""
    return conn.dialect.name == "postgresql"


def _legs(*pairs: tuple[str, int]) -> list[Leg]:
    return [Leg(account, amount) for account, amount in pairs if amount != 0]


def _acct(customer_id: int, kind: AccountKind) -> str:
    return customer_account(customer_id, kind)


def place(
    db: Session | Connection,
    customer_id: int,
    key_id: int,
    tokens: int,
    prices: PriceList,
    ttl: timedelta,
    rider: Rider | None = None,
    gate: Gate | None = None,
) -> Hold:
    """Set aside a pending amount of `tokens`, or refuse with `QuotaExceededError` and write
    nothing. `rider`: the caller's own writes, in the hold's one statement where there is one
    (`Hold.rider_values`; else the caller writes them itself). With `gate` the hold is written
    in one statement under it or not at all (`Ungated`)."""
    if tokens < 0:
        raise InvalidInputError(f"a hold's pending amount must not be negative, got {tokens}")
    conn = connection_of(db)
    codes = [
        _acct(customer_id, kind)
        for kind in (FREE_ALLOWANCE, FREE_ALLOWANCE_HELD, CREDIT_LINE_KRW, CREDIT_LINE_HELD_KRW)
    ]
    accounts = lock_accounts(conn, codes)
    allowance, allowance_held, line, line_held = codes
    plan = plan_hold(tokens, accounts[allowance].reported(), prices)
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
    now = utcnow()
    row = {
        "id": hold_id,
        "customer_id": customer_id,
        "key_id": key_id,
        "tokens": tokens,
        "free_tokens": plan.free_tokens,
        "krw": plan.krw,
        "status": PENDING,
        "created_at": now,
        "expires_at": now + ttl,
    }
    hold = Hold(hold_id, customer_id, tokens, plan.free_tokens, plan.krw)
    key = f"hold:{hold_id}"
    if legs and _one_statement(conn):
        held = Rider(_HOLD_RIDER, {f"h_{name}": value for name, value in row.items()})
        found = post_in_one_statement(
            conn, key, "hold", legs, accounts, held + (rider or NO_RIDER), gate=gate
        )
        if found is not None:
            return hold if rider is None else replace(hold, rider_values=found[1:])
    if gate is not None:
        raise Ungated
    if legs:
        post(conn, key, "hold", legs, locked=accounts)
    _INSERT_HOLD.run(conn, row)
    return hold


def _lock_pending(conn: Connection, hold_id: str) -> tuple[Hold, bool]:
    """The hold, locked, and whether it is due to expire; refused unless it is still pending."""
    rows = _LOCK_HOLD.run(conn, {"hold_id": hold_id, "now": utcnow()})
    if not rows:
        raise StateError(f"hold {hold_id} does not exist")
    customer_id, tokens, free_tokens, krw, status, due = rows[0]
    if status != PENDING:
        raise HoldResolvedError(f"hold {hold_id} is already {status}")
    return Hold(hold_id, customer_id, tokens, free_tokens, krw), bool(due)


_PENDING_AS_PLACED = """pending AS (
    SELECT id FROM credit_holds
    WHERE id = %(g_hold_id)s AND status = %(g_status)s AND customer_id = %(g_customer_id)s
        AND tokens = %(g_tokens)s AND free_tokens = %(g_free_tokens)s AND krw = %(g_krw)s
    FOR UPDATE
), """


def _pending_as(hold: Hold) -> Gate:
    """The hold row locked, if it is still pending as `hold` says it was placed."""
    params = {
        "g_hold_id": hold.id,
        "g_status": PENDING,
        "g_customer_id": hold.customer_id,
        "g_tokens": hold.tokens,
        "g_free_tokens": hold.free_tokens,
        "g_krw": hold.krw,
    }
    return Gate(_PENDING_AS_PLACED, "pending", params)


def _resolution(hold: Hold, outcome: Outcome, charged: Usage, reported: Usage, krw: int) -> dict[str, Any]:
    """The resolution row, less its transaction id."""
    return {
        "hold_id": hold.id,
        "outcome": outcome.value,
        "prompt_tokens": charged.prompt_tokens,
        "completion_tokens": charged.completion_tokens,
        "reported_prompt_tokens": reported.prompt_tokens,
        "reported_completion_tokens": reported.completion_tokens,
        "krw": krw,
        "capped": reported != charged,
        "created_at": utcnow(),
    }


def _resolve_posting(
    conn: Connection,
    hold: Hold,
    key: str,
    kind: str,
    legs: list[Leg],
    resolution: dict[str, Any],
    locked: Mapping[str, LockedAccount] | None = None,
    memo: str = "",
    rider: Rider | None = None,
    gate: Gate | None = None,
) -> tuple[Any, ...] | None:
    """Post the resolution's legs (if any) on the accounts `locked` (locked here if None),
    close the hold and record the resolution: on PostgreSQL in one statement, with the caller's
    `rider`, whose `returning` values come back (None: the rider was not written, the caller
    writes its rows itself); else (or when `post_in_one_statement` declines) statement by
    statement. With `gate` (a hold not read first) only in one statement: `Ungated` when that
    writes nothing."""
    if legs and locked is None:
        locked = lock_accounts(conn, [leg.account for leg in legs])
    if legs and locked is not None and _one_statement(conn):
        closing = Rider(_RESOLUTION_RIDER, {f"r_{name}": value for name, value in resolution.items()})
        riders = closing + (rider or NO_RIDER)
        found = post_in_one_statement(conn, key, kind, legs, locked, riders, memo, gate)
        if found is not None:
            return found[1:]
    if gate is not None:
        raise Ungated
    tx_id = post(conn, key, kind, legs, memo, locked=locked).transaction_id if legs else None
    closed = {"hold_id": hold.id, "status": resolution["outcome"], "closed_at": resolution["created_at"]}
    _CLOSE_HOLD.run(conn, closed)
    _INSERT_RESOLUTION.run(conn, {**resolution, "transaction_id": tx_id})
    return None


_SYSTEM_CODES = [
    system_account(kind)
    for kind in (PAID_TOKENS_SOLD, API_REVENUE_KRW, USAGE_MICRO_KRW_BILLED, CREDIT_LINES_ISSUED_KRW)
]
"""Every system account a post may touch. A post that needs any of them locks all of them: the
only rows that concurrent gateway lanes share (`gateway/dbwork.py`) are then always taken as one
set, in id order, so batches of different lanes queue on them and never deadlock."""


def _post_codes(cid: int, split: Split, hold: Hold) -> list[str]:
    """Every account the post may touch, so all of them are locked at once, in id order."""
    codes = [_acct(cid, FREE_ALLOWANCE_HELD), _acct(cid, FREE_TOKENS_USED), _acct(cid, FREE_ALLOWANCE)]
    if split.paid:
        codes += [_acct(cid, PAID_TOKENS), _acct(cid, RECEIVABLE_KRW), _acct(cid, USAGE_MICRO_KRW)]
    if hold.krw:
        codes += [_acct(cid, CREDIT_LINE_HELD_KRW), _acct(cid, CREDIT_LINE_KRW)]
    if split.paid or hold.krw:
        codes += _SYSTEM_CODES
    return codes


def _post(
    conn: Connection,
    hold: Hold,
    usage: Usage,
    reported: Usage,
    prices: PriceList,
    memo: str,
    rider: Callable[[Posted], Rider] | None = None,
    gate: Gate | None = None,
) -> Posted:
    if usage.prompt_tokens < 0 or usage.completion_tokens < 0:
        raise InvalidInputError(f"hold {hold.id}: usage must not be negative, got {usage}")
    if usage.total > hold.tokens:
        raise HoldExceededError(f"hold {hold.id}: a post of {usage.total} tokens exceeds its {hold.tokens}")
    cid = hold.customer_id
    split = split_usage(usage.prompt_tokens, usage.completion_tokens, hold.free_tokens)
    accounts = lock_accounts(conn, _post_codes(cid, split, hold))
    cost_micro = prices.cost_micro_krw(split.paid_prompt, split.paid_completion)
    billed = accounts[_acct(cid, USAGE_MICRO_KRW)].reported() if cost_micro else 0
    krw = krw_due(billed, cost_micro) if cost_micro else 0
    if krw > hold.krw:
        raise HoldExceededError(f"hold {hold.id}: a charge of {krw} KRW exceeds its {hold.krw} KRW")
    legs = _legs(
        (_acct(cid, FREE_ALLOWANCE_HELD), hold.free_tokens),
        (_acct(cid, FREE_TOKENS_USED), -split.free),
        (_acct(cid, FREE_ALLOWANCE), -(hold.free_tokens - split.free)),
        (_acct(cid, PAID_TOKENS), split.paid),
        (system_account(PAID_TOKENS_SOLD), -split.paid),
        (_acct(cid, CREDIT_LINE_HELD_KRW), hold.krw),
        (_acct(cid, CREDIT_LINE_KRW), -(hold.krw - krw)),
        (system_account(CREDIT_LINES_ISSUED_KRW), -krw),
        (_acct(cid, RECEIVABLE_KRW), krw),
        (system_account(API_REVENUE_KRW), -krw),
        (_acct(cid, USAGE_MICRO_KRW), cost_micro),
        (system_account(USAGE_MICRO_KRW_BILLED), -cost_micro),
    )
    posted = Posted(hold, usage, reported, split, krw)
    resolution = _resolution(hold, Outcome.POSTED, usage, reported, krw)
    key = f"settle:{hold.id}"
    extra = rider(posted) if rider is not None else None
    rode = _resolve_posting(conn, hold, key, "api_usage", legs, resolution, accounts, memo, extra, gate)
    return posted if extra is None or rode is None else replace(posted, rider_values=rode)


def post_pending(
    db: Session | Connection, hold_id: str, usage: Usage, prices: PriceList, memo: str = ""
) -> Posted:
    """Charge `usage` against a pending hold and return the rest; refused above the pending
    amount (`HoldExceededError`) or once resolved (`HoldResolvedError`)."""
    conn = connection_of(db)
    hold, _ = _lock_pending(conn, hold_id)
    return _post(conn, hold, usage, usage, prices, memo)


def charge(
    db: Session | Connection,
    hold_id: str,
    reported: Usage,
    prices: PriceList,
    memo: str = "",
    rider: Callable[[Posted], Rider] | None = None,
    placed: Hold | None = None,
) -> Posted:
    """Post min(reported usage, hold): what an upstream reports beyond the hold is never
    charged; `Posted.capped` tells the caller to report the anomaly. `rider`: the caller's own
    rows for this charge (given what is charged), written in the posting's statement where
    there is one (`Posted.rider_values` then holds what they return; else the caller writes
    them itself).

    `placed`: the hold as `place` returned it. On PostgreSQL the hold is then not read first
    (one round trip fewer): the posting's statement locks it and is written only if it is
    still pending with what `placed` says. Whatever that statement does not write (a hold
    resolved or not as placed, a replay, a refusal) takes the usual path, so every answer is
    the same as without `placed`."""
    conn = connection_of(db)
    if placed is not None and placed.id == hold_id and _one_statement(conn):
        try:
            capped = reported.capped(placed.tokens)
            return _post(conn, placed, capped, reported, prices, memo, rider, _pending_as(placed))
        except (Ungated, InvalidInputError):  # refused before anything was written
            pass
    hold, _ = _lock_pending(conn, hold_id)
    return _post(conn, hold, reported.capped(hold.tokens), reported, prices, memo, rider)


def void(db: Session | Connection, hold_id: str, *, expire: bool = False) -> Hold:
    """Return a whole hold, once; `expire` is a void by time, refused before the hold is due."""
    conn = connection_of(db)
    hold, due = _lock_pending(conn, hold_id)
    if expire and not due:
        raise StateError(f"hold {hold_id} has not expired yet")
    cid = hold.customer_id
    legs = _legs(
        (_acct(cid, FREE_ALLOWANCE_HELD), hold.free_tokens),
        (_acct(cid, FREE_ALLOWANCE), -hold.free_tokens),
        (_acct(cid, CREDIT_LINE_HELD_KRW), hold.krw),
        (_acct(cid, CREDIT_LINE_KRW), -hold.krw),
    )
    nothing = Usage(0, 0)
    resolution = _resolution(hold, Outcome.EXPIRED if expire else Outcome.VOIDED, nothing, nothing, 0)
    _resolve_posting(conn, hold, f"release:{hold_id}", "release_hold", legs, resolution)
    return hold


def stale(db: Session | Connection, now: datetime) -> list[str]:
    """Pending holds past their expiry: what the sweep expires."""
    return list(connection_of(db).execute(_STALE_HOLDS, {"now": now}).scalars())


def audit_holds(session: Session) -> list[str]:
    """Problems found: a resolution that disagrees with its hold, or a charge above its hold."""
    problems: list[str] = []
    rows = session.execute(
        select(
            _HOLDS.c.id,
            _HOLDS.c.status,
            _HOLDS.c.tokens,
            _HOLDS.c.krw,
            _RESOLUTIONS.c.outcome,
            _RESOLUTIONS.c.prompt_tokens,
            _RESOLUTIONS.c.completion_tokens,
            _RESOLUTIONS.c.krw,
        )
        .select_from(_HOLDS.outerjoin(_RESOLUTIONS, _RESOLUTIONS.c.hold_id == _HOLDS.c.id))
        .where(_HOLDS.c.status != PENDING)
    )
    for hold_id, status, tokens, krw, outcome, prompt, completion, charged_krw in rows:
        if outcome is None:
            # Holds resolved before resolutions were recorded carry their outcome in `status`.
            continue
        if outcome != status:
            problems.append(f"hold {hold_id}: status {status} but resolution {outcome}")
        if prompt + completion > tokens or charged_krw > krw:
            problems.append(
                f"hold {hold_id}: charged {prompt + completion} tokens / {charged_krw} KRW above its hold"
            )
    return problems


def usage_anomalies(session: Session) -> int:
    """Holds posted at their bound because the upstream reported more than the hold."""
    return int(
        session.scalar(select(func.count()).select_from(_RESOLUTIONS).where(_RESOLUTIONS.c.capped.is_(True)))
        or 0
    )
