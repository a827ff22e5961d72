"""OpenAI parity through the official `openai` SDK: tool calls (whole, streamed, round trip),
`n`, list prompts, embeddings, model look-up, message roles and content parts; each charged
exactly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from sqlalchemy import select

from tests.gateway.conftest import MODEL, Customer, Served
from tests.gateway.fake_upstream import REPLY, SYSTEM_OVERHEAD, TOOL_ARGUMENTS
from tokenclub.accounts.customers import balance_summary
from tokenclub.db.schema import CreditHold, UsageEvent

QUESTION = "서울 날씨?"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL_TOKENS = len("weather" + TOOL_ARGUMENTS)


def _client(served: Served, customer: Customer) -> OpenAI:
    return OpenAI(base_url=served.url, api_key=customer.key, max_retries=0, timeout=20)


def _settled(served: Served, customer: Customer, count: int) -> list[UsageEvent]:
    """The customer's usage events once `count` exist and no hold is pending."""
    for _ in range(200):
        with served.db.transaction() as session:
            events = list(
                session.scalars(
                    select(UsageEvent).where(UsageEvent.customer_id == customer.id).order_by(UsageEvent.id)
                )
            )
            pending = session.scalars(
                select(CreditHold.id).where(
                    CreditHold.customer_id == customer.id, CreditHold.status == "pending"
                )
            ).all()
        if len(events) >= count and not pending:
            return events
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError("usage was not settled")


def _used(served: Served, customer: Customer) -> int:
    with served.db.transaction() as session:
        return balance_summary(session, customer.id)["free_tokens_used"]


def test_tool_call_round_trip(served: Served) -> None:
    customer = served.customer()
    client = _client(served, customer)
    messages: list[Any] = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    ]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=10)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "weather",
        {"city": "서울", "unit": "celsius"},
    )
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "맑음, 21도"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=10)
    assert second.choices[0].message.content == REPLY[:10]
    first_event, second_event = _settled(served, customer, 2)
    prompt = len("Answer briefly." + QUESTION) + SYSTEM_OVERHEAD
    assert (first_event.prompt_tokens, first_event.completion_tokens) == (prompt, CALL_TOKENS)
    assert second_event.prompt_tokens == prompt + CALL_TOKENS + len("맑음, 21도")
    assert second_event.completion_tokens == 10
    assert _used(served, customer) == prompt + CALL_TOKENS + second_event.prompt_tokens + 10


def test_streamed_tool_call_arrives_whole_and_costs_what_the_unstreamed_one_costs(served: Served) -> None:
    plain, streamed = served.customer(), served.customer()
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    _client(served, plain).chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    chunks = list(
        _client(served, streamed).chat.completions.create(
            model=MODEL, messages=messages, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
    )
    calls = [c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or ()]
    assert calls[0].id == "call_1" and calls[0].function and calls[0].function.name == "weather"
    assert "".join(c.function.arguments or "" for c in calls if c.function) == TOOL_ARGUMENTS
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == CALL_TOKENS
    (event,) = _settled(served, streamed, 1)
    assert event.completion_tokens == CALL_TOKENS
    assert _used(served, plain) == _used(served, streamed)


def test_n_choices_are_held_and_charged_for_all(served: Served) -> None:
    customer = served.customer(free=1_000)
    reply = _client(served, customer).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=7, n=3
    )
    assert [(c.index, c.message.content) for c in reply.choices] == [(i, REPLY[:7]) for i in range(3)]
    assert reply.usage is not None and reply.usage.completion_tokens == 21
    streamed = served.customer(free=1_000)
    chunks = list(
        _client(served, streamed).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=7, n=3, stream=True
        )
    )
    texts = ["", "", ""]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == [REPLY[:7]] * 3
    (event,) = _settled(served, streamed, 1)
    assert event.completion_tokens == 21
    assert _used(served, customer) == _used(served, streamed) == len(QUESTION) + SYSTEM_OVERHEAD + 21


def test_n_is_refused_when_its_worst_case_is_not_covered(served: Served) -> None:
    customer = served.customer(free=200)
    with pytest.raises(openai.RateLimitError) as caught:
        _client(served, customer).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=50, n=4
        )
    assert caught.value.code == "insufficient_quota"
    with pytest.raises(openai.BadRequestError) as bad:
        _client(served, customer).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], n=0
        )
    assert bad.value.code == "invalid_n"


def test_list_prompts_get_a_choice_each(served: Served) -> None:
    customer = served.customer()
    reply = _client(served, customer).completions.create(model=MODEL, prompt=["가", "나나"], max_tokens=4)
    assert [c.text for c in reply.choices] == [REPLY[:4]] * 2
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 8)
    streamed = served.customer()
    chunks = list(
        _client(served, streamed).completions.create(
            model=MODEL, prompt=["가", "나나"], max_tokens=4, stream=True
        )
    )
    assert sorted({c.choices[0].index for c in chunks if c.choices}) == [0, 1]
    (event,) = _settled(served, streamed, 1)
    assert (event.prompt_tokens, event.completion_tokens) == (3, 8)


def test_embeddings_are_forwarded_and_metered(served: Served) -> None:
    customer = served.customer(free=100)
    client = _client(served, customer)
    reply = client.embeddings.create(model="embed", input=["하나", "둘둘둘"])
    assert [d.embedding for d in reply.data] == [[2.0, 0.5], [3.0, 0.5]]
    assert reply.usage.prompt_tokens == 5 and reply.model == "embed"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input="하나")
    assert caught.value.code == "unsupported_endpoint"
    ok, refused = _settled(served, customer, 2)
    assert (ok.endpoint, ok.prompt_tokens, ok.completion_tokens, ok.status) == ("embeddings", 5, 0, "ok")
    assert refused.status == "upstream_rejected"
    assert _used(served, customer) == 5


def test_models_can_be_looked_up_one_by_one(served: Served) -> None:
    client = _client(served, served.customer())
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"


def test_content_parts_the_upstream_cannot_read_are_a_clear_400(served: Served) -> None:
    customer = served.customer()
    image: list[Any] = [
        {"type": "text", "text": "무엇이 보이나요?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    client = _client(served, customer)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": image}])
    assert reply.choices[0].message.content == REPLY
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="picky", messages=[{"role": "user", "content": image}])
    assert caught.value.code == "upstream_rejected"
    assert "image input is not supported" in caught.value.message
    system: list[Any] = [{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}]
    with pytest.raises(openai.BadRequestError) as bad_part:
        client.chat.completions.create(model=MODEL, messages=system)
    assert bad_part.value.code == "invalid_content_part"
    assert [e.status for e in _settled(served, customer, 2)] == ["ok", "upstream_rejected"]


def test_async_streaming_client(served: Served) -> None:
    customer = served.customer()

    async def run() -> str:
        async with AsyncOpenAI(base_url=served.url, api_key=customer.key, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=9, stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(run()) == REPLY[:9]
    (event,) = _settled(served, customer, 1)
    assert event.completion_tokens == 9
