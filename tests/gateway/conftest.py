"""A gateway on loopback in front of the fake upstream, on each database backend."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.gateway.fake_upstream import fake_app, serve_in_thread
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.gateway.app import GatewayConfig, create_app
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits, RateLimiter
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.ledger.operations import grant_credit_line, grant_free_tokens
from tokenclub.ledger.pricing import PriceList

PRICES = PriceList(2_000, 8_000)
MODEL = "tiny"


@dataclass(frozen=True)
class Customer:
    id: int
    key: str
    key_id: int


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    with serve_in_thread(fake_app()) as url:
        yield url


def routes(upstream_url: str) -> dict[str, ModelRoute]:
    base = upstream_url + "/v1"
    return {name: ModelRoute(name, base, name) for name in (MODEL, "fail", "slow", "cut", "embed", "picky")}


def config(db: Database, upstream_url: str, limiter: RateLimiter | None = None) -> GatewayConfig:
    return GatewayConfig(
        database_url=db.url,
        routes=routes(upstream_url),
        prices=PRICES,
        limiter=limiter or DatabaseRateLimiter(Limits(10_000, 10**9)),
        default_max_tokens=64,
        hold_ttl=timedelta(minutes=15),
        upstream_timeout_s=2.0,
    )


@pytest.fixture
def gateway(db: Database, upstream_url: str) -> Iterator[str]:
    """Base URL (…/v1) of a gateway sharing the test database."""
    with serve_in_thread(create_app(config(db, upstream_url))) as url:
        yield url + "/v1"


def add_customer(db: Database, name: str = "c", free: int = 0, credit_krw: int = 0) -> Customer:
    with db.transaction() as session:
        cid = create_customer(session, name).id
        if free:
            grant_free_tokens(session, cid, free, f"grant-{cid}")
        if credit_krw:
            grant_credit_line(session, cid, credit_krw, f"line-{cid}")
        plain, view = create_key(session, cid)
    return Customer(cid, plain, view.id)


@pytest.fixture
def make_customer(db: Database) -> Callable[..., Customer]:
    return functools.partial(add_customer, db)


@dataclass(frozen=True)
class Served:
    """A gateway kept for a whole test module, on the SQLite database (tests of the protocol
    rather than of the ledger, which the per-backend `gateway` fixture covers)."""

    db: Database
    url: str

    def customer(self, free: int = 10_000, credit_krw: int = 0) -> Customer:
        return add_customer(self.db, "c", free, credit_krw)


@pytest.fixture(scope="module")
def served(_sqlite_db: Database, upstream_url: str) -> Iterator[Served]:
    with serve_in_thread(create_app(config(_sqlite_db, upstream_url))) as url:
        yield Served(_sqlite_db, url + "/v1")
