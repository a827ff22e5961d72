"""Request ids, rate-limit headers, the access log, and the operator's endpoints behind the
operator token."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tests.gateway.conftest import MODEL, Served, config
from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.db.engine import Database
from tokenclub.gateway.app import create_app
from tokenclub.gateway.metrics import Metrics
from tokenclub.gateway.observe import RequestObserver
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits

TOKEN = "operator-token-0123456789"
SECRET_PROMPT = "이 문장은 로그에 남으면 안 됩니다"


@pytest.fixture(scope="module")
def guarded(_sqlite_db: Database, upstream_url: str) -> Iterator[Served]:
    """A gateway with an operator token and a limit of 100 requests, 10,000 tokens a minute."""
    base = config(_sqlite_db, upstream_url, DatabaseRateLimiter(Limits(100, 10_000)))
    with serve_in_thread(create_app(replace(base, operator_token=TOKEN))) as url:
        yield Served(_sqlite_db, url + "/v1")


def test_every_response_has_a_request_id(guarded: Served) -> None:
    root = guarded.url.removesuffix("/v1")
    answers = [
        httpx.get(root + "/healthz"),
        httpx.get(guarded.url + "/models"),
        httpx.get(root + "/nowhere"),
        httpx.get(root + "/metrics"),
    ]
    ids = {a.headers["x-request-id"] for a in answers}
    assert [a.status_code for a in answers] == [200, 401, 404, 401]
    assert len(ids) == 4 and all(len(i) == 32 for i in ids)


def test_rate_limit_headers_as_openai_sends_them(guarded: Served) -> None:
    customer = guarded.customer()
    client = OpenAI(base_url=guarded.url, api_key=customer.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "안녕"}], max_tokens=5
    )
    headers = raw.headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-limit-tokens"]) == ("100", "10000")
    assert headers["x-ratelimit-remaining-requests"] == "99"
    assert headers["x-ratelimit-remaining-tokens"] == "10000"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert raw.headers["x-request-id"] == raw.request_id
    second = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "안녕"}], max_tokens=5
    )
    used = len("안녕") + 5 + 5  # prompt with the template's overhead, and the reply
    assert second.headers["x-ratelimit-remaining-requests"] == "98"
    assert second.headers["x-ratelimit-remaining-tokens"] == str(10_000 - used)


def test_one_access_line_per_request_without_key_or_text(
    guarded: Served, caplog: pytest.LogCaptureFixture
) -> None:
    customer = guarded.customer()
    client = OpenAI(base_url=guarded.url, api_key=customer.key, max_retries=0)
    caplog.set_level(logging.INFO, logger="tokenclub.access")
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=4
    )
    list(client.completions.create(model=MODEL, prompt=SECRET_PROMPT, max_tokens=3, stream=True))
    httpx.get(guarded.url + "/models", headers={"Authorization": "Bearer tcsk-wrong"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tokenclub.access"]
    assert len(lines) == 3
    chat, streamed, refused = lines
    assert chat["request_id"] == raw.headers["x-request-id"]
    assert (chat["status"], chat["outcome"], chat["model"], chat["path"]) == (
        200,
        "ok",
        MODEL,
        "/v1/chat/completions",
    )
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (len(SECRET_PROMPT) + 5, 4)
    assert customer.key.startswith(chat["key"]) and len(chat["key"]) < len(customer.key)
    assert (streamed["prompt_tokens"], streamed["completion_tokens"]) == (len(SECRET_PROMPT), 3)
    assert (refused["status"], refused["outcome"], refused["key"]) == (401, "unauthorized", "-")
    assert {"time", "latency_ms", "method"} <= set(chat)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert customer.key not in text and SECRET_PROMPT not in text and "tcsk-wrong" not in text


def test_operator_endpoints_need_the_token(guarded: Served) -> None:
    root = guarded.url.removesuffix("/v1")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"op:{TOKEN}".encode()).decode()}
    for path in ("/metrics", "/docs", "/openapi.json"):
        refused = httpx.get(root + path)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_operator_token"
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(root + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(root + path, headers=bearer).status_code == 200
        assert httpx.get(root + path, headers=basic).status_code == 200
    assert httpx.get(root + "/healthz").json() == {"status": "ok"}
    assert httpx.get(root + "/healthz", headers=bearer).json()["models"][0] == "cut"
    exported = httpx.get(root + "/metrics", headers=bearer).text
    assert "tokenclub_time_to_first_token_seconds" in exported
    assert "\ntokenclub_requests_in_progress 1.0\n" in exported  # the scrape itself


def test_docs_load_no_outside_assets(guarded: Served) -> None:
    root = guarded.url.removesuffix("/v1")
    page = httpx.get(root + "/docs", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "cdn" not in page.lower() and "https://" not in page
    assert httpx.get(root + "/docs/assets/swagger-ui-bundle.js").status_code == 200
    schema = httpx.get(root + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/models/{model}"} <= set(schema["paths"])
    chat = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert chat["schema"]["required"] == ["model", "messages"]


def test_an_unexpected_failure_is_an_openai_shaped_500_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    app.add_middleware(RequestObserver, metrics=Metrics)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    request_id = answer.headers["x-request-id"]
    assert answer.json() == {
        "error": {
            "message": f"internal error (request {request_id}); nothing was charged",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert "secret detail" not in answer.text
    assert f"request {request_id} failed" in caplog.text
