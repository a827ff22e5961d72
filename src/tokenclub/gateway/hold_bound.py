"""The upper bound a hold sets aside: every forwarded field that can cost tokens, counted.

A byte-level BPE never needs more tokens than the UTF-8 bytes of what it encodes, so bytes are
a safe bound on any text the model reads. The bound of a request is

    prompt = (bytes of the message texts, or of the prompt)      [the caller's `prompt_bound`,
             + TEMPLATE_TOKENS_PER_MESSAGE per message             with the template margins]
             + TEMPLATE_TOKENS_BASE
             + bytes of the JSON of every other forwarded field    [tools, functions,
               the model may read (all but CONTROL_FIELDS)          response_format schemas,
                                                                    tool calls, names, …]
             + TEMPLATE_TOKENS_PER_TOOL per tool or function
    completion = max_tokens × copies                                [copies = max(n, best_of)]

The JSON of a field is at least as long as the text a chat template renders from it (JSON only
adds quotes, keys and escapes); the per-tool margin covers the wrapper a template puts around
each schema. Fields the model never reads (CONTROL_FIELDS: sampling knobs, stream flags) cost
nothing; any other field, known or not, is counted, so a new API field cannot smuggle text
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
        "messages",
        "prompt",
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
    }
)
"""Fields that steer sampling or delivery and are never shown to the model as text."""

MESSAGE_TEXT_FIELDS = frozenset({"role", "content"})
"""Counted by the caller's prompt bound; any other field of a message is counted here."""


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def copies(body: dict[str, Any]) -> int:
    """How many completions the upstream generates (and bills) for one request."""
    count = 1
    for field in ("n", "best_of"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > count:
            count = value
    return count


def extra_prompt_bound(body: dict[str, Any]) -> int:
    """Tokens the forwarded body may cost beyond the message texts or the prompt."""
    extra = 0
    for name, value in body.items():
        if name in CONTROL_FIELDS or value is None:
            continue
        extra += _json_bytes(value)
        if name in ("tools", "functions") and isinstance(value, list):
            extra += TEMPLATE_TOKENS_PER_TOOL * len(value)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                rest = {k: v for k, v in message.items() if k not in MESSAGE_TEXT_FIELDS}
                if rest:
                    extra += _json_bytes(rest)
    return extra


def worst_tokens(body: dict[str, Any], prompt_bound: int, max_tokens: int) -> int:
    """The hold's pending amount: the most tokens the forwarded request can be billed."""
    return prompt_bound + extra_prompt_bound(body) + max_tokens * copies(body)
