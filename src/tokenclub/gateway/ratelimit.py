"""Per-key rate limits (requests and tokens per minute) shared by every gateway worker.

Fixed one-minute windows counted in the database (PostgreSQL or SQLite, one upsert per
request) or in Redis (INCR with expiry) when `TOKENCLUB_REDIS_URL` is set. A refused
request learns how many seconds remain in the window (`Retry-After`); an admitted one, its
standing in the window (the `x-ratelimit-*` headers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, cast

import redis
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from tokenclub.db.prebuilt import CounterUpsert
from tokenclub.db.schema import RateCounter
from tokenclub.errors import TokenclubError
from tokenclub.ledger.posting import Rider

WINDOW_S = 60


class RateLimitedError(TokenclubError):
    def __init__(self, message: str, retry_after: int, standing: Standing | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.standing = standing


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int
    tokens_per_minute: int


@dataclass(frozen=True, slots=True)
class Standing:
    """A key's counts in the current window after admission, for the `x-ratelimit-*` headers."""

    limits: Limits
    requests: int
    tokens: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """The headers as OpenAI sends them (remaining counts never below zero)."""
        reset = f"{self.reset_s}s"
        return {
            "x-ratelimit-limit-requests": str(self.limits.requests_per_minute),
            "x-ratelimit-limit-tokens": str(self.limits.tokens_per_minute),
            "x-ratelimit-remaining-requests": str(max(0, self.limits.requests_per_minute - self.requests)),
            "x-ratelimit-remaining-tokens": str(max(0, self.limits.tokens_per_minute - self.tokens)),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-reset-tokens": reset,
        }


def _window(now: float) -> tuple[int, int]:
    window = int(now // WINDOW_S)
    return window, max(1, int((window + 1) * WINDOW_S - now))


def _check(requests: int, tokens: int, limits: Limits, retry_after: int) -> Standing:
    standing = Standing(limits, requests, tokens, retry_after)
    if requests > limits.requests_per_minute:
        raise RateLimitedError(
            f"rate limit: more than {limits.requests_per_minute} requests per minute", retry_after, standing
        )
    if tokens >= limits.tokens_per_minute:
        raise RateLimitedError(
            f"rate limit: {limits.tokens_per_minute} tokens per minute used up", retry_after, standing
        )
    return standing


class RateLimiter(Protocol):
    def admit(self, session: Session, key_id: int, now: float | None = None) -> Standing: ...

    def add_tokens(self, session: Session, key_id: int, tokens: int, now: float | None = None) -> None: ...


_UPSERT = CounterUpsert(
    cast(Table, RateCounter.__table__), ("key_id", "window"), ("requests", "tokens"), returning=True
)
"""Add to a key's counters in its window, creating the row if needed; on the table rather than
the ORM class so executing it skips the ORM's insert machinery."""


_COUNTER_RIDER = """, counted AS (
    INSERT INTO rate_counters (key_id, "window", requests, tokens)
    SELECT %(rc_key_id)s, %(rc_window)s, %(rc_requests)s, %(rc_tokens)s FROM tx
    ON CONFLICT (key_id, "window") DO UPDATE
    SET requests = rate_counters.requests + excluded.requests, tokens = rate_counters.tokens + excluded.tokens
    RETURNING requests, tokens
)"""
"""Requests and tokens added to a key's window's counter, with the posting they go with (a
hold's request, a charge's tokens)."""
REQUEST_COUNTS = 2
"""Values `DatabaseRateLimiter.requests_rider` returns: the window's requests and tokens."""


def _counter_rider(key_id: int, now: float, requests: int, tokens: int, returning: str = "") -> Rider:
    params = {"rc_key_id": key_id, "rc_window": _window(now)[0], "rc_requests": requests, "rc_tokens": tokens}
    return Rider(_COUNTER_RIDER, params, returning)


class DatabaseRateLimiter:
    """Counters in the `rate_counters` table; the upsert is atomic on both backends."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def _upsert(
        self, session: Session, key_id: int, window: int, requests: int, tokens: int
    ) -> tuple[int, int]:
        values = {"key_id": key_id, "window": window, "requests": requests, "tokens": tokens}
        conn = session.connection()
        row = _UPSERT.run(conn, values)[0]
        return int(row[0]), int(row[1])

    def admit(self, session: Session, key_id: int, now: float | None = None) -> Standing:
        window, retry_after = _window(time.time() if now is None else now)
        requests, tokens = self._upsert(session, key_id, window, 1, 0)
        return _check(requests, tokens, self.limits, retry_after)

    def window(self, now: float) -> int:
        """The window a request at `now` is counted in (for a caller that counts it itself,
        `gateway/auth.py`'s `counted_key`)."""
        return _window(now)[0]

    def standing(self, requests: int, tokens: int, now: float) -> Standing:
        """`admit`'s answer for counts the caller added in `window(now)`."""
        return _check(requests, tokens, self.limits, _window(now)[1])

    def add_tokens(self, session: Session, key_id: int, tokens: int, now: float | None = None) -> None:
        if tokens:
            self._upsert(session, key_id, _window(time.time() if now is None else now)[0], 0, tokens)

    def tokens_rider(self, key_id: int, tokens: int, now: float | None = None) -> Rider | None:
        """`add_tokens` as a write in a posting's one statement (`Rider`, PostgreSQL): the
        settlement's counter without a round trip of its own; None when there is nothing to add."""
        if not tokens:
            return None
        return _counter_rider(key_id, time.time() if now is None else now, 0, tokens)

    def requests_rider(self, key_id: int, now: float) -> Rider:
        """`admit`'s count as a write in the hold's one statement (`Rider`, PostgreSQL); it
        returns the window's requests and tokens after it, for `standing`."""
        return _counter_rider(
            key_id, now, 1, 0, ", (SELECT requests FROM counted), (SELECT tokens FROM counted)"
        )

    def usage(self, session: Session, key_id: int, now: float) -> tuple[int, int]:
        row = session.execute(
            select(RateCounter.requests, RateCounter.tokens).where(
                RateCounter.key_id == key_id, RateCounter.window == _window(now)[0]
            )
        ).one_or_none()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))


class RedisRateLimiter:
    """The same windows in Redis: one round trip per request, keys expire with their window."""

    def __init__(self, limits: Limits, url: str) -> None:
        self.limits = limits
        self.redis = redis.Redis.from_url(url)

    def _bump(self, key_id: int, now: float, requests: int, tokens: int) -> tuple[int, int, int]:
        window, retry_after = _window(now)
        base = f"tokenclub:rate:{key_id}:{window}"
        pipe = self.redis.pipeline()
        pipe.incrby(f"{base}:r", requests)
        pipe.incrby(f"{base}:t", tokens)
        pipe.expire(f"{base}:r", WINDOW_S * 2)
        pipe.expire(f"{base}:t", WINDOW_S * 2)
        counted = pipe.execute()
        return int(counted[0]), int(counted[1]), retry_after

    def admit(self, session: Session, key_id: int, now: float | None = None) -> Standing:
        requests, tokens, retry_after = self._bump(key_id, time.time() if now is None else now, 1, 0)
        return _check(requests, tokens, self.limits, retry_after)

    def add_tokens(self, session: Session, key_id: int, tokens: int, now: float | None = None) -> None:
        if tokens:
            self._bump(key_id, time.time() if now is None else now, 0, tokens)
