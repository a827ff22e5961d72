"""The gateway through the official `openai` SDK: responses, exact charges, errors."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from sqlalchemy import func, select

from tests.gateway.conftest import MODEL, Customer, config
from tests.gateway.fake_upstream import REPLY
from tokenclub.accounts.customers import balance_summary
from tokenclub.accounts.keys import revoke_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import ApiKey, CreditHold, UsageEvent
from tokenclub.gateway.app import create_app
from tokenclub.ledger.posting import audit

QUESTION = "서울은 어떤 도시인가요?"
CHAT_PROMPT = len(QUESTION) + 5


def _client(gateway: str, customer: Customer) -> OpenAI:
    return OpenAI(base_url=gateway, api_key=customer.key, max_retries=0, timeout=20)


def _balance(db: Database, customer: Customer) -> dict[str, int]:
    with db.transaction() as session:
        return balance_summary(session, customer.id)


def _events(db: Database, customer: Customer) -> list[UsageEvent]:
    with db.transaction() as session:
        return list(session.scalars(select(UsageEvent).where(UsageEvent.customer_id == customer.id)))


def _wait_settled(db: Database, customer: Customer, count: int) -> list[UsageEvent]:
    for _ in range(200):
        events = _events(db, customer)
        with db.transaction() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(CreditHold)
                .where(CreditHold.customer_id == customer.id, CreditHold.status == "pending")
            )
        if len(events) >= count and pending == 0:
            return events
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError("usage was not settled")


def test_chat_is_charged_exactly_the_reported_usage(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    reply = _client(gateway, customer).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=10
    )
    assert reply.choices[0].message.content == REPLY[:10]
    assert reply.model == MODEL
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (CHAT_PROMPT, 10)
    assert _balance(db, customer) == {
        "free_tokens_granted": 1_000,
        "free_tokens_used": CHAT_PROMPT + 10,
        "free_tokens_left": 1_000 - CHAT_PROMPT - 10,
        "paid_tokens": 0,
        "receivable_krw": 0,
        "payable_krw": 0,
        "spending_left_krw": 0,
    }
    (event,) = _events(db, customer)
    assert (event.status, event.free_prompt_tokens, event.free_completion_tokens, event.krw) == (
        "ok",
        CHAT_PROMPT,
        10,
        0,
    )


def test_streamed_reply_costs_exactly_what_the_unstreamed_one_costs(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    plain, streamed = make_customer("plain", free=5_000), make_customer("streamed", free=5_000)
    _client(gateway, plain).completions.create(model=MODEL, prompt=QUESTION, max_tokens=20)
    chunks = list(
        _client(gateway, streamed).completions.create(
            model=MODEL, prompt=QUESTION, max_tokens=20, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == REPLY[:20]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20
    _wait_settled(db, streamed, 1)
    assert _balance(db, plain) == _balance(db, streamed)
    assert _balance(db, streamed)["free_tokens_used"] == len(QUESTION) + 20


def test_paid_usage_beyond_the_allowance_becomes_receivable(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=CHAT_PROMPT, credit_krw=1_000)
    _client(gateway, customer).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=25
    )
    summary = _balance(db, customer)
    assert (summary["free_tokens_used"], summary["free_tokens_left"], summary["paid_tokens"]) == (
        CHAT_PROMPT,
        0,
        25,
    )
    # 25 output tokens at 8,000 KRW per million: 200,000 micro-won, floor 0 won so far.
    assert summary["receivable_krw"] == 0
    for _ in range(9):
        _client(gateway, customer).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=25
        )
    events = _events(db, customer)
    paid_micro = sum(e.paid_prompt_tokens * 2_000 + e.paid_completion_tokens * 8_000 for e in events)
    assert _balance(db, customer)["receivable_krw"] == paid_micro // 1_000_000 == sum(e.krw for e in events)
    with db.transaction() as session:
        assert audit(session) == []


def test_async_client_and_model_list(gateway: str, make_customer: Callable[..., Customer]) -> None:
    customer = make_customer(free=1_000)

    async def run() -> tuple[list[str], str | None]:
        client = AsyncOpenAI(base_url=gateway, api_key=customer.key, max_retries=0)
        models = [m.id async for m in client.models.list()]
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "안녕"}]
        )
        await client.close()
        return models, reply.choices[0].message.content

    models, content = asyncio.run(run())
    assert models == ["cut", "embed", "fail", "picky", "slow", MODEL]
    assert content == REPLY


def test_bad_and_revoked_keys_get_401(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    bad = OpenAI(base_url=gateway, api_key="tcsk-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    with db.transaction() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.customer_id == customer.id))
        assert key_id is not None
        revoke_key(session, key_id)
    with pytest.raises(openai.AuthenticationError):
        _client(gateway, customer).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert _events(db, customer) == []


def test_no_allowance_and_no_spending_limit_is_insufficient_quota_before_the_upstream(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=10)
    with pytest.raises(openai.RateLimitError) as caught:
        _client(gateway, customer).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=50
        )
    assert caught.value.status_code == 429
    assert caught.value.code == "insufficient_quota"
    assert _balance(db, customer)["free_tokens_left"] == 10
    assert [e.status for e in _events(db, customer)] == ["insufficient_quota"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": MODEL}, 400, "invalid_messages"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
            400,
            "invalid_max_tokens",
        ),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model_not_found"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(
    gateway: str, make_customer: Callable[..., Customer], body: dict[str, object], status: int, code: str
) -> None:
    customer = make_customer(free=1_000)
    answer = httpx.post(
        f"{gateway}/chat/completions", json=body, headers={"Authorization": f"Bearer {customer.key}"}
    )
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_invalid_json_is_400(gateway: str, make_customer: Callable[..., Customer]) -> None:
    customer = make_customer(free=1_000)
    answer = httpx.post(
        f"{gateway}/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {customer.key}"},
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(("model", "status"), [("fail", 502), ("slow", 504)])
def test_upstream_failures_charge_nothing(
    db: Database, gateway: str, make_customer: Callable[..., Customer], model: str, status: int
) -> None:
    customer = make_customer(free=1_000)
    with pytest.raises(openai.APIStatusError) as caught:
        _client(gateway, customer).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == status
    assert _balance(db, customer)["free_tokens_left"] == 1_000
    assert [e.status for e in _events(db, customer)] == [
        "upstream_timeout" if status == 504 else "upstream_error"
    ]


def test_client_that_disconnects_mid_stream_pays_for_what_was_generated(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    received = ""
    with httpx.stream(
        "POST",
        f"{gateway}/completions",
        json={"model": MODEL, "prompt": QUESTION, "max_tokens": 30, "stream": True},
        headers={"Authorization": f"Bearer {customer.key}"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                received += line.split('"text": "', 1)[1].split('"', 1)[0]
            if len(received) >= 5:
                break
    (event,) = _wait_settled(db, customer, 1)
    assert len(received) <= event.completion_tokens < 30
    assert event.prompt_tokens == len(QUESTION)
    assert _balance(db, customer)["free_tokens_used"] == event.prompt_tokens + event.completion_tokens


def test_stream_broken_off_by_the_upstream_charges_only_the_delivered_part(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    stream = _client(gateway, customer).completions.create(
        model="cut", prompt=QUESTION, max_tokens=20, stream=True
    )
    with pytest.raises(openai.APIError):
        text = "".join(c.choices[0].text for c in stream if c.choices)
        assert text == ""
    (event,) = _wait_settled(db, customer, 1)
    assert event.completion_tokens == 10
    assert _balance(db, customer)["free_tokens_used"] == len(QUESTION) + 10


def test_usage_endpoint_shows_only_the_keys_own_account(
    gateway: str, make_customer: Callable[..., Customer]
) -> None:
    mine, other = make_customer("mine", free=1_000), make_customer("other", free=1_000)
    _client(gateway, mine).completions.create(model=MODEL, prompt="가", max_tokens=3)
    _client(gateway, other).completions.create(model=MODEL, prompt="나나", max_tokens=4)
    answer = httpx.get(f"{gateway}/usage", headers={"Authorization": f"Bearer {mine.key}"})
    assert answer.status_code == 200
    rows = answer.json()["data"]
    assert [(r["prompt_tokens"], r["completion_tokens"], r["free_tokens"]) for r in rows] == [(1, 3, 4)]
    assert httpx.get(f"{gateway}/usage").status_code == 401


def test_health_and_metrics(gateway: str, make_customer: Callable[..., Customer]) -> None:
    customer = make_customer(free=1_000)
    _client(gateway, customer).completions.create(model=MODEL, prompt="가", max_tokens=3)
    root = gateway.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").json()["status"] == "ok"
    metrics = httpx.get(f"{root}/metrics").text
    assert (
        'tokenclub_requests_total{endpoint="completions",model="tiny",outcome="ok",status="200"} 1.0'
        in metrics
    )
    assert 'tokenclub_tokens_total{charge="free",kind="completion",model="tiny"} 3.0' in metrics
    assert 'tokenclub_tokens_total{charge="free",kind="prompt",model="tiny"} 1.0' in metrics
    assert "tokenclub_request_seconds_bucket" in metrics


def test_start_up_freezes_what_it_built_so_the_collector_stops_traversing_it(
    _sqlite_db: Database, upstream_url: str
) -> None:
    """Once warm, the worker's long-lived objects leave the collector's generations (the
    permanent one is not traversed): the gateway itself is one of them."""
    app = create_app(config(_sqlite_db, upstream_url))
    gateway = app.state.gateway

    def tracked() -> bool:
        return any(found is gateway for found in gc.get_objects())

    async def start() -> bool:
        async with app.router.lifespan_context(app):
            await app.state.warming
            return tracked()

    assert tracked()
    try:
        assert not asyncio.run(start())
    finally:
        gc.unfreeze()
