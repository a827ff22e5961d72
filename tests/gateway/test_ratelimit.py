"""Rate limits per key, shared through the database or Redis, with Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.gateway.conftest import MODEL, Customer, config
from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.db.engine import Database
from tokenclub.gateway.app import create_app
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits, RateLimitedError, RedisRateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = 1_800_000_030.0  # 30 s into a minute window


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_limiter() -> Iterator[Callable[[Limits], RedisRateLimiter]]:
    if not _redis_up():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    made: list[RedisRateLimiter] = []

    def make(limits: Limits) -> RedisRateLimiter:
        limiter = RedisRateLimiter(limits, REDIS_URL)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.redis.close()


def test_database_limiter_counts_requests_and_tokens(
    db: Database, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer()
    limiter = DatabaseRateLimiter(Limits(requests_per_minute=3, tokens_per_minute=100))
    with db.transaction() as session:
        for _ in range(3):
            limiter.admit(session, c.key_id, NOW)
    with pytest.raises(RateLimitedError) as caught, db.transaction() as session:
        limiter.admit(session, c.key_id, NOW)
    assert caught.value.retry_after == 30
    with db.transaction() as session:
        limiter.admit(session, c.key_id, NOW + 60)  # the next window starts afresh
        limiter.add_tokens(session, c.key_id, 100, NOW + 60)
    with pytest.raises(RateLimitedError, match="tokens per minute"), db.transaction() as session:
        limiter.admit(session, c.key_id, NOW + 61)


def test_redis_limiter_is_shared_by_two_instances(
    redis_limiter: Callable[[Limits], RedisRateLimiter],
) -> None:
    limits = Limits(requests_per_minute=2, tokens_per_minute=10**6)
    first, second = redis_limiter(limits), redis_limiter(limits)
    key_id = uuid.uuid4().int % 10**9
    first.admit(None, key_id, NOW)  # type: ignore[arg-type]
    second.admit(None, key_id, NOW)  # type: ignore[arg-type]
    with pytest.raises(RateLimitedError) as caught:
        first.admit(None, key_id, NOW)  # type: ignore[arg-type]
    assert caught.value.retry_after == 30


def test_http_429_with_retry_after(
    db: Database, upstream_url: str, make_customer: Callable[..., Customer]
) -> None:
    c = make_customer(free=10_000)
    app = create_app(config(db, upstream_url, DatabaseRateLimiter(Limits(2, 10**9))))
    with serve_in_thread(app) as base:
        headers = {"Authorization": f"Bearer {c.key}"}
        body = {"model": MODEL, "prompt": "가", "max_tokens": 2}
        answers = [httpx.post(f"{base}/v1/completions", json=body, headers=headers) for _ in range(5)]
    # Two per window: even if a minute boundary falls between the calls, one is refused.
    assert [r.status_code for r in answers[:2]] == [200, 200]
    refused = [r for r in answers if r.status_code == 429]
    assert refused and all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in refused)
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refused)
    assert all(r.headers["x-ratelimit-remaining-requests"] == "0" for r in refused)
    assert all(r.headers["x-ratelimit-limit-requests"] == "2" for r in refused)
