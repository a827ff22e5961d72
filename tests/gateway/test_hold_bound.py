"""The hold's bound counts every forwarded field that can cost tokens, and only those."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tokenclub.gateway.formats import CHAT
from tokenclub.gateway.hold_bound import TEMPLATE_TOKENS_PER_TOOL, copies, extra_prompt_bound, worst_tokens
from tokenclub.gateway.requests import parse_request


def _bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def test_sampling_delivery_and_parsed_fields_add_nothing() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "name": "u"}],
        "max_tokens": 5,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_object"},
    }
    assert extra_prompt_bound(body) == 0
    assert worst_tokens(body, 100, 5) == 105


def test_each_tool_adds_the_template_wrapper() -> None:
    tools = [{"type": "function", "function": {"name": "찾기", "parameters": {"type": "object"}}}] * 3
    assert extra_prompt_bound({"tools": tools, "functions": [{"name": "f"}]}) == 4 * TEMPLATE_TOKENS_PER_TOOL


def test_unparsed_message_fields_and_unknown_fields_are_counted() -> None:
    body = {
        "messages": [{"role": "tool", "content": "1", "tool_call_id": "c1"}],
        "prediction": {"type": "content", "content": "x" * 1000},
    }
    assert extra_prompt_bound(body) == _bytes({"tool_call_id": "c1"}) + _bytes(body["prediction"])


@given(
    n=st.integers(1, 8), best_of=st.integers(1, 8), choices=st.integers(1, 8), max_tokens=st.integers(1, 4096)
)
def test_every_generated_choice_is_held(n: int, best_of: int, choices: int, max_tokens: int) -> None:
    body = {"n": n, "best_of": best_of}
    assert copies(body, choices) == max(n, best_of, choices)
    assert worst_tokens(body, 0, max_tokens, choices) == max(n, best_of, choices) * max_tokens


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=200))
def test_the_bound_is_at_least_the_utf8_bytes_of_everything_the_model_reads(
    content: str, description: str, extra: str
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": description}}]
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": content}],
        "tools": tools,
        "max_tokens": 7,
        "prediction": {"type": "content", "content": extra},
    }
    parsed = parse_request(body, CHAT, 64, 4096)
    read = len(content.encode()) + len(description.encode()) + len(extra.encode())
    assert parsed.worst_tokens >= read + TEMPLATE_TOKENS_PER_TOOL + 7
