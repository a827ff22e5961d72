"""The reply allow-list: what of an upstream reply is rebuilt, and which texts are channels."""

from __future__ import annotations

from tokenclub.guard.detection.replies import channels, clean_chunk, clean_reply, set_channel


def test_a_whole_reply_keeps_only_allow_listed_fields_and_gateway_ids() -> None:
    raw = {
        "id": "secret-id-carrying-text",
        "object": "whatever",
        "created": 7,
        "model": "m",
        "system_fingerprint": "fp",
        "x_extra": "hidden",
        "choices": [
            {
                "index": 0,
                "finish_reason": "weird",
                "message": {
                    "role": "system",
                    "content": "ab",
                    "reasoning_content": "why",
                    "tool_calls": [
                        {"id": "up", "type": "x", "function": {"name": "f", "arguments": "{}"}, "y": 1}
                    ],
                    "audio": {"data": "zz"},
                },
                "logprobs": {"content": [{"token": "a", "logprob": -1}, {"token": "c", "logprob": -2}]},
            }
        ],
    }
    out = clean_reply(raw, "chat", "chatcmpl-1")
    assert out == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "ab",
                    "reasoning_content": "why",
                    "tool_calls": [
                        {
                            "id": "call_chatcmpl-1_0",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "logprobs": None,  # "a" + "c" does not spell "ab"
                "finish_reason": "stop",
            }
        ],
    }
    assert channels(out["choices"][0], "chat") == {
        ("content",): "ab",
        ("reasoning_content",): "why",
        ("tool_calls", 0, "name"): "f",
        ("tool_calls", 0, "arguments"): "{}",
    }


def test_logprobs_that_spell_the_text_keep_their_tokens_but_no_alternatives() -> None:
    raw = {
        "choices": [
            {
                "text": "ab",
                "logprobs": {
                    "tokens": ["a", "b"],
                    "token_logprobs": [-1.0, -0.5],
                    "top_logprobs": [{"x": -0.1}, {"y": -0.2}],
                    "text_offset": [5, 9],
                },
            }
        ]
    }
    (choice,) = clean_reply(raw, "completions", "cmpl-1")["choices"]
    assert choice["logprobs"] == {
        "tokens": ["a", "b"],
        "token_logprobs": [-1.0, -0.5],
        "top_logprobs": None,
        "text_offset": [0, 1],
    }


def test_a_streamed_delta_keeps_its_channels_and_only_the_first_choice() -> None:
    event = {
        "id": "up",
        "choices": [
            {"index": 1, "delta": {"content": "other"}},
            {
                "index": 0,
                "delta": {"refusal": "no", "tool_calls": [{"index": 2, "function": {"arguments": '{"a'}}]},
                "logprobs": {"content": []},
            },
        ],
        "usage": {"prompt_tokens": 1},
    }
    out = clean_chunk(event, "chat", "chatcmpl-9")
    assert out["id"] == "chatcmpl-9" and "usage" not in out
    (choice,) = out["choices"]
    assert choice == {
        "index": 0,
        "delta": {"refusal": "no", "tool_calls": [{"index": 2, "function": {"arguments": '{"a'}}]},
        "logprobs": None,
        "finish_reason": None,
    }
    assert channels(choice, "chat") == {("refusal",): "no", ("tool_calls", 2, "arguments"): '{"a'}
    fresh: dict[str, object] = {"index": 0, "delta": {}}
    set_channel(fresh, "chat", ("tool_calls", 2, "arguments"), "x")
    set_channel(fresh, "chat", ("function_call", "name"), "f")
    assert fresh["delta"] == {
        "tool_calls": [{"index": 2, "function": {"arguments": "x"}}],
        "function_call": {"name": "f"},
    }
