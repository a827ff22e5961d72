"""Money at the edges, through the gateway's real path: a hostile or broken upstream never
charges more than the hold, never strands a hold, and forwarded schemas are paid for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import func, select

from tests.gateway.conftest import PRICES, Customer, config
from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.accounts.customers import balance_summary
from tokenclub.db.engine import Database
from tokenclub.db.ledger_schema import HoldResolution
from tokenclub.db.schema import CreditHold, RateCounter, UsageEvent
from tokenclub.gateway.app import create_app
from tokenclub.gateway.formats import CHAT
from tokenclub.gateway.hold_bound import TEMPLATE_TOKENS_PER_TOOL
from tokenclub.gateway.requests import TEMPLATE_TOKENS_BASE, TEMPLATE_TOKENS_PER_MESSAGE, parse_request
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.gateway.usage_estimate import estimate_usage
from tokenclub.ledger.holds import audit_holds
from tokenclub.ledger.posting import audit

TEXT = "서울은 수도입니다"
HI = [{"role": "user", "content": "hi"}]
HI_PROMPT = len(b"hi") + TEMPLATE_TOKENS_PER_MESSAGE + TEMPLATE_TOKENS_BASE


def _chunk(delta: str) -> bytes:
    event = {"id": "s", "choices": [{"index": 0, "delta": {"content": delta}}]}
    return f"data: {json.dumps(event)}\n\n".encode()


def hostile_app() -> FastAPI:
    """Upstreams gone wrong, one per model name; no tokenize endpoint (like hosted APIs)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        model = body["model"]
        reply = {"id": "h", "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}}]}
        if model == "huge" and not body.get("stream"):
            return {**reply, "usage": {"prompt_tokens": 3, "completion_tokens": 2_000_000_000}}
        if model == "list":
            return JSONResponse([reply])
        if model == "strchoices":
            return {"id": "h", "choices": "abc"}

        async def events() -> AsyncIterator[bytes]:
            if model == "readbad":
                # Good events and a bad one in one write: the client reads them together.
                yield b"".join(map(_chunk, TEXT)) + b'data: "oops"\n\n'
                return
            if model == "badevent":
                yield b"data: [1, 2]\n\n"
            for char in TEXT:
                yield _chunk(char)
                await asyncio.sleep(0)
            if model == "midbad":
                yield b'data: "oops"\n\n'
            if model == "huge":
                usage = {"prompt_tokens": 3, "completion_tokens": 2_000_000_000}
                yield f"data: {json.dumps({'id': 's', 'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/extras/tokenize/count")
    async def no_tokenizer() -> Response:
        return Response(status_code=404)

    return app


MODELS = ("huge", "list", "strchoices", "badevent", "midbad", "readbad", "plain")


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    with serve_in_thread(hostile_app()) as url:
        yield url + "/v1"


@pytest.fixture
def gateway(db: Database, hostile_url: str) -> Iterator[str]:
    routes = {name: ModelRoute(name, hostile_url, name) for name in MODELS}
    with serve_in_thread(create_app(replace(config(db, hostile_url), routes=routes))) as url:
        yield url + "/v1"


def _post(gateway: str, customer: Customer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        gateway + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {customer.key}"},
        timeout=20,
    )


def _streamed(gateway: str, customer: Customer, model: str) -> str:
    """A streamed chat request's whole answer (status 200: a stream has begun)."""
    body = {"model": model, "messages": HI, "max_tokens": 20, "stream": True}
    headers = {"Authorization": f"Bearer {customer.key}"}
    with httpx.stream("POST", gateway + "/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        return response.read().decode()


def _used(db: Database, customer: Customer) -> int:
    with db.transaction() as session:
        used: int = balance_summary(session, customer.id)["free_tokens_used"]
    return used


def _holds(db: Database, customer: Customer) -> list[tuple[str, int]]:
    with db.transaction() as session:
        return [
            (status, tokens)
            for status, tokens in session.execute(
                select(CreditHold.status, CreditHold.tokens).where(CreditHold.customer_id == customer.id)
            )
        ]


def _settled(db: Database, customer: Customer) -> list[tuple[str, int]]:
    """The customer's holds once none is pending (streams settle just after the last byte)."""
    for _ in range(200):
        holds = _holds(db, customer)
        if holds and all(status != "pending" for status, _ in holds):
            return holds
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError(f"a hold stayed pending: {_holds(db, customer)}")


def _check_books(db: Database) -> None:
    with db.transaction() as session:
        assert audit(session) == []
        assert audit_holds(session) == []


def test_usage_reported_above_the_hold_is_charged_at_the_hold_and_flagged(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=50, credit_krw=100)
    response = _post(gateway, customer, {"model": "huge", "messages": HI, "max_tokens": 20})
    assert response.status_code == 200
    hold = HI_PROMPT + 20
    assert response.json()["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": hold - 3,
        "total_tokens": hold,
    }
    assert _settled(db, customer) == [("posted", hold)]
    with db.transaction() as session:
        summary = balance_summary(session, customer.id)
        resolution = session.scalars(select(HoldResolution)).one()
        limiter_tokens = session.scalar(select(func.sum(RateCounter.tokens)))
        event = session.scalars(select(UsageEvent).where(UsageEvent.customer_id == customer.id)).one()
    paid = hold - 50
    assert summary["free_tokens_used"] == 50 and summary["paid_tokens"] == paid
    assert summary["receivable_krw"] == paid * PRICES.output_krw_per_mtok // 1_000_000
    assert (resolution.capped, resolution.reported_completion_tokens) == (True, 2_000_000_000)
    assert (resolution.prompt_tokens + resolution.completion_tokens, event.completion_tokens) == (
        hold,
        hold - 3,
    )
    assert limiter_tokens == hold
    metrics = httpx.get(gateway.removesuffix("/v1") + "/metrics").text
    assert 'tokenclub_upstream_usage_anomalies_total{model="huge"} 1.0' in metrics
    _check_books(db)


def test_a_streamed_usage_above_the_hold_is_capped_too(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    _streamed(gateway, customer, "huge")
    assert _settled(db, customer) == [("posted", HI_PROMPT + 20)]
    assert _used(db, customer) == HI_PROMPT + 20
    _check_books(db)


@pytest.mark.parametrize("model", ["list", "strchoices", "badevent"])
def test_a_malformed_reply_is_an_openai_502_and_the_hold_is_voided(
    db: Database, gateway: str, make_customer: Callable[..., Customer], model: str
) -> None:
    customer = make_customer(free=1_000)
    body = {"model": model, "messages": HI, "max_tokens": 20, "stream": model == "badevent"}
    response = _post(gateway, customer, body)
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert _holds(db, customer) == [("voided", HI_PROMPT + 20)]
    with db.transaction() as session:
        assert balance_summary(session, customer.id)["free_tokens_left"] == 1_000
    _check_books(db)


def test_a_stream_cut_by_a_bad_event_is_charged_at_once_on_the_pinned_estimate(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    assert "the model server failed mid-stream" in _streamed(gateway, customer, "midbad")
    assert _settled(db, customer) == [("posted", HI_PROMPT + 20)]
    assert _used(db, customer) == estimate_usage("hi", [TEXT]).total
    _check_books(db)


def test_good_events_read_together_with_a_bad_one_go_out_before_the_error(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    events = [
        line.removeprefix("data: ") for line in _streamed(gateway, customer, "readbad").splitlines() if line
    ]
    deltas = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[: len(TEXT)]]
    assert "".join(deltas) == TEXT
    assert json.loads(events[len(TEXT)])["error"]["code"] == "upstream_error"
    assert events[len(TEXT) + 1 :] == ["[DONE]"]
    assert _settled(db, customer) == [("posted", HI_PROMPT + 20)]
    assert _used(db, customer) == estimate_usage("hi", [TEXT]).total
    _check_books(db)


def test_a_stream_without_countable_usage_settles_on_the_estimate_not_the_ttl(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=1_000)
    _streamed(gateway, customer, "plain")
    assert _settled(db, customer) == [("posted", HI_PROMPT + 20)]
    assert _used(db, customer) == estimate_usage("hi", [TEXT]).total
    _check_books(db)


def test_forwarded_tool_schemas_are_held_and_refused_beyond_the_allowance(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=20_000)
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "x" * 500} for i in range(10)},
    }
    tools = [{"type": "function", "function": {"name": f"f{i}", "parameters": schema}} for i in range(120)]
    response = _post(gateway, customer, {"model": "plain", "messages": HI, "max_tokens": 20, "tools": tools})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert _holds(db, customer) == []
    small = {"model": "list", "messages": HI, "max_tokens": 20, "tools": tools[:1]}
    response = _post(gateway, customer, small)
    held = parse_request(small, CHAT, 64, 4096).worst_tokens
    assert held >= HI_PROMPT + 20 + len(json.dumps(tools[:1]).encode()) + TEMPLATE_TOKENS_PER_TOOL
    assert _holds(db, customer) == [("voided", held)]
