"""Validating client requests and bounding their worst-case token cost before any upstream call.

Chat accepts OpenAI's whole message schema: system/developer/user/assistant/tool roles,
assistant turns that carry `tool_calls` and no content, and content parts. Text parts count
toward the prompt bound by their bytes; other parts (images, audio, files) are forwarded to the
upstream, which refuses them if its model cannot read them, and count a fixed margin each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tokenclub.gateway.errors import bad_request, shorten
from tokenclub.gateway.formats import CHAT, COMPLETIONS, EMBEDDINGS, ApiFormat
from tokenclub.gateway.hold_bound import worst_tokens

TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_BASE = 64
"""Chat templates wrap each message in a few special tokens and may add a default system
prompt (SmolLM2's adds 30 tokens); these margins cover that in the hold."""
NON_TEXT_PART_TOKENS = 4_096
"""Held per image, audio or file part: a vision model's largest image encoding stays below it."""
MAX_N = 128
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
USER_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file"})
DROPPED_FIELDS = ("max_completion_tokens", "stream_options", "user")


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A validated request: the body to forward and what the hold needs to know.

    `prompts` are the texts a plain completion prompt or an embeddings input consists of (the
    gateway tokenizes them itself when an upstream reports no usage)."""

    format: ApiFormat
    model: str
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    max_tokens: int
    prompt_bound: int
    prompt_text: str
    choices: int = 1
    prompts: tuple[str, ...] = field(default=())
    prompt_token_ids: int = 0

    @property
    def worst_tokens(self) -> int:
        """The hold: the prompt, every choice at full length, and whatever else forwarded can
        cost tokens (`hold_bound`)."""
        return worst_tokens(self.body, self.prompt_bound, self.max_tokens, self.choices)


def _nbytes(text: str) -> int:
    return len(text.encode())


def _json_bytes(value: Any) -> int:
    return 0 if value is None else len(json.dumps(value, ensure_ascii=False).encode())


@dataclass
class _Prompt:
    """What the messages add up to: the text the guard reads and the token bound."""

    texts: list[str] = field(default_factory=list)
    bound: int = TEMPLATE_TOKENS_BASE

    def add(self, text: str) -> None:
        self.texts.append(text)
        self.bound += _nbytes(text)


def _content(content: Any, role: str, where: str, prompt: _Prompt) -> None:
    if isinstance(content, str):
        prompt.add(content)
        return
    if content is None:
        if role == "assistant":
            return
        raise bad_request(f"{where}.content is required for the {role} role", "invalid_messages")
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of content parts", "invalid_messages")
    allowed = USER_PART_TYPES if role == "user" else frozenset({"text", "refusal"})
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in allowed:
            raise bad_request(
                f"{where}.content[{j}]: a {role} message takes parts of type "
                f"{', '.join(sorted(allowed))}; got {shorten(kind)}",
                "invalid_content_part",
            )
        assert isinstance(part, dict)
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise bad_request(f"{where}.content[{j}].{kind} must be a string", "invalid_content_part")
            prompt.add(text)
        else:
            prompt.bound += NON_TEXT_PART_TOKENS


def _tool_calls(calls: Any, where: str, prompt: _Prompt) -> None:
    if not isinstance(calls, list):
        raise bad_request(f"{where}.tool_calls must be a list", "invalid_messages")
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments", ""), str)
        ):
            raise bad_request(
                f"{where}.tool_calls[{j}] must be {{id, type, function: {{name, arguments}}}}",
                "invalid_messages",
            )
        prompt.add(function["name"] + function.get("arguments", ""))


def _message(message: Any, where: str, prompt: _Prompt) -> dict[str, Any]:
    """One checked message, as it is forwarded: `developer` becomes `system`, which every
    chat template knows."""
    role = message.get("role") if isinstance(message, dict) else None
    if not isinstance(role, str):
        raise bad_request(f"{where} must be an object with a role", "invalid_messages")
    assert isinstance(message, dict)
    if role not in ROLES:
        raise bad_request(
            f"{where}.role must be one of {', '.join(sorted(ROLES))}; got {shorten(role)}", "invalid_messages"
        )
    _content(message.get("content"), role, where, prompt)
    if role == "assistant" and message.get("tool_calls") is not None:
        _tool_calls(message["tool_calls"], where, prompt)
    if role == "assistant" and isinstance(message.get("function_call"), dict):
        prompt.bound += _json_bytes(message["function_call"])
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise bad_request(f"{where}.tool_call_id is required for the tool role", "invalid_messages")
    if not isinstance(message.get("name", ""), str):
        raise bad_request(f"{where}.name must be a string", "invalid_messages")
    prompt.bound += TEMPLATE_TOKENS_PER_MESSAGE + _nbytes(message.get("name", ""))
    return {**message, "role": "system"} if role == "developer" else message


def _max_tokens(body: dict[str, Any], default: int, ceiling: int) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return min(default, ceiling)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request("max_tokens must be a positive integer", "invalid_max_tokens", "max_tokens")
    if value > ceiling:
        raise bad_request(f"max_tokens must be at most {ceiling}", "invalid_max_tokens", "max_tokens")
    return value


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_N:
        raise bad_request(f"{name} must be an integer from 1 to {MAX_N}", f"invalid_{name}", name)
    return value


def _model(body: Any) -> str:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required", "missing_model", "model")
    return model


def _texts_or_tokens(value: Any, name: str) -> tuple[list[str], int]:
    """A prompt or embeddings input: a string, strings, token ids, or lists of token ids.
    Returns the strings and the number of token ids."""
    if isinstance(value, str):
        return [value], 0
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return list(value), 0
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return [], len(value)
        if all(
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
            for item in value
        ):
            return [], sum(len(item) for item in value)
    raise bad_request(
        f"{name} must be a string, a non-empty list of strings, or token ids", f"invalid_{name}", name
    )


def _chat(body: dict[str, Any]) -> tuple[dict[str, Any], _Prompt]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", "invalid_messages", "messages")
    prompt = _Prompt()
    forwarded = [_message(m, f"messages[{i}]", prompt) for i, m in enumerate(messages)]
    for extra in ("tools", "functions", "response_format", "tool_choice"):
        prompt.bound += _json_bytes(body.get(extra))
    return {**body, "messages": forwarded}, prompt


def parse_request(body: Any, fmt: ApiFormat, default_max_tokens: int, ceiling: int) -> ParsedRequest:
    """Check the fields the gateway relies on; the upstream validates the rest.

    The prompt bound counts UTF-8 bytes: a byte-level BPE never needs more tokens than bytes,
    so the hold always covers the real prompt.
    """
    model = _model(body)
    if fmt is EMBEDDINGS:
        return _embeddings(body, model)
    prompts: tuple[str, ...] = ()
    token_ids = 0
    if fmt is CHAT:
        body, chat_prompt = _chat(body)
        prompt_text, bound, prompt_count = "\n".join(chat_prompt.texts), chat_prompt.bound, 1
    else:
        texts, token_ids = _texts_or_tokens(body.get("prompt"), "prompt")
        prompts = tuple(texts)
        prompt_text = "\n".join(texts)
        prompt_count = max(1, len(texts)) if token_ids == 0 else _prompt_lists(body.get("prompt"))
        bound = sum(_nbytes(t) for t in texts) + token_ids + TEMPLATE_TOKENS_BASE * prompt_count
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream must be true or false", param="stream")
    n = _count(body, "n")
    generated = max(n, _count(body, "best_of")) if fmt is COMPLETIONS else n
    options = body.get("stream_options") or {}
    include_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
    max_tokens = _max_tokens(body, default_max_tokens, ceiling)
    forwarded = {k: v for k, v in body.items() if k not in DROPPED_FIELDS}
    forwarded["max_tokens"] = max_tokens
    if stream:
        forwarded["stream_options"] = {"include_usage": True}
    return ParsedRequest(
        fmt,
        model,
        forwarded,
        stream,
        include_usage,
        max_tokens,
        bound,
        prompt_text,
        generated * prompt_count,
        prompts,
        token_ids,
    )


def _prompt_lists(prompt: Any) -> int:
    """How many prompts a token-id prompt holds: one list of ids, or several."""
    return len(prompt) if isinstance(prompt, list) and isinstance(prompt[0], list) else 1


def _embeddings(body: dict[str, Any], model: str) -> ParsedRequest:
    texts, token_ids = _texts_or_tokens(body.get("input"), "input")
    bound = sum(_nbytes(t) + 2 for t in texts) + token_ids
    forwarded = {k: v for k, v in body.items() if k != "user"}
    return ParsedRequest(EMBEDDINGS, model, forwarded, False, False, 0, bound, "", 0, tuple(texts), token_ids)
