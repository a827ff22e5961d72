"""The hold's bound counts every forwarded field that can cost tokens, and only those."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tokenclub.gateway.hold_bound import TEMPLATE_TOKENS_PER_TOOL, copies, extra_prompt_bound, worst_tokens
from tokenclub.gateway.requests import parse_request


def _bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def test_sampling_and_delivery_fields_cost_nothing() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert extra_prompt_bound(body) == 0
    assert worst_tokens(body, 100, 5) == 105


def test_tools_functions_and_response_format_are_counted_by_their_json_bytes() -> None:
    tools = [{"type": "function", "function": {"name": "찾기", "parameters": {"type": "object"}}}] * 3
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
    functions = [{"name": "f", "parameters": {}}]
    body = {
        "model": "m",
        "tools": tools,
        "response_format": fmt,
        "functions": functions,
        "tool_choice": "auto",
    }
    expected = (
        _bytes(tools)
        + 3 * TEMPLATE_TOKENS_PER_TOOL
        + _bytes(fmt)
        + _bytes(functions)
        + TEMPLATE_TOKENS_PER_TOOL
        + _bytes("auto")
    )
    assert extra_prompt_bound(body) == expected


def test_message_fields_beside_the_text_are_counted() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]
    body = {
        "messages": [
            {"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool", "content": "1", "tool_call_id": "c1"},
        ]
    }
    assert extra_prompt_bound(body) == _bytes({"tool_calls": calls}) + _bytes({"tool_call_id": "c1"})


def test_unknown_fields_are_counted_so_nothing_slips_past_the_hold() -> None:
    assert extra_prompt_bound({"prediction": {"type": "content", "content": "x" * 1000}}) > 1000


@given(n=st.integers(1, 8), best_of=st.integers(1, 8), max_tokens=st.integers(1, 4096))
def test_every_generated_choice_is_held(n: int, best_of: int, max_tokens: int) -> None:
    body = {"n": n, "best_of": best_of}
    assert copies(body) == max(n, best_of)
    assert worst_tokens(body, 0, max_tokens) == max(n, best_of) * max_tokens


@given(st.text(max_size=200), st.text(max_size=200))
def test_the_bound_is_at_least_the_utf8_bytes_of_everything_the_model_reads(
    content: str, description: str
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": description}}]
    body = {"model": "m", "messages": [{"role": "user", "content": content}], "tools": tools, "max_tokens": 7}
    parsed = parse_request(body, "chat", 64, 4096)
    read = len(content.encode()) + len(description.encode())
    assert parsed.worst_tokens >= read + 7
