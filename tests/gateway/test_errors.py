"""Every error the gateway answers is OpenAI-shaped, short, and carries the request id;
hostile bodies get a 400 or 413, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import MODEL, Served, config
from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.db.engine import Database
from tokenclub.gateway.app import create_app
from tokenclub.gateway.errors import ECHO_LIMIT

BODY_LIMIT = 4_096


@pytest.fixture(scope="module")
def small(_sqlite_db: Database, upstream_url: str) -> Iterator[Served]:
    """A gateway that reads bodies up to 4 KiB."""
    app = create_app(replace(config(_sqlite_db, upstream_url), max_body_bytes=BODY_LIMIT))
    with serve_in_thread(app) as url:
        yield Served(_sqlite_db, url + "/v1")


def _error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert len(answer.headers["x-request-id"]) == 32
    body = answer.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert len(answer.content) < 600
    return error


def _post(served: Served, key: str, content: bytes, path: str = "/chat/completions") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return httpx.post(served.url + path, content=content, headers=headers, timeout=20)


def test_unknown_routes_and_methods(served: Served) -> None:
    assert _error(httpx.get(served.url + "/nowhere"), 404)["code"] == "unknown_url"
    assert _error(httpx.get(served.url + "/chat/completions"), 405)["code"] == "method_not_allowed"
    key = served.customer().key
    bad_query = httpx.get(served.url + "/usage?limit=lots", headers={"Authorization": f"Bearer {key}"})
    assert _error(bad_query, 400)["param"] == "limit"


def test_missing_key_is_401(served: Served) -> None:
    assert _error(httpx.post(served.url + "/chat/completions", json={}), 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"model": "tiny", "messages": ' + b"[" * 100 + b"]" * 100 + b"}", "too_deep"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}', "invalid_unicode"),
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"model": "tiny", "prompt": "\xed\xa0\x80"}', "invalid_json"),
        ('{"model": "tiny", "prompt": "x"}'.encode("utf-16"), "invalid_json"),
    ],
)
def test_hostile_bodies_are_a_short_400(served: Served, content: bytes, code: str) -> None:
    error = _error(_post(served, served.customer().key, content), 400)
    assert error["code"] == code


def test_lone_surrogate_names_where_it_is(served: Served) -> None:
    content = b'{"model": "tiny", "messages": [{"role": "user", "content": "a\\udfffb"}]}'
    error = _error(_post(served, served.customer().key, content), 400)
    assert error["message"].startswith("messages[0].content: invalid Unicode")


def test_bodies_past_the_limit_are_413_whether_declared_or_streamed(small: Served) -> None:
    key = small.customer().key
    big = b'{"model": "tiny", "prompt": "' + b"a" * BODY_LIMIT + b'"}'
    assert _error(_post(small, key, big, "/completions"), 413)["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield big[:100]
        yield big[100:]

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    chunked = httpx.post(small.url + "/completions", content=chunks(), headers=headers, timeout=20)
    assert _error(chunked, 413)["code"] == "request_too_large"


def test_echoed_values_are_cut_short(served: Served) -> None:
    customer = served.customer()
    name = "m" * 1_000_000
    answer = httpx.post(
        served.url + "/chat/completions",
        json={"model": name, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {customer.key}"},
        timeout=20,
    )
    error = _error(answer, 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert len(error["message"]) < ECHO_LIMIT + 40
    role = httpx.post(
        served.url + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "r" * 10_000, "content": "x"}]},
        headers={"Authorization": f"Bearer {customer.key}"},
        timeout=20,
    )
    assert _error(role, 400)["code"] == "invalid_messages"
