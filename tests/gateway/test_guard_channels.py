"""Every reply channel is scanned and only allow-listed fields reach the client (through the SDK).

The worst-case upstream (`tests/guard/worst_case.py`) puts 80 characters of partner A's text in
the channel a test names — reasoning, refusal, tool call name or arguments, function call
arguments, top logprobs, an unknown field — whole or streamed one to three characters at a time.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.gateway.test_guard import MODEL, SPAN, World, guard_events, streamed_events, world
from tests.guard.worst_case import COVER, worst_case_app
from tests.guard.worst_case import order as make_order
from tokenclub.db.engine import Database
from tokenclub.gateway.app import create_app
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.service import BLOCKED_MESSAGE, GatewayGuard

__all__ = ["world"]
TEXT_CHANNELS = (
    "reasoning_content",
    "reasoning",
    "refusal",
    "tool_arguments",
    "tool_name",
    "function_arguments",
)


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    with serve_in_thread(worst_case_app()) as url:
        yield url


@pytest.fixture
def gateway_url(db: Database, hostile_url: str, world: World) -> Iterator[str]:
    guard = GatewayGuard(world.root, "block", "strict", check_every_s=0.0)
    routes = {MODEL: ModelRoute(MODEL, hostile_url + "/v1", MODEL)}
    with serve_in_thread(create_app(replace(config(db, hostile_url), routes=routes, guard=guard))) as url:
        yield url


def post(url: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/{path}",
        json={"model": MODEL, "max_tokens": 2000, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )


def chat_body(text: str, channel: str, piece: int = 3, **extra: Any) -> dict[str, Any]:
    if channel == "tool_name":  # a name has at most 64 characters (a longer one is malformed)
        text = text[:60]
    return {"messages": [{"role": "user", "content": make_order(text, channel, piece=piece)}], **extra}


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def all_strings(value: Any) -> str:
    """Every string anywhere in a JSON value, joined: what a client could read."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(all_strings(k) + "\n" + all_strings(v) for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(all_strings(v) for v in value)
    return ""


def letters_of(text: str) -> str:
    """NFKC, case-folded letters and digits: the issue's measure of a copy, not the guard's code."""
    return "".join(
        c for c in unicodedata.normalize("NFKC", text).casefold() if unicodedata.category(c)[0] in "LN"
    )


def leaked(received: Any) -> bool:
    """Whether the client can read 20 consecutive letters (about 50 jamo) of the span anywhere."""
    got, span = letters_of(all_strings(received)), letters_of(SPAN)
    return any(span[i : i + 20] in got for i in range(len(span) - 20))


@pytest.mark.parametrize("channel", TEXT_CHANNELS)
def test_a_copy_in_any_channel_of_a_whole_reply_is_blocked(
    db: Database, gateway_url: str, world: World, channel: str
) -> None:
    reply = post(gateway_url, world.b.key, "chat/completions", chat_body(SPAN, channel)).json()
    (choice,) = reply["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {"role": "assistant", "content": BLOCKED_MESSAGE}
    assert not leaked(reply)
    (event,) = [e for e in guard_events(db) if e.stage == "output"]
    assert (event.verdict, event.action, event.partner_id) == ("leak", "blocked", world.a.partner_id)


@pytest.mark.parametrize("channel", TEXT_CHANNELS)
@pytest.mark.parametrize("piece", [1, 3])
def test_a_copy_in_any_channel_of_a_stream_is_cut_before_its_first_letter(
    db: Database, gateway_url: str, world: World, channel: str, piece: int
) -> None:
    response = post(
        gateway_url, world.b.key, "chat/completions", chat_body(SPAN, channel, piece, stream=True)
    )
    events = sse(response)
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c.get("finish_reason")]
    assert finishes == ["content_filter"]
    assert not leaked(events)
    (event,) = [e for e in streamed_events(db, 2) if e.stage == "output"]
    assert (event.action, event.partner_id) == ("blocked", world.a.partner_id)


def test_top_logprobs_are_dropped_and_tokens_kept_only_when_they_spell_the_text(
    gateway_url: str, world: World
) -> None:
    reply = post(
        gateway_url,
        world.b.key,
        "chat/completions",
        chat_body(SPAN, "top_logprobs", logprobs=True, top_logprobs=1),
    ).json()
    (choice,) = reply["choices"]
    assert not leaked(reply)
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    assert all(e["top_logprobs"] == [] for e in entries)
    completion = post(
        gateway_url, world.b.key, "completions", {"prompt": make_order(SPAN, "top_logprobs"), "logprobs": 1}
    ).json()
    assert not leaked(completion)
    assert completion["choices"][0]["logprobs"]["top_logprobs"] is None
    streamed = sse(
        post(
            gateway_url,
            world.b.key,
            "chat/completions",
            chat_body(SPAN, "top_logprobs", stream=True, logprobs=True),
        )
    )
    assert not leaked(streamed)
    assert all(c["logprobs"] is None for e in streamed for c in e["choices"])


def test_unknown_fields_and_upstream_ids_are_not_forwarded(gateway_url: str, world: World) -> None:
    reply = post(gateway_url, world.b.key, "chat/completions", chat_body(SPAN, "unknown_field")).json()
    assert set(reply) == {"id", "object", "created", "model", "choices", "usage"}
    assert set(reply["choices"][0]) == {"index", "message", "logprobs", "finish_reason"}
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": COVER}
    assert not reply["id"].startswith("upstream") and not leaked(reply)
    streamed = sse(
        post(gateway_url, world.b.key, "chat/completions", chat_body(SPAN, "unknown_field", stream=True))
    )
    assert not leaked(streamed) and all(not e["id"].startswith("upstream") for e in streamed)
    assert "".join(c["delta"].get("content") or "" for e in streamed for c in e["choices"]) == ""


def test_fresh_tool_calls_and_reasoning_pass_whole_and_streamed(gateway_url: str, world: World) -> None:
    fresh = "오늘 회의록에 따르면 다음 분기 예산은 동결하고 채용은 두 명으로 줄이기로 했습니다."
    reply = post(gateway_url, world.b.key, "chat/completions", chat_body(fresh, "tool_arguments")).json()
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "save", "arguments": json.dumps({"note": fresh}, ensure_ascii=False)}
    assert call["id"].startswith("call_") and call["type"] == "function"
    streamed = sse(
        post(gateway_url, world.b.key, "chat/completions", chat_body(fresh, "tool_arguments", stream=True))
    )
    calls = [call for e in streamed for c in e["choices"] for call in c["delta"].get("tool_calls") or ()]
    assert calls[0]["function"]["name"] == "save" if "function" in calls[0] else calls[0]["id"]
    arguments = "".join((call.get("function") or {}).get("arguments") or "" for call in calls)
    assert arguments == json.dumps({"note": fresh}, ensure_ascii=False)
    assert len({call["id"] for call in calls if "id" in call}) == 1
    thought = sse(
        post(gateway_url, world.b.key, "chat/completions", chat_body(fresh, "reasoning_content", stream=True))
    )
    assert "".join(c["delta"].get("reasoning_content") or "" for e in thought for c in e["choices"]) == fresh
    assert [c["finish_reason"] for e in thought for c in e["choices"] if c["finish_reason"]] == ["stop"]


def test_completions_stream_and_whole_reply_are_scanned(db: Database, gateway_url: str, world: World) -> None:
    whole = post(gateway_url, world.b.key, "completions", {"prompt": make_order(SPAN, "content")}).json()
    assert whole["choices"][0]["finish_reason"] == "content_filter" and not leaked(whole)
    streamed = sse(
        post(
            gateway_url,
            world.b.key,
            "completions",
            {"prompt": make_order(SPAN, "content", piece=1), "stream": True},
        )
    )
    assert not leaked(streamed)
    assert [c["finish_reason"] for e in streamed for c in e["choices"] if c["finish_reason"]] == [
        "content_filter"
    ]
    outputs = [e.action for e in streamed_events(db, 4) if e.stage == "output"]
    assert outputs == ["blocked", "blocked"]


def test_a_partner_may_read_its_own_text_and_no_one_else_may(
    db: Database, hostile_url: str, world: World
) -> None:
    guard = GatewayGuard(world.root, "block", "strict", check_every_s=0.0, own_text=True)
    routes = {MODEL: ModelRoute(MODEL, hostile_url + "/v1", MODEL)}
    with serve_in_thread(create_app(replace(config(db, hostile_url), routes=routes, guard=guard))) as url:
        own = post(url, world.a.key, "chat/completions", chat_body(SPAN, "content")).json()
        assert own["choices"][0]["message"]["content"] == SPAN
        streamed = sse(post(url, world.a.key, "chat/completions", chat_body(SPAN, "content", 1, stream=True)))
        assert "".join(c["delta"].get("content") or "" for e in streamed for c in e["choices"]) == SPAN
        other = post(url, world.b.key, "chat/completions", chat_body(SPAN, "content")).json()
        assert other["choices"][0]["finish_reason"] == "content_filter" and not leaked(other)
        stranger = sse(
            post(url, world.outsider.key, "chat/completions", chat_body(SPAN, "content", 1, stream=True))
        )
        assert not leaked(stranger)
    outputs = [(e.customer_id, e.action) for e in streamed_events(db, 6) if e.stage == "output"]
    assert sorted(outputs) == sorted(
        [(world.b.customer_id, "blocked"), (world.outsider.customer_id, "blocked")]
    )


def test_a_streamed_tool_name_longer_than_64_characters_ends_the_stream(
    db: Database, gateway_url: str, world: World
) -> None:
    name = "a" * 70
    body = {"messages": [{"role": "user", "content": make_order(name, "tool_name", piece=1)}], "stream": True}
    events = sse(post(gateway_url, world.b.key, "chat/completions", body))
    assert [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]] == [
        "content_filter"
    ]
    assert name not in all_strings(events)
    outputs = [(e.verdict, e.action) for e in streamed_events(db, 2) if e.stage == "output"]
    assert outputs == [("malformed", "blocked")]
