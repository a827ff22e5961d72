"""Validating client requests and bounding their worst-case token cost before any upstream call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenclub.gateway.errors import bad_request
from tokenclub.gateway.hold_bound import worst_tokens

TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_BASE = 64
"""Chat templates wrap each message in a few special tokens and may add a default system
prompt (SmolLM2's adds 30 tokens); these margins cover that in the hold."""


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A validated request: the body to forward and what the hold needs to know."""

    model: str
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    max_tokens: int
    prompt_bound: int
    prompt_text: str

    @property
    def worst_tokens(self) -> int:
        """The hold: every forwarded field that costs tokens, bounded (`hold_bound`)."""
        return worst_tokens(self.body, self.prompt_bound, self.max_tokens)


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise bad_request(f"{where}: only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)
    raise bad_request(f"{where}: content must be a string or a list of text parts")


def _max_tokens(body: dict[str, Any], default: int, ceiling: int) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return min(default, ceiling)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request("max_tokens must be a positive integer", "invalid_max_tokens")
    if value > ceiling:
        raise bad_request(f"max_tokens must be at most {ceiling}", "invalid_max_tokens")
    return value


def parse_request(body: Any, endpoint: str, default_max_tokens: int, ceiling: int) -> ParsedRequest:
    """Check the fields the gateway relies on; the upstream validates the rest.

    The prompt bound counts UTF-8 bytes: a byte-level BPE never needs more tokens than bytes,
    so the hold always covers the real prompt.
    """
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required", "missing_model")
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request("messages must be a non-empty list", "invalid_messages")
        texts = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise bad_request(f"messages[{i}] must be an object with a role", "invalid_messages")
            texts.append(_text_of(message.get("content", ""), f"messages[{i}]"))
        prompt_text = "\n".join(texts)
        bound = sum(len(t.encode()) + TEMPLATE_TOKENS_PER_MESSAGE for t in texts) + TEMPLATE_TOKENS_BASE
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise bad_request("prompt must be a string", "invalid_prompt")
        prompt_text = prompt
        bound = len(prompt.encode()) + TEMPLATE_TOKENS_BASE
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream must be true or false")
    if body.get("n", 1) != 1:
        raise bad_request("only n=1 is supported", "invalid_n")
    options = body.get("stream_options") or {}
    include_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
    max_tokens = _max_tokens(body, default_max_tokens, ceiling)
    forwarded = {
        k: v for k, v in body.items() if k not in ("max_completion_tokens", "stream_options", "user")
    }
    forwarded["max_tokens"] = max_tokens
    if stream:
        forwarded["stream_options"] = {"include_usage": True}
    return ParsedRequest(model, forwarded, stream, include_usage, max_tokens, bound, prompt_text)
