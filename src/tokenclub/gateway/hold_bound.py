"""The upper bound a hold sets aside: every forwarded field that can cost tokens, counted.

A byte-level BPE never needs more tokens than the UTF-8 bytes of what it encodes, so bytes are
a safe bound on any text the model reads. `requests.py` bounds what it parses (message texts,
tool calls and names, non-text parts, the `tools`/`functions`/`response_format`/`tool_choice`
JSON, template margins per message and per prompt); this module adds what it does not:

    prompt     = the parser's prompt bound
               + bytes of the JSON of every other forwarded field the model may read
                 (any field outside CONTROL_FIELDS and PARSED_FIELDS, known or not, and any
                  message field the parser does not count, such as `tool_call_id`)
               + TEMPLATE_TOKENS_PER_TOOL per tool or function   [the template's wrapper]
    completion = max_tokens × max(n, best_of)                    [every generated choice]

The JSON of a field is at least as long as the text a chat template renders from it (JSON only
adds quotes, keys and escapes). Fields the model never reads (CONTROL_FIELDS: sampling knobs,
delivery flags) cost nothing; any other field is counted, so a new API field cannot carry text
past the hold.
"""

from __future__ import annotations

import json
from typing import Any

TEMPLATE_TOKENS_PER_TOOL = 32
"""Chat templates introduce each tool schema with a few fixed words and special tokens."""

CONTROL_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "best_of",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "logprobs",
        "top_logprobs",
        "echo",
        "user",
        "parallel_tool_calls",
        "store",
        "encoding_format",
        "dimensions",
    }
)
"""Fields that steer sampling or delivery and are never shown to the model as text."""

PARSED_FIELDS = frozenset(
    {"messages", "prompt", "input", "tools", "functions", "response_format", "tool_choice"}
)
"""Counted into the prompt bound by `requests.py`."""

PARSED_MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "function_call", "name"})
"""Message fields `requests.py` counts; any other field of a message is counted here."""


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def copies(body: dict[str, Any], choices: int = 1) -> int:
    """How many completions the upstream generates (and bills) for one request."""
    count = choices
    for name in ("n", "best_of"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > count:
            count = value
    return count


def extra_prompt_bound(body: dict[str, Any]) -> int:
    """Tokens the forwarded body may cost beyond what the parser's prompt bound counts."""
    extra = 0
    for name, value in body.items():
        if name in CONTROL_FIELDS or name in PARSED_FIELDS or value is None:
            continue
        extra += _json_bytes(value)
    for name in ("tools", "functions"):
        value = body.get(name)
        if isinstance(value, list):
            extra += TEMPLATE_TOKENS_PER_TOOL * len(value)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                rest = {k: v for k, v in message.items() if k not in PARSED_MESSAGE_FIELDS}
                if rest:
                    extra += _json_bytes(rest)
    return extra


def worst_tokens(body: dict[str, Any], prompt_bound: int, max_tokens: int, choices: int = 1) -> int:
    """The hold's pending amount: the most tokens the forwarded request can be billed."""
    return prompt_bound + extra_prompt_bound(body) + max_tokens * copies(body, choices)
