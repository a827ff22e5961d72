"""The state one gateway worker shares across requests, and the database steps of a request:
admit (key, rate limit, hold) and settle or release (exact usage, ledger, usage event).

Database work runs in a thread (`DatabaseWork`) so the event loop keeps streaming, except, on
SQLite, for a request served alone, whose units run on the loop when the write lock is free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from tokenclub.accounts.keys import KeyView, authenticate
from tokenclub.db.engine import Database
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError
from tokenclub.gateway import billing
from tokenclub.gateway.auth import (
    KEY_FIELDS,
    KeyOwners,
    Owner,
    active_key,
    active_key_gate,
    counted_key,
    gated_key,
)
from tokenclub.gateway.billing import Charge, Hold, QuotaExceededError, RequestInfo, Usage
from tokenclub.gateway.dbwork import DatabaseWork
from tokenclub.gateway.errors import INVALID_KEY, ApiError
from tokenclub.gateway.metrics import Metrics
from tokenclub.gateway.ratelimit import (
    REQUEST_COUNTS,
    DatabaseRateLimiter,
    RateLimitedError,
    RateLimiter,
    Standing,
)
from tokenclub.gateway.upstream import ModelRoute, Upstream
from tokenclub.guard.service import Decision, GatewayGuard, record
from tokenclub.ledger.holds import Ungated
from tokenclub.ledger.posting import NO_RIDER, Rider
from tokenclub.ledger.pricing import PriceList

T = TypeVar("T")
U = TypeVar("U")
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    database_url: str
    routes: dict[str, ModelRoute]
    prices: PriceList
    limiter: RateLimiter
    default_max_tokens: int = 512
    max_tokens_ceiling: int = 4096
    hold_ttl: timedelta = timedelta(minutes=15)
    upstream_timeout_s: float = 120.0
    guard: GatewayGuard | None = None
    operator_token: str | None = None
    """When set, `/metrics`, `/healthz` details and the API docs need it as a bearer token."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class Admitted:
    key: KeyView
    hold: Hold
    """The hold as placed: its pending amount bounds the request's charge and the tokens it
    adds to the rate limit."""
    standing: Standing | None = None
    rider_values: tuple[Any, ...] | None = None
    """What the admission's rider returned, written with the hold (None: it was not)."""


@dataclass(frozen=True, slots=True)
class Tally:
    """The guard's bookkeeping of a delivered reply, a unit of database work returning the
    decisions it recorded: `run(session, rode)`, where `rode` says whether `rider` (writes of
    it that may go with the charge's posting, PostgreSQL) was written with the charge."""

    run: Callable[[Session, bool], list[Decision]]
    rider: Rider | None = None

    def alone(self, session: Session) -> list[Decision]:
        """`run` as its own unit of work: nothing of it went with a charge."""
        return self.run(session, False)


def rate_limited(exc: RateLimitedError) -> ApiError:
    """429 with `Retry-After` and, as OpenAI sends them, the window's `x-ratelimit-*` headers."""
    headers = exc.standing.headers() if exc.standing is not None else None
    return ApiError(429, str(exc), "requests", "rate_limit_exceeded", exc.retry_after, headers=headers)


class Gateway:
    """Shared state of one worker process: database, upstream client, limiter, metrics."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.db = Database(config.database_url)
        self.upstream = Upstream(config.routes, config.upstream_timeout_s)
        self.metrics = Metrics()
        self.work = DatabaseWork(self.db, alone=self.metrics.alone)
        self.owners = KeyOwners(self.db)
        self._background: set[asyncio.Task[Any]] = set()

    async def in_db(self, work: Callable[[Session], T], durable: bool = True, lane: int | None = None) -> T:
        """Run a unit of work off the event loop (on it for a request served alone on SQLite); its
        result once it is committed (`durable`, and `lane`, the customer it works for: see
        `gateway/dbwork.py`)."""
        return await self.work.run(work, durable, lane)

    async def lane_of(self, secret: str) -> int:
        """The customer behind a presented key, whose lane its request's work goes to; 401 for
        a key that does not exist. On SQLite (one writer, no lanes) nothing is looked up."""
        if not self.work.postgres:
            return 0
        customer = await self.owners.customer(secret)
        if customer is None:
            raise INVALID_KEY
        return customer

    def _counters_in_statements(self) -> DatabaseRateLimiter | None:
        """The rate limiter whose counters go into the request's ledger statements (its table,
        on PostgreSQL), else None: its counts are then statements of their own."""
        limiter = self.config.limiter
        return limiter if self.work.postgres and isinstance(limiter, DatabaseRateLimiter) else None

    def admit(
        self,
        session: Session,
        secret: str,
        worst_tokens: int,
        rider: Callable[[int], Rider | None] | None = None,
    ) -> Admitted:
        """The key checked, the request counted and its hold placed; `rider(customer_id)`: the
        caller's writes that go with the hold's posting where the ledger writes one statement
        (`Admitted.rider_values`)."""
        limiter = self.config.limiter
        counters = self._counters_in_statements()
        owner = self.owners.remembered(secret) if counters is not None else None
        if counters is not None and owner is not None:
            admitted = self._admit_remembered(session, secret, owner, worst_tokens, rider, counters)
            if admitted is not None:
                return admitted
        try:
            if counters is not None:
                # The key and its rate counter in one statement (one round trip, not two).
                now = time.time()
                found = counted_key(session.connection(), secret, counters.window(now))
                if found is None:
                    raise INVALID_KEY
                key = found[0]
                standing = counters.standing(found[1], found[2], now)
            else:
                active = active_key(session.connection(), secret)
                if active is None:
                    raise INVALID_KEY
                key = active
                standing = limiter.admit(session, key.id)
        except RateLimitedError as exc:
            raise rate_limited(exc) from exc
        extra = rider(key.customer_id) if rider is not None else None
        hold = billing.place_hold(
            session, key.customer_id, key.id, worst_tokens, self.config.prices, self.config.hold_ttl, extra
        )
        return Admitted(key, hold, standing, hold.rider_values)

    def _admit_remembered(
        self,
        session: Session,
        secret: str,
        owner: Owner,
        worst_tokens: int,
        rider: Callable[[int], Rider | None] | None,
        counters: DatabaseRateLimiter,
    ) -> Admitted | None:
        """`admit` for a key whose owner this worker remembers, on PostgreSQL: the key's checks
        and its request count go in the hold's one statement (one round trip, not two). None
        when that statement wrote nothing (a key revoked, a refusal): `admit`'s usual path then
        answers, exactly."""
        now = time.time()
        gate, key_fields = active_key_gate(secret, owner)
        extra = rider(owner.customer_id) if rider is not None else None
        riders = key_fields + counters.requests_rider(owner.key_id, now) + (extra or NO_RIDER)
        prices, ttl = self.config.prices, self.config.hold_ttl
        try:
            hold = billing.place_hold(
                session, owner.customer_id, owner.key_id, worst_tokens, prices, ttl, riders, gate
            )
        except (Ungated, InvalidInputError, QuotaExceededError):  # nothing was written
            return None
        assert hold.rider_values is not None
        counts = KEY_FIELDS + REQUEST_COUNTS
        fields, counted, theirs = (
            hold.rider_values[:KEY_FIELDS],
            hold.rider_values[KEY_FIELDS:counts],
            hold.rider_values[counts:],
        )
        try:
            standing = counters.standing(int(counted[0]), int(counted[1]), now)
        except RateLimitedError as exc:
            raise rate_limited(exc) from exc
        values = theirs if extra is not None else None
        return Admitted(gated_key(owner, fields), replace(hold, rider_values=values), standing, values)

    async def refuse_quota(self, secret: str, info_of: Callable[[KeyView], RequestInfo]) -> None:
        def work(session: Session) -> None:
            key = authenticate(session, secret)
            if key is not None:
                billing.record_failure(session, info_of(key), key.customer_id, "insufficient_quota", 0)

        await self.in_db(work, lane=await self.lane_of(secret))

    async def settle(
        self,
        admitted: Admitted,
        usage: Usage,
        info: RequestInfo,
        started: float,
        tally: Tally | None = None,
    ) -> tuple[Charge, list[Decision]]:
        """Charge the hold; with `tally` (the guard's bookkeeping of the delivered reply, which
        returns the decisions it recorded) in the same unit of work, its `rider` in the charge's
        one statement where the ledger has one. If that unit fails, the two run again apart,
        the charge first (without the rider), so a failing tally cannot undo a charge."""
        latency = int((time.perf_counter() - started) * 1000)
        lane = admitted.key.customer_id

        limiter, tokens = self.config.limiter, usage.capped(admitted.hold.tokens).total
        counters = self._counters_in_statements()

        def charge(session: Session, rider: Rider | None = None) -> Charge:
            # The rate counter counts what is charged: a reported usage is capped at the hold
            # there too. On PostgreSQL it rides in the charge's one statement (one round trip
            # fewer); its row is then locked after the accounts, the other way round from an
            # admission of a key not remembered, which cannot deadlock: a customer's units run
            # one transaction at a time, in every process, on its lane's lock
            # (`gateway/dbwork.py`). Elsewhere the counter is a statement of its own: first, or
            # after a charge that was not written in one statement.
            counter = counters.tokens_rider(admitted.key.id, tokens) if counters is not None else None
            prices = self.config.prices
            if counter is None:
                limiter.add_tokens(session, admitted.key.id, tokens)
                return billing.settle_hold(session, admitted.hold, usage, prices, info, latency, rider)
            extra = counter if rider is None else counter + rider
            charged = billing.settle_hold(session, admitted.hold, usage, prices, info, latency, extra)
            if not charged.rode:
                limiter.add_tokens(session, admitted.key.id, tokens)
            return replace(charged, rode=charged.rode and rider is not None)

        def both(session: Session) -> tuple[Charge, list[Decision]]:
            assert tally is not None
            charged = charge(session, tally.rider)
            return charged, tally.run(session, charged.rode)

        decisions: list[Decision] = []
        if tally is None:
            charged = await self.in_db(charge, lane=lane)
        else:
            try:
                charged, decisions = await self.in_db(both, lane=lane)
            except Exception:
                charged = await self.in_db(charge, lane=lane)
                decisions = await self.in_db(tally.alone, durable=False, lane=lane)
        self.metrics.charged(info.model, charged)
        for decision in decisions:
            self.metrics.guard.labels(decision.stage, decision.action).inc()
        return charged, decisions

    async def release(self, admitted: Admitted, info: RequestInfo, status: str, started: float) -> None:
        latency = int((time.perf_counter() - started) * 1000)

        def work(session: Session) -> None:
            if billing.release_hold(session, admitted.hold.id):
                billing.record_failure(session, info, admitted.key.customer_id, status, latency)

        await self.in_db(work, lane=admitted.key.customer_id)

    def spawn(self, coro: Coroutine[Any, Any, U]) -> asyncio.Task[U]:
        """Run work that must finish even if the client went away (settling a cut stream)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def sweep(self) -> int:
        """Release holds left by a crashed worker; returns how many were released."""

        def work(session: Session) -> int:
            stale = billing.stale_holds(session, utcnow())
            return sum(billing.release_hold(session, hold_id, expire=True) for hold_id in stale)

        return await self.in_db(work)

    async def record_guard(self, request_id: str, key: KeyView, decisions: list[Decision]) -> None:
        await self.in_db(lambda session: record(session, request_id, key, decisions), lane=key.customer_id)
        for decision in decisions:
            self.metrics.guard.labels(decision.stage, decision.action).inc()

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
